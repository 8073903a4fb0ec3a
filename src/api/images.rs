//! Images and blobs: `/v1/blobs/{digest}` (upload, download), `/v1/images` (register, list,
//! remove), and the master-to-master and agent blob endpoints.
//!
//! An image is registered only after every blob it names is in this master's store AND has
//! been pushed to every other master, so losing a master never loses an image. A master that
//! missed blobs (new, or down during the push) fetches them from its peers (`blob_sync`).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::core::{Command, ImageLayer, ImageRecord, Response as CoreResponse};
use crate::image::{BlobStore, Compression, Digest, Image};
use crate::master::Master;

fn parse_digest(text: &str) -> Result<Digest, ApiError> {
    Digest::parse(text, "digest").map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Streams a blob from the store (404 if absent).
pub async fn serve_blob(store: &BlobStore, digest: &str) -> Result<Response, ApiError> {
    let digest = parse_digest(digest)?;
    if !store.has(&digest) {
        return Err(ApiError::NotFound(format!("blob {digest} is not in this master's store")));
    }
    let path = store.path(&digest);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::Internal(format!("opening {}: {e}", path.display())))?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok(([(CONTENT_TYPE, "application/octet-stream".to_string()), (CONTENT_LENGTH, len.to_string())], body)
        .into_response())
}

/// Stores a request body as blob `digest`, verifying it; nothing is stored on a mismatch.
pub async fn receive_blob(store: Arc<BlobStore>, digest: &str, body: Body) -> Result<u64, ApiError> {
    let digest = parse_digest(digest)?;
    if store.has(&digest) {
        // Read the body anyway: answering early would make the client's send fail.
        let mut stream = body.into_data_stream();
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            chunk.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
        }
        return store.size(&digest).map_err(|e| ApiError::Internal(e.to_string()));
    }
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    tokio::task::spawn_blocking(move || store.put_verified(&digest, reader))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::BadRequest(format!("blob refused: {e}")))
}

/// `HEAD|GET /v1/blobs/{digest}`.
pub async fn get_blob(State(m): State<Arc<Master>>, Path(digest): Path<String>) -> Result<Response, ApiError> {
    serve_blob(&m.blobs, &digest).await
}

/// `PUT /v1/blobs/{digest}`: the body must hash to the digest.
pub async fn put_blob(
    State(m): State<Arc<Master>>,
    Path(digest): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let size = receive_blob(m.blobs.clone(), &digest, body).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "digest": digest, "size": size }))).into_response())
}

/// `PUT /internal/v1/blobs/{digest}` (masters pushing to each other).
pub async fn put_blob_internal(
    State(m): State<Arc<Master>>,
    Path(digest): Path<String>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    receive_blob(m.blobs.clone(), &digest, body).await.map(|_| StatusCode::CREATED)
}

/// `POST /v1/images`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterImage {
    pub image: Image,
    /// Replaces the archive's names.
    #[serde(default)]
    pub tag: Option<String>,
}

fn record(image: &Image, tag: Option<String>) -> ImageRecord {
    let digest = |d: &Digest| d.to_string();
    ImageRecord {
        manifest: digest(&image.manifest),
        names: match tag {
            Some(t) => vec![t],
            None => image.names.clone(),
        },
        config_digest: digest(&image.config_digest),
        layers: image
            .layers
            .iter()
            .map(|l| ImageLayer {
                digest: digest(&l.digest),
                size: l.size,
                compression: match l.compression {
                    Compression::Gzip => "gzip".into(),
                    Compression::None => "none".into(),
                },
                diff_id: digest(&l.diff_id),
            })
            .collect(),
        entrypoint: image.config.entrypoint.clone(),
        cmd: image.config.cmd.clone(),
        env: image.config.env.clone(),
        working_dir: image.config.working_dir.clone(),
        user: image.config.user.clone(),
        size: image.size(),
        loaded_at_ms: crate::clock::now_ms(),
    }
}

/// Pushes a blob to one peer unless it has it.
async fn push_blob(m: &Master, peer_api: &str, digest: &Digest) -> Result<(), String> {
    let url = format!("{peer_api}/internal/v1/blobs/{digest}");
    if m.peers.head(&url).send().await.is_ok_and(|r| r.status().is_success()) {
        return Ok(());
    }
    let file = tokio::fs::File::open(m.blobs.path(digest)).await.map_err(|e| e.to_string())?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    let resp = m
        .peers
        .put(url)
        .timeout(std::time::Duration::from_secs(600))
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{peer_api}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{peer_api} answered {}: {}", resp.status(), resp.text().await.unwrap_or_default()));
    }
    Ok(())
}

/// `POST /v1/images` `{"image": …, "tag"}`: registers an uploaded image once every master has it.
pub async fn register(
    State(m): State<Arc<Master>>,
    body: Result<Json<RegisterImage>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<ImageRecord>), ApiError> {
    let Json(req) = body?;
    let missing: Vec<String> = req.image.blobs().iter().filter(|d| !m.blobs.has(d)).map(|d| d.to_string()).collect();
    if !missing.is_empty() {
        return Err(ApiError::Conflict {
            code: "ERR_MISSING_BLOBS",
            message: format!("upload these blobs first (PUT /v1/blobs/DIGEST): {}", missing.join(", ")),
            current_revision: None,
        });
    }
    let record = record(&req.image, req.tag);
    crate::core::images::validate(&record).map_err(ApiError::BadRequest)?;
    // Every master must hold every blob before the image exists for anyone.
    for peer in m.members().into_iter().filter(|p| p.id != m.id) {
        for digest in req.image.blobs() {
            push_blob(&m, &peer.api, &digest).await.map_err(|e| {
                ApiError::Unavailable(format!(
                    "copying {digest} to master {} failed: {e}; retry when it is reachable",
                    peer.name
                ))
            })?;
        }
    }
    match m.propose(Command::ImageAdd { image: Box::new(record.clone()) }).await? {
        CoreResponse::ImageAdded { .. } => {}
        CoreResponse::Rejected { message } => return Err(ApiError::BadRequest(message)),
        other => return Err(ApiError::Internal(format!("unexpected result {other:?}"))),
    }
    let state = m.state.read().expect("state lock");
    Ok((StatusCode::CREATED, Json(state.images.get(&record.manifest).cloned().unwrap_or(record))))
}

/// `GET /v1/images`.
pub async fn list(State(m): State<Arc<Master>>) -> Result<Json<Vec<ImageRecord>>, ApiError> {
    m.read_barrier().await?;
    let state = m.state.read().expect("state lock");
    Ok(Json(state.images.values().cloned().collect()))
}

/// `DELETE /v1/images/{reference}` (a name or a digest).
pub async fn remove(
    State(m): State<Arc<Master>>,
    Path(reference): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match m.propose(Command::ImageRemove { reference: reference.clone() }).await? {
        CoreResponse::ImageRemoved { manifest } => Ok(Json(serde_json::json!({ "removed": manifest }))),
        CoreResponse::Rejected { message } => Err(ApiError::NotFound(message)),
        other => Err(ApiError::Internal(format!("unexpected result {other:?}"))),
    }
}
