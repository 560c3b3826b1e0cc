//! The error responses each kind of operation documents, so that the
//! OpenAPI document lists every status the server can answer with.

use super::problem::Problem;
use utoipa::IntoResponses;

/// Errors of operations that only read.
#[derive(IntoResponses)]
#[allow(dead_code)] // a description for the OpenAPI document; never built
pub enum ReadErrors {
    /// The path is malformed.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No valid token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token's roles do not allow this.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// Nothing with that name.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
}

/// Errors of operations that change something.
#[derive(IntoResponses)]
#[allow(dead_code)] // a description for the OpenAPI document; never built
pub enum WriteErrors {
    /// The body or path is malformed.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No valid token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token's roles do not allow this, or separation of duties forbids it.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// Nothing with that name.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// Refused in the current state: gates blocking (listed), paused, final, window closed, a concurrent change.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// The body is over the size limit.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not JSON.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// The body is JSON but its values are invalid.
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(Problem),
}
