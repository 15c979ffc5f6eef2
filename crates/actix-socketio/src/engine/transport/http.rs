//! HTTP details of the endpoint: the query and its checks, the reference server's JSON
//! errors, and CORS.

use actix_web::{
    HttpRequest, HttpResponse, HttpResponseBuilder,
    http::{
        Method, StatusCode,
        header::{self, HeaderValue},
    },
};
use engineioxide_core::Sid;

use crate::{config::Config, engine::conn::Transport};

/// The Engine.IO query parameters.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Query<'a> {
    pub(crate) eio: Option<&'a str>,
    pub(crate) transport: Option<&'a str>,
    pub(crate) sid: Option<&'a str>,
}

impl<'a> Query<'a> {
    pub(crate) fn parse(query: &'a str) -> Self {
        let mut parsed = Self::default();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "EIO" => parsed.eio = Some(value),
                "transport" => parsed.transport = Some(value),
                "sid" => parsed.sid = Some(value),
                _ => {}
            }
        }
        parsed
    }
}

/// What a request's query and method ask for, checked like the reference server: the
/// transport and the session (`None` for a handshake), or the error to answer.
pub(crate) fn route(query: &str, method: &Method) -> Result<(Transport, Option<Sid>), EngineError> {
    let query = Query::parse(query);
    let transport = match query.transport {
        Some("polling") => Transport::Polling,
        Some("websocket") => Transport::WebSocket,
        _ => return Err(EngineError::UnknownTransport),
    };
    if query.eio != Some("4") {
        return Err(EngineError::UnsupportedProtocolVersion);
    }
    let sid = match query.sid.map(str::parse::<Sid>) {
        None => None,
        Some(Ok(sid)) => Some(sid),
        Some(Err(_)) => return Err(EngineError::UnknownSid),
    };
    match (transport, sid) {
        (_, None) if method != Method::GET => Err(EngineError::BadHandshakeMethod),
        (Transport::Polling, Some(_)) if method != Method::GET && method != Method::POST => {
            Err(EngineError::BadRequest)
        }
        route => Ok(route),
    }
}

/// The reference server's error codes, answered as HTTP 400 with `{"code","message"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EngineError {
    UnknownTransport,
    UnknownSid,
    BadHandshakeMethod,
    BadRequest,
    UnsupportedProtocolVersion,
    /// The protocol refused the handshake
    /// ([`Handler::allow_handshake`](crate::Handler::allow_handshake)).
    TooManyHandshakes,
}

impl EngineError {
    fn body(self) -> &'static str {
        match self {
            Self::UnknownTransport => r#"{"code":0,"message":"Transport unknown"}"#,
            Self::UnknownSid => r#"{"code":1,"message":"Session ID unknown"}"#,
            Self::BadHandshakeMethod => r#"{"code":2,"message":"Bad handshake method"}"#,
            Self::BadRequest => r#"{"code":3,"message":"Bad request"}"#,
            Self::UnsupportedProtocolVersion => {
                r#"{"code":5,"message":"Unsupported protocol version"}"#
            }
            Self::TooManyHandshakes => r#"{"code":4,"message":"Too many handshakes"}"#,
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::TooManyHandshakes => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// The CORS headers a response to this request gets, if any.
pub(crate) struct Cors {
    allow_origin: Option<HeaderValue>,
    credentials: bool,
}

impl Cors {
    pub(crate) fn new(config: &Config, request: &HttpRequest) -> Self {
        let Some(origins) = &config.cors_origins else {
            return Self {
                allow_origin: None,
                credentials: false,
            };
        };
        if origins.iter().any(|origin| origin == "*") {
            return Self {
                allow_origin: Some(HeaderValue::from_static("*")),
                credentials: false,
            };
        }
        let allow_origin = request
            .headers()
            .get(header::ORIGIN)
            .filter(|origin| {
                origin
                    .to_str()
                    .is_ok_and(|origin| origins.iter().any(|allowed| allowed == origin))
            })
            .cloned();
        Self {
            credentials: allow_origin.is_some(),
            allow_origin,
        }
    }

    /// A response builder with the CORS headers set.
    pub(crate) fn builder(&self, status: StatusCode) -> HttpResponseBuilder {
        let mut builder = HttpResponse::build(status);
        if let Some(origin) = &self.allow_origin {
            builder.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
            if self.credentials {
                builder.insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"));
                builder.insert_header((header::VARY, "Origin"));
            }
        }
        builder
    }

    pub(crate) fn error(&self, error: EngineError) -> HttpResponse {
        self.builder(error.status())
            .content_type("application/json")
            .body(error.body())
    }

    /// Answers a CORS preflight.
    pub(crate) fn preflight(&self, request: &HttpRequest) -> HttpResponse {
        let mut builder = self.builder(StatusCode::NO_CONTENT);
        if self.allow_origin.is_some() {
            let requested = request
                .headers()
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("content-type"));
            builder
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, requested))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"));
        }
        builder.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Query;

    fn check(query: &str, eio: Option<&str>, transport: Option<&str>, sid: Option<&str>) {
        assert_eq!(
            Query::parse(query),
            Query {
                eio,
                transport,
                sid
            }
        );
    }

    #[test]
    fn queries() {
        check(
            "EIO=4&transport=polling&t=N8hyd6w",
            Some("4"),
            Some("polling"),
            None,
        );
        check(
            "EIO=4&transport=websocket&sid=abc",
            Some("4"),
            Some("websocket"),
            Some("abc"),
        );
        check("", None, None, None);
        check("EIO&transport=", Some(""), Some(""), None);
    }
}
