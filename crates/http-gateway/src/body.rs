//! Reading request bodies with a hard limit, so every failure has the contract's shape.

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::Payload;
use bytes::BytesMut;
use futures_util::StreamExt;
use serde_json::Value;

use crate::error::ApiError;

/// Reads at most `limit` bytes of body, failing with 413 `too_large` past it.
pub async fn read_limited(mut payload: Payload, limit: usize) -> Result<BytesMut, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::invalid("could not read the request body"))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                chat_domain::ErrorCode::TooLarge,
                format!("request body must be at most {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads an optional JSON object body: no body, or no content type, reads as `{}`; another
/// content type is 415; malformed JSON is 400.
pub async fn read_json(
    request: &HttpRequest,
    payload: Payload,
    limit: usize,
) -> Result<Value, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = read_limited(payload, limit).await?;
    let Some(content_type) = content_type else {
        return Ok(Value::Object(Default::default()));
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(ApiError::new(
            chat_domain::ErrorCode::UnsupportedType,
            "Content-Type must be application/json",
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|error| ApiError::invalid(format!("malformed JSON: {error}")))
}
