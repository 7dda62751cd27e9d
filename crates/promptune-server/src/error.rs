//! What a request can fail with, and the HTTP status and JSON body each failure gives.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A failed request: every variant is a clear status and `{"error": message}`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The request is malformed: not JSON, missing fields, empty inputs, bad options.
    #[error("{0}")]
    BadRequest(String),
    /// No adapter of that name is loaded.
    #[error("no adapter named `{0}` is loaded (GET /v1/adapters lists them)")]
    UnknownAdapter(String),
    /// The adapter was trained for another task than the endpoint serves.
    #[error("{0}")]
    WrongTask(String),
    /// The request is well formed but cannot be done: an input longer than the adapter reads,
    /// an adapter for another base model.
    #[error("{0}")]
    Unprocessable(String),
    /// Too many inputs, or a body over the limit.
    #[error("{0}")]
    TooLarge(String),
    /// The queue is full: try again after the given seconds.
    #[error("the server is busy ({0} requests queued): retry later")]
    Busy(usize),
    /// The request waited past its deadline.
    #[error("the request was not answered within its deadline of {0} ms")]
    Deadline(u128),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// An admin endpoint without the right bearer token.
    #[error("this endpoint needs `Authorization: Bearer <admin token>`")]
    Unauthorized,
    /// A failure on our side (logged).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServeError {
    /// The HTTP status of this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            ServeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServeError::UnknownAdapter(_) => StatusCode::NOT_FOUND,
            ServeError::WrongTask(_) | ServeError::Unprocessable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ServeError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServeError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ServeError::Deadline(_) => StatusCode::GATEWAY_TIMEOUT,
            ServeError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ServeError::Unauthorized => StatusCode::UNAUTHORIZED,
            ServeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A library error met while serving a request: bad input is the client's (422), the
    /// rest ours (500).
    pub fn from_library(err: promptune::Error) -> Self {
        match err {
            promptune::Error::InvalidInput(_) | promptune::Error::Shape(_) => {
                ServeError::Unprocessable(err.to_string())
            }
            other => ServeError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            eprintln!("promptune serve: {self}");
        }
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        match &self {
            ServeError::Busy(_) | ServeError::ShuttingDown => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ServeError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
