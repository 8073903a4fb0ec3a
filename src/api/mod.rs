//! The HTTPS API: routes that parse requests and hand them to the master, and the typed
//! client the CLI uses.
//!
//! **Architecture invariant:** handlers never mutate state themselves; every change is a
//! `core::Command` proposed through `Master::propose`.

pub mod agent_protocol;
pub mod agents;
pub mod auth;
pub mod client;
pub mod cluster;
pub mod cosmos;
pub mod error;
pub mod images;
pub mod internal;
pub mod join;
pub mod kv;
pub mod marathon;
pub mod mesos;
pub mod mesos_dns;
pub mod query;
pub mod sandbox;
pub mod server;
pub mod service;
pub mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post, put};

use crate::master::Master;
use crate::master::network::{Faults, PATH_APPEND, PATH_SNAPSHOT, PATH_VOTE};

/// Largest public request body (a KV value is at most 512 KiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest master-to-master body (append batches and snapshot chunks).
pub const MAX_INTERNAL_BODY_BYTES: usize = 256 * 1024 * 1024;

/// Builds every route of a master.
pub fn router(master: Arc<Master>, _faults: Option<Arc<Faults>>) -> Router {
    let public = Router::new()
        .route("/ping", get(cluster::ping))
        .route("/ca.crt", get(cluster::ca_cert))
        .route("/metadata", get(cluster::metadata))
        .route("/dcos-metadata/dcos-version.json", get(cluster::dcos_version))
        .route("/v1/health", get(cluster::health))
        .route("/acs/api/v1/auth/login", post(auth::login))
        .route("/v1/join", post(join::join));

    let protected = Router::new()
        .route("/v1/cluster/status", get(cluster::status))
        .route("/v1/masters", get(cluster::list_masters).post(cluster::add_master))
        .route("/v1/masters/{name}", axum::routing::delete(cluster::remove_master))
        .route("/v1/kv", get(kv::get_root))
        .route("/v1/kv/", get(kv::get_root))
        .route("/v1/kv/{*key}", get(kv::get).put(kv::put).delete(kv::delete))
        .route("/v1/agents", get(agents::list))
        .route("/v1/join-tokens", post(join::create_token))
        .route("/v1/agents/{id}", get(agents::show))
        .route("/v1/agents/{id}/mode", post(agents::set_mode))
        .route("/v1/blobs/{digest}", get(images::get_blob).put(images::put_blob))
        .route("/v1/images", get(images::list).post(images::register))
        .route("/v1/images/{*reference}", axum::routing::delete(images::remove))
        .route("/v1/tasks", get(tasks::list).post(tasks::run))
        .route("/v1/tasks/{id}", get(tasks::show))
        .route("/v1/tasks/{id}/kill", post(tasks::kill))
        .route("/v1/tasks/{id}/files/read", get(sandbox::task_read))
        .route("/v1/tasks/{id}/files/browse", get(sandbox::task_browse))
        .route("/v1/tasks/{id}/exec", get(sandbox::task_exec))
        .route("/slave/{agent_id}/files/read.json", get(sandbox::agent_read))
        .route("/slave/{agent_id}/files/browse.json", get(sandbox::agent_browse))
        .route("/acs/api/v1/users", get(auth::list_users))
        .route("/acs/api/v1/users/{uid}", put(auth::put_user).delete(auth::delete_user))
        .merge(mesos::routes())
        .merge(mesos_dns::routes())
        .merge(cosmos::routes())
        .nest("/v2", marathon::routes())
        .nest("/marathon/v2", marathon::routes())
        // DC/OS's Admin Router paths: Marathon at /service/marathon/v2 (the dcos CLI's), and
        // every app labelled DCOS_SERVICE_NAME below /service/<name>/.
        .nest("/service/marathon/v2", marathon::routes())
        .route("/service/{*path}", any(service::proxy))
        .route_layer(from_fn_with_state(master.clone(), auth::require_token));

    let internal = Router::new()
        .route(PATH_APPEND, post(internal::append))
        .route(PATH_VOTE, post(internal::vote))
        .route(PATH_SNAPSHOT, post(internal::snapshot))
        .route("/internal/v1/identity", get(internal::identity))
        .route("/internal/v1/propose", post(internal::propose))
        .route("/internal/v1/read_index", post(internal::read_index))
        .route("/internal/v1/blobs/{digest}", get(images::get_blob).put(images::put_blob_internal))
        .route_layer(from_fn_with_state(master.clone(), auth::require_master))
        .layer(DefaultBodyLimit::max(MAX_INTERNAL_BODY_BYTES));

    let agent = Router::new()
        .route(agent_protocol::PATH_REGISTER, post(agents::register))
        .route(agent_protocol::PATH_EVENTS, get(agents::events))
        .route(agent_protocol::PATH_HEARTBEAT, post(agents::heartbeat))
        .route(agent_protocol::PATH_STATUS, post(agents::status))
        .route("/internal/agent/v1/blobs/{digest}", get(images::get_blob))
        .route_layer(axum::middleware::from_fn(agents::require_agent));

    Router::new()
        .merge(agent)
        .merge(public.merge(protected).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .merge(internal)
        .fallback(kv::not_found)
        .with_state(master)
}
