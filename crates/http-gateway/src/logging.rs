//! Correlation of log lines: every HTTP request runs in a `request` span with its own id
//! (also returned as `X-Request-Id`), every Socket.IO event in a `socket_event` span with the
//! socket and user ids, so each line (with `CHAT__LOG__FORMAT=json`, its `span`/`spans`
//! fields) says which request or socket it belongs to.

use std::future::Future;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use tracing::Instrument;

/// The response header carrying a request's id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Middleware (for `App::wrap_fn`): runs the request in a `request` span with a fresh id and
/// returns the id in `X-Request-Id`.
pub fn request_span<S, B>(
    request: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %shown(request.path()));
    let response = span.in_scope(|| service.call(request));
    async move {
        let mut response = response.await?;
        if let Ok(value) = HeaderValue::from_str(&id) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
        }
        Ok(response)
    }
    .instrument(span)
}

/// Client text as it may appear in a log line: at most 64 characters, no control characters.
pub fn shown(text: &str) -> String {
    text.chars()
        .filter(|character| !character.is_control())
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_bounded_and_printable() {
        assert_eq!(shown("chat:message"), "chat:message");
        assert_eq!(shown("a\nb\u{1b}[31m"), "ab[31m");
        assert_eq!(shown(&"x".repeat(100)).len(), 64);
    }
}
