//! Authentication middleware, DC/OS-style login, and user management (`/acs/api/v1`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::server::ConnInfo;
use crate::auth;
use crate::core::{Command, Response as CoreResponse, User};
use crate::master::Master;
use crate::pki::Role;

/// The authenticated caller, available to handlers behind [`require_token`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: String,
}

fn token_secret(master: &Master) -> Result<String, ApiError> {
    let state = master.state.read().expect("state lock");
    state
        .identity
        .as_ref()
        .map(|i| i.token_secret.clone())
        .ok_or_else(|| ApiError::Unavailable("the cluster is still initialising; retry in a moment".into()))
}

/// Rejects requests without a valid token (`Authorization: token=<jwt>` or `Bearer <jwt>`).
pub async fn require_token(
    State(master): State<Arc<Master>>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(token) = auth::token_from_header(header) else {
        return Err(ApiError::Unauthorized(
            "ERR_MISSING_AUTH_HEADER",
            "request has no token; send 'Authorization: token=<token>' (get one with `medos auth login`)".into(),
        ));
    };
    let secret = token_secret(&master)?;
    let claims = auth::verify_token(&secret, token, auth::now_secs())
        .map_err(|e| ApiError::Unauthorized("ERR_INVALID_TOKEN", e.to_string()))?;
    let exists = master.state.read().expect("state lock").users.contains_key(&claims.uid);
    if !exists {
        return Err(ApiError::Unauthorized("ERR_INVALID_TOKEN", format!("user {:?} no longer exists", claims.uid)));
    }
    req.extensions_mut().insert(Caller { uid: claims.uid });
    Ok(next.run(req).await)
}

/// Admits only masters of this cluster (verified client certificate with `OU=master`).
pub async fn require_master(State(master): State<Arc<Master>>, req: Request, next: Next) -> Result<Response, ApiError> {
    let info = req.extensions().get::<ConnInfo>().cloned();
    match info.and_then(|i| i.peer) {
        Some(peer) if peer.role == Role::Master => {}
        _ => return Err(ApiError::Forbidden("internal endpoints accept only masters' client certificates".into())),
    }
    if let Some(theirs) = req.headers().get(crate::master::network::CLUSTER_HEADER).and_then(|v| v.to_str().ok()) {
        let ours = master.state.read().expect("state lock").cluster_id().map(String::from);
        if let Some(ours) = ours
            && ours != theirs
        {
            return Err(ApiError::Forbidden(format!("request from cluster {theirs}, this master belongs to {ours}")));
        }
    }
    Ok(next.run(req).await)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub uid: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    pub token: String,
}

/// `POST /acs/api/v1/auth/login` with `{"uid", "password"}` → `{"token"}`.
pub async fn login(
    State(master): State<Arc<Master>>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<LoginResponse>, ApiError> {
    let Json(req) = body?;
    let secret = token_secret(&master)?;
    let hash = master.state.read().expect("state lock").users.get(&req.uid).map(|u| u.password_hash.clone());
    let invalid = || ApiError::Unauthorized("ERR_INVALID_CREDENTIALS", "login failed: wrong uid or password".into());
    let Some(hash) = hash else { return Err(invalid()) };
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if !ok {
        return Err(invalid());
    }
    Ok(Json(LoginResponse { token: auth::issue_token(&secret, &req.uid, auth::now_secs()) }))
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserView {
    pub uid: String,
    pub description: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UserList {
    pub array: Vec<UserView>,
}

/// `GET /acs/api/v1/users` (DC/OS shape: `{"array": [...]}`).
pub async fn list_users(State(master): State<Arc<Master>>) -> Json<UserList> {
    let state = master.state.read().expect("state lock");
    let array =
        state.users.values().map(|u| UserView { uid: u.uid.clone(), description: u.description.clone() }).collect();
    Json(UserList { array })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutUser {
    pub password: String,
    #[serde(default)]
    pub description: String,
}

/// `PUT /acs/api/v1/users/{uid}` with `{"password", "description"}`.
pub async fn put_user(
    State(master): State<Arc<Master>>,
    Path(uid): Path<String>,
    body: Result<Json<PutUser>, axum::extract::rejection::JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<UserView>), ApiError> {
    let Json(req) = body?;
    crate::core::users::validate_uid(&uid).map_err(ApiError::BadRequest)?;
    if req.password.len() < 8 {
        return Err(ApiError::BadRequest("password: must be at least 8 characters".into()));
    }
    let password = req.password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = User { uid: uid.clone(), password_hash: hash, description: req.description.clone() };
    match master.propose(Command::UserPut { user }).await? {
        CoreResponse::UserWritten { .. } => {
            Ok((axum::http::StatusCode::CREATED, Json(UserView { uid, description: req.description })))
        }
        CoreResponse::Rejected { message } => Err(ApiError::BadRequest(message)),
        other => Err(ApiError::Internal(format!("unexpected result {other:?}"))),
    }
}

/// `DELETE /acs/api/v1/users/{uid}`.
pub async fn delete_user(
    State(master): State<Arc<Master>>,
    Path(uid): Path<String>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<axum::http::StatusCode, ApiError> {
    if caller.uid == uid {
        return Err(ApiError::BadRequest("you cannot delete the user you are logged in as".into()));
    }
    match master.propose(Command::UserDelete { uid: uid.clone() }).await? {
        CoreResponse::UserDeleted { existed: true, .. } => Ok(axum::http::StatusCode::NO_CONTENT),
        CoreResponse::UserDeleted { existed: false, .. } => Err(ApiError::NotFound(format!("no user {uid:?}"))),
        other => Err(ApiError::Internal(format!("unexpected result {other:?}"))),
    }
}
