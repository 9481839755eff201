//! `ApiJson<T>`: a JSON body whose every rejection is an `ApiError` with a stable code:
//! malformed JSON and unknown fields are 400, a missing content type 415, an oversized body
//! 413. Nothing is stored for a rejected body. `ApiQuery<T>`: a query string, likewise
//! (400 `INVALID_QUERY`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::code;
use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|e| ApiError::bad_request(code::INVALID_QUERY, e.body_text()))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => {
                    ApiError::bad_request(code::INVALID_REQUEST, format!("the request body does not fit: {}", e.body_text()))
                }
                JsonRejection::JsonSyntaxError(_) => ApiError::bad_request(code::INVALID_JSON, "the request body is not valid JSON"),
                JsonRejection::MissingJsonContentType(_) => {
                    ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, code::UNSUPPORTED_MEDIA_TYPE, "send `Content-Type: application/json`")
                }
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code::BODY_TOO_LARGE, "the request body is over 64 KiB")
                }
                other => ApiError::bad_request(code::INVALID_REQUEST, other.body_text()),
            }),
        }
    }
}
