//! HTTP errors the way Nomad answers them: a status code and a plain-text message. User input
//! never gets a 500: a bad body is 400, a missing object 404, a refused change 409/403.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(m) = &self {
            tracing::error!(error = %m, "API request failed");
        }
        (self.status(), self.to_string()).into_response()
    }
}

/// Nomad reads boolean query parameters case-insensitively (`?purge=True`), and a bare `?purge`
/// means true.
pub fn query_bool(v: Option<&String>) -> Result<bool, ApiError> {
    match v.map(|s| s.to_ascii_lowercase()) {
        None => Ok(false),
        Some(s) if s.is_empty() || s == "true" || s == "1" => Ok(true),
        Some(s) if s == "false" || s == "0" => Ok(false),
        Some(s) => Err(ApiError::BadRequest(format!(
            "invalid boolean value {s:?}: expected true or false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_case_insensitive() {
        for (v, want) in [
            ("True", true),
            ("TRUE", true),
            ("", true),
            ("false", false),
            ("False", false),
        ] {
            assert_eq!(
                query_bool(Some(&v.to_string())).expect("valid"),
                want,
                "{v}"
            );
        }
        assert!(!query_bool(None).expect("absent"));
        assert!(query_bool(Some(&"maybe".to_string())).is_err());
    }
}
