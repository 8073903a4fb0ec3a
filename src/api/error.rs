//! Typed API errors and their JSON bodies.
//!
//! One body shape serves every client family: `message` (Marathon, medos), and `title`,
//! `description`, `code` (DC/OS IAM).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::master::ProposeError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{1}")]
    Unauthorized(&'static str, String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String, current_revision: Option<u64> },
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 421: this master is not the leader (used between masters only).
    #[error("{0}")]
    NotLeader(String),
    #[error("{0}")]
    Unavailable(String),
    /// 502: a proxied service could not be reached or answered nothing.
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    Internal(String),
}

/// The wire form of every error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    pub title: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub current_revision: Option<u64>,
}

impl ErrorBody {
    /// Parses an error answer, or wraps a body that is not ours (a proxy's text, say).
    pub fn parse_or_text(bytes: &[u8], status: impl std::fmt::Display) -> Self {
        serde_json::from_slice(bytes).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(bytes).into_owned();
            ErrorBody {
                code: "ERR_UNKNOWN".into(),
                message: text.clone(),
                title: status.to_string(),
                description: text,
                current_revision: None,
            }
        })
    }
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(code, _) => (StatusCode::UNAUTHORIZED, code),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "ERR_FORBIDDEN"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "ERR_BAD_REQUEST"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "ERR_NOT_FOUND"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "ERR_PAYLOAD_TOO_LARGE"),
            ApiError::NotLeader(_) => (StatusCode::MISDIRECTED_REQUEST, "ERR_NOT_LEADER"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ERR_UNAVAILABLE"),
            ApiError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "ERR_BAD_GATEWAY"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "ERR_INTERNAL"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let current_revision = match &self {
            ApiError::Conflict { current_revision, .. } => *current_revision,
            _ => None,
        };
        let message = self.to_string();
        let body = ErrorBody {
            code: code.to_string(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            description: message.clone(),
            message,
            current_revision,
        };
        (status, Json(body)).into_response()
    }
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::Other(m) => ApiError::Internal(m),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge("request body is too large".into());
        }
        ApiError::BadRequest(format!("invalid JSON body: {}", r.body_text()))
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge(format!("request body is too large: {}", r.body_text()));
        }
        ApiError::BadRequest(r.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::BadRequest(format!("invalid query string: {}", r.body_text()))
    }
}
