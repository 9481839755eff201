//! `ApiError`: every failure the API reports, as `{"error": {"code", "message", …}}` with a
//! stable code. One table maps store and planner errors to statuses. A server-side failure
//! logs its cause and shows the caller a generic message; client mistakes are always 4xx.

use crate::code;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use wsd_core::PlanError;
use wsd_store::StoreError;

/// The shape of every error answer, as the OpenAPI document describes it: a stable code, a
/// message, and details such as `provider` or `accepted_keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code, e.g. `MISSING_BYOK_CREDENTIAL`, `NOT_FOUND`, `INVALID_KEY`.
    pub code: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Map::new() }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, code::NOT_FOUND, format!("{what} not found"))
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code::UNAUTHENTICATED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code::FORBIDDEN, message)
    }

    fn internal(code: &'static str, cause: &dyn std::error::Error) -> Self {
        let request_id = uuid::Uuid::now_v7();
        tracing::error!(%request_id, code, error = %cause, source = ?std::error::Error::source(cause).map(ToString::to_string), "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, code, format!("internal error (request {request_id}); the server log has the cause"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { what } => Self::not_found(what),
            StoreError::Conflict { what } => Self::new(StatusCode::CONFLICT, code::CONFLICT, format!("{what} already exists")),
            // Names a key, never a value: safe to show, and the operator needs it.
            StoreError::SecretDecryptFailed { .. } => {
                tracing::error!(error = %e, "secret decryption failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.code(), e.to_string())
            }
            _ => Self::internal(e.code(), &e),
        }
    }
}

impl From<PlanError> for ApiError {
    fn from(e: PlanError) -> Self {
        let mut error = Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.code().as_str(), e.to_string());
        if let Some(provider) = e.provider() {
            error = error.with("provider", provider);
        }
        match &e {
            PlanError::MissingByokCredential { accepted, .. } => error.with("accepted_keys", json!(accepted)),
            PlanError::ForbiddenTenantEnvKey { keys } | PlanError::ProtectedEnvKey { keys } => error.with("keys", json!(keys)),
            _ => error,
        }
    }
}

/// The detail that also goes out as a `Retry-After` header.
pub const RETRY_AFTER_SECONDS: &str = "retry_after_seconds";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.details.get(RETRY_AFTER_SECONDS).and_then(Value::as_u64);
        let mut body = Map::new();
        body.insert("code".into(), Value::from(self.code));
        body.insert("message".into(), Value::from(self.message));
        body.extend(self.details);
        let mut response = (self.status, Json(json!({ "error": body }))).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
