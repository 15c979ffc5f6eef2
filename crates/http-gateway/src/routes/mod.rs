//! REST routes of the contract, one module per resource.

pub mod cluster;
pub mod guest;
pub mod public;
pub mod webrtc;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;

/// Mounts every REST route on `config`.
pub fn configure(config: &mut web::ServiceConfig) {
    cluster::configure(config);
    guest::configure(config);
    public::configure(config);
    webrtc::configure(config);
    crate::files::configure(config);
    crate::web::configure(config);
}

/// The answer to unknown routes: the contract's error shape, 404.
pub async fn not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let shown: String = request.path().chars().take(100).collect();
    Err(ApiError::not_found(format!(
        "No route for {} {shown}",
        request.method()
    )))
}

/// The answer to a known route with another method: 405 in the contract's error shape, with
/// `Allow` naming the methods the OpenAPI document gives the route (`GET, HEAD` for the web
/// client's pages, which it does not describe).
pub async fn method_not_allowed(request: HttpRequest) -> HttpResponse {
    let allow = request
        .match_pattern()
        .and_then(|pattern| crate::openapi::allowed_methods(&pattern))
        .unwrap_or("GET, HEAD");
    refuse_method(allow)
}

/// 405 `method_not_allowed` in the contract's error shape, with `Allow: allow`.
pub(crate) fn refuse_method(allow: &str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((actix_web::http::header::ALLOW, allow))
        .json(serde_json::json!({"error": {"code": "method_not_allowed", "message": "Method not allowed"}}))
}
