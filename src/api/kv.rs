//! `/v1/kv`: the users' key-value store (Consul-like).
//!
//! Reads are linearizable unless `?stale` is given. Values travel raw in PUT bodies and as
//! base64 in JSON answers (`?raw` returns the bare value).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::query::{Params, flag, number};
use crate::core::kv::{self, KvEntry};
use crate::core::{Command, Response as CoreResponse};
use crate::master::Master;

/// Header with the state's last applied index when the answer was computed.
pub const INDEX_HEADER: &str = "x-medos-index";

/// One key as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KvItem {
    pub key: String,
    #[serde(with = "crate::core::base64_bytes")]
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
    pub version: u64,
}

impl KvItem {
    fn new(key: &str, e: &KvEntry) -> Self {
        Self {
            key: key.to_string(),
            value: e.value.clone(),
            create_revision: e.create_revision,
            mod_revision: e.mod_revision,
            version: e.version,
        }
    }
}

/// Answer to a write.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KvWriteResult {
    pub revision: u64,
    #[serde(default)]
    pub deleted: u64,
}

fn index_headers(index: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(INDEX_HEADER, HeaderValue::from(index));
    h
}

async fn consistent(master: &Master, params: &Params) -> Result<(), ApiError> {
    if !flag(params, "stale")? {
        master.read_barrier().await?;
    }
    Ok(())
}

pub async fn get_root(
    state: State<Arc<Master>>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    get(state, Path(String::new()), query).await
}

/// `GET /v1/kv/{key}` (`?recurse` lists by prefix, `?keys` lists keys only, `?raw`, `?stale`).
pub async fn get(
    State(master): State<Arc<Master>>,
    Path(key): Path<String>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = query?;
    let (recurse, keys_only, raw) = (flag(&params, "recurse")?, flag(&params, "keys")?, flag(&params, "raw")?);
    if !recurse && !keys_only {
        kv::validate_key(&key).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    consistent(&master, &params).await?;
    let state = master.state.read().expect("state lock");
    let headers = index_headers(state.last_applied);
    if keys_only {
        let keys: Vec<&String> = state.kv.list(&key).map(|(k, _)| k).collect();
        return Ok((headers, Json(keys)).into_response());
    }
    if recurse {
        let items: Vec<KvItem> = state.kv.list(&key).map(|(k, e)| KvItem::new(k, e)).collect();
        return Ok((headers, Json(items)).into_response());
    }
    let entry = state.kv.get(&key).ok_or_else(|| ApiError::NotFound(format!("key {key:?} not found")))?;
    if raw {
        return Ok((headers, entry.value.clone()).into_response());
    }
    Ok((headers, Json(KvItem::new(&key, entry))).into_response())
}

fn write_result(result: CoreResponse) -> Result<Json<KvWriteResult>, ApiError> {
    match result {
        CoreResponse::KvWritten { revision } => Ok(Json(KvWriteResult { revision, deleted: 0 })),
        CoreResponse::KvDeleted { revision, deleted } => Ok(Json(KvWriteResult { revision, deleted })),
        CoreResponse::CasFailed { current } => Err(ApiError::Conflict {
            code: "ERR_CAS_FAILED",
            message: format!("compare-and-swap failed: the key's current revision is {current}"),
            current_revision: Some(current),
        }),
        CoreResponse::Rejected { message } => Err(ApiError::BadRequest(message)),
        other => Err(ApiError::Internal(format!("unexpected result {other:?}"))),
    }
}

/// `PUT /v1/kv/{key}` with the raw value as body (`?cas=REVISION`, 0 = create only).
pub async fn put(
    State(master): State<Arc<Master>>,
    Path(key): Path<String>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<KvWriteResult>, ApiError> {
    let Query(params) = query?;
    let value = body?;
    kv::validate_key(&key).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    kv::validate_value(&value).map_err(|e| ApiError::PayloadTooLarge(e.to_string()))?;
    let cas = number(&params, "cas")?;
    write_result(master.propose(Command::KvPut { key, value: value.to_vec(), cas }).await?)
}

/// `DELETE /v1/kv/{key}` (`?cas=REVISION`, `?recurse`).
pub async fn delete(
    State(master): State<Arc<Master>>,
    Path(key): Path<String>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<KvWriteResult>, ApiError> {
    let Query(params) = query?;
    let recurse = flag(&params, "recurse")?;
    let cas = number(&params, "cas")?;
    if recurse && cas.is_some() {
        return Err(ApiError::BadRequest("cas and recurse cannot be combined".into()));
    }
    if !recurse {
        kv::validate_key(&key).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    write_result(master.propose(Command::KvDelete { key, cas, recurse }).await?)
}

/// 404 for unknown API paths, in the common error shape.
pub async fn not_found() -> impl IntoResponse {
    ApiError::NotFound("no such API path; see the README's API section".into())
}
