//! `/service/<name>/…`: DC/OS Admin Router's service proxy on every master. The request goes
//! to one instance of the Marathon app labelled `DCOS_SERVICE_NAME=<name>` (which instance and
//! port: `core::service::route`), round robin over the instances that may take it; the body
//! and the answer are streamed (server-sent events flow as they come), and WebSocket (any HTTP
//! upgrade) connections are joined end to end. `/service/marathon/v2/…` is Marathon's own API
//! (routed in `api::router`, before this catch-all).
//!
//! One connection per request to the instance (no pool): instances come and go with every
//! deployment. Instances that refuse the connection are skipped (nothing was sent yet); once a
//! request was sent, its failure is the client's answer (502), never a retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::error::ApiError;
use super::server::ConnInfo;
use crate::core::service::{Backend, Route, RouteError, Scheme};
use crate::master::Master;

/// How long connecting to one instance may take before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Round robin over a service's instances (all services share the counter; each request
/// starts at the next position).
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Headers that belong to one hop (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// `GET|POST|… /service/{*path}`.
pub async fn proxy(
    State(master): State<Arc<Master>>,
    Path(path): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let route = {
        let state = master.state.read().expect("state lock");
        crate::core::service::route(&state, &path)
    };
    let route = route.map_err(|e| match e {
        RouteError::NoService(_) => ApiError::NotFound(e.to_string()),
        RouteError::BadLabel { .. } => ApiError::BadGateway(e.to_string()),
        RouteError::NoInstance { .. } => ApiError::Unavailable(e.to_string()),
    })?;
    // `/service/name` answers with a redirect to `/service/name/`, as Admin Router does, so
    // that relative links in the service's pages resolve under its prefix.
    if route.rest.is_empty() && !req.uri().path().ends_with('/') {
        let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        return Ok(Redirect::temporary(&format!("{}/{query}", req.uri().path())).into_response());
    }
    forward(route, req).await
}

async fn forward(route: Route, mut req: Request) -> Result<Response, ApiError> {
    let client_addr = req.extensions().get::<ConnInfo>().map(|i| i.remote.ip());
    let upgrade = req.headers().get(header::UPGRADE).cloned();
    let (stream, backend) = connect(&route).await?;
    let target = format!("{}:{}", backend.host, backend.port);

    let path_and_query = match req.uri().query() {
        Some(q) => format!("/{}?{q}", route.rest),
        None => format!("/{}", route.rest),
    };
    let original_host = req.headers().get(header::HOST).cloned();
    let downstream_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    parts.uri = Uri::try_from(path_and_query)
        .map_err(|e| ApiError::BadRequest(format!("the path cannot be forwarded: {e}")))?;
    parts.version = axum::http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    let headers = &mut parts.headers;
    headers.insert(header::HOST, header_value(&target)?);
    if let Some(host) = original_host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static("https"));
    headers
        .insert(HeaderName::from_static("x-forwarded-prefix"), header_value(&format!("/service/{}", route.service))?);
    if let Some(ip) = client_addr {
        headers.insert(HeaderName::from_static("x-forwarded-for"), header_value(&ip.to_string())?);
    }
    if let Some(upgrade) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade.clone());
    }
    let request = axum::http::Request::from_parts(parts, body);

    let bad_gateway = |what: &str, e: &dyn std::fmt::Display| {
        ApiError::BadGateway(format!("{what} instance {} of {} at {target}: {e}", backend.task_id, route.app_id))
    };
    let mut response = match route.scheme {
        Scheme::Http => send(TokioIo::new(stream), request).await,
        Scheme::Https => {
            let tls = tokio_rustls::TlsConnector::from(insecure_tls())
                .connect(server_name(&backend.host)?, stream)
                .await
                .map_err(|e| bad_gateway("TLS with", &e))?;
            send(TokioIo::new(tls), request).await
        }
    }
    .map_err(|e| bad_gateway("forwarding to", &e))?;

    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(downstream) = downstream_upgrade
    {
        let upstream = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            match tokio::try_join!(downstream, upstream) {
                Ok((down, up)) => {
                    let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
                    if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                        tracing::debug!(error = %e, "an upgraded /service connection ended");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "a /service upgrade did not complete"),
            }
        });
        let (mut parts, _) = response.into_parts();
        // Connection and Upgrade stay: they are what a 101 answer is about.
        for name in HOP_BY_HOP.iter().filter(|n| **n != "connection" && **n != "upgrade") {
            parts.headers.remove(*name);
        }
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Connects to the next instance that accepts a connection.
async fn connect(route: &Route) -> Result<(TcpStream, Backend), ApiError> {
    let n = route.backends.len();
    let start = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut failures = Vec::new();
    for i in 0..n {
        let backend = &route.backends[(start + i) % n];
        let addr = format!("{}:{}", backend.host, backend.port);
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, backend.clone()));
            }
            Ok(Err(e)) => failures.push(format!("{} at {addr}: {e}", backend.task_id)),
            Err(_) => failures.push(format!("{} at {addr}: no connection within {CONNECT_TIMEOUT:?}", backend.task_id)),
        }
    }
    Err(ApiError::BadGateway(format!(
        "no instance of service {:?} (app {}) accepted a connection: {}",
        route.service,
        route.app_id,
        failures.join("; ")
    )))
}

async fn send<T>(
    io: TokioIo<T>,
    request: axum::http::Request<Body>,
) -> Result<Response<hyper::body::Incoming>, hyper::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "a /service connection to an instance ended with an error");
        }
    });
    sender.send_request(request).await
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named by Connection are hop-by-hop too.
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .filter(|s| !s.is_empty())
        .collect();
    for name in HOP_BY_HOP.iter().copied().map(String::from).chain(named) {
        headers.remove(name.as_str());
    }
}

fn header_value(s: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(s).map_err(|_| ApiError::BadRequest(format!("{s:?} cannot be sent as a header value")))
}

fn server_name(host: &str) -> Result<rustls_pki_types::ServerName<'static>, ApiError> {
    rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| ApiError::BadGateway(format!("{host:?} is not a name TLS can connect to: {e}")))
}

/// TLS to an instance (`DCOS_SERVICE_SCHEME=https`): encrypted, but the instance's certificate
/// is not checked (services present self-signed certificates; Admin Router did not check
/// them either). The handshake signature is still verified.
fn insecure_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
