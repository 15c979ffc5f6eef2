//! The HTTP request that opened a connection: [`RequestInfo`] as handlers see it, and the
//! compact copy a connection keeps. Every connection holds it for its lifetime, so a full
//! `HeaderMap` (several KiB, and sharing the HTTP read buffer it was parsed from) would
//! dominate the memory of an idle connection: it is kept in one allocation instead.

use std::net::SocketAddr;

use actix_web::{
    HttpRequest,
    http::header::{self, HeaderMap, HeaderName, HeaderValue},
};

/// The HTTP request that opened an Engine.IO connection (the polling handshake or the direct
/// WebSocket request). A compact copy is kept for the connection's lifetime and rebuilt for
/// each namespace CONNECT; the WebSocket handshake's own headers (`Sec-WebSocket-*`,
/// `Upgrade`, `Connection`) are left out.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The TCP peer, if known. Behind a proxy this is the proxy.
    pub peer_addr: Option<SocketAddr>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The raw query string, without the leading `?`.
    pub query: String,
}

/// Headers of the WebSocket handshake itself, useless to an application, not kept.
const SKIPPED: [HeaderName; 5] = [
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_EXTENSIONS,
    header::UPGRADE,
    header::CONNECTION,
];

/// Separates names and values; header values cannot contain NUL.
const SEPARATOR: u8 = 0;

/// The compact copy of the request a connection keeps.
pub(crate) struct StoredRequest {
    peer_addr: Option<SocketAddr>,
    /// `name\0value\0` for each kept header, in order.
    headers: Box<[u8]>,
    query: Box<str>,
}

impl StoredRequest {
    pub(crate) fn capture(request: &HttpRequest) -> Self {
        let mut headers = Vec::new();
        for (name, value) in request.headers().iter() {
            if SKIPPED.contains(name) {
                continue;
            }
            headers.extend_from_slice(name.as_str().as_bytes());
            headers.push(SEPARATOR);
            headers.extend_from_slice(value.as_bytes());
            headers.push(SEPARATOR);
        }
        Self {
            peer_addr: request.peer_addr(),
            headers: headers.into_boxed_slice(),
            query: request.query_string().into(),
        }
    }

    /// No request at all (for the fuzzing entry points).
    pub(crate) fn empty() -> Self {
        Self {
            peer_addr: None,
            headers: Box::default(),
            query: Box::default(),
        }
    }

    /// The request as the handler sees it, rebuilt for each call that is given it.
    pub(crate) fn info(&self) -> RequestInfo {
        let mut parts = self.headers.split(|byte| *byte == SEPARATOR);
        let mut headers = HeaderMap::new();
        while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
            if let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
            {
                headers.append(name, value);
            }
        }
        RequestInfo {
            peer_addr: self.peer_addr,
            headers,
            query: self.query.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn headers_round_trip_without_handshake_noise() {
        let request = TestRequest::get()
            .uri("/socket.io/?EIO=4&transport=websocket&token=abc")
            .insert_header(("authorization", "Bearer t"))
            .insert_header(("x-forwarded-for", "1.2.3.4"))
            .insert_header(("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="))
            .append_header(("accept-language", "en"))
            .append_header(("accept-language", "fr"))
            .peer_addr("127.0.0.1:9000".parse().unwrap())
            .to_http_request();
        let info = StoredRequest::capture(&request).info();
        assert_eq!(info.query, "EIO=4&transport=websocket&token=abc");
        assert_eq!(info.peer_addr, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(info.headers.get("authorization").unwrap(), "Bearer t");
        assert_eq!(info.headers.get("x-forwarded-for").unwrap(), "1.2.3.4");
        assert!(info.headers.get("sec-websocket-key").is_none());
        assert_eq!(info.headers.get_all("accept-language").count(), 2);
    }
}
