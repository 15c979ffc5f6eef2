//! The Engine.IO endpoint: validates the query like the reference server, then hands the
//! request to the long-polling or WebSocket transport.

pub(crate) mod http;
pub(crate) mod polling;
pub(crate) mod websocket;
pub(crate) mod ws_io;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, http::Method, web};
use engineioxide_core::Sid;

use crate::{
    conn::{Conn, Work},
    handler::Handler,
    request::StoredRequest,
    server::Shared,
    socket::Transport,
};

pub(crate) use self::http::EngineError;
use self::http::{Cors, Query};

/// Serves one request to the Engine.IO path.
pub(crate) async fn handle<H: Handler>(
    shared: Arc<Shared<H>>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    let cors = Cors::new(&shared.config, &request);
    if request.method() == Method::OPTIONS {
        return cors.preflight(&request);
    }
    let (transport, sid) = match route(request.query_string(), request.method()) {
        Ok(route) => route,
        Err(error) => return cors.error(error),
    };
    if sid.is_none() && !shared.handler.allow_handshake(&request) {
        return cors.error(EngineError::TooManyHandshakes);
    }
    let method = request.method();
    match (transport, sid) {
        (Transport::Polling, None) => polling::handshake(&shared, &request, &cors),
        (Transport::WebSocket, None) => websocket::open(shared, &request, body, &cors),
        (Transport::Polling, Some(sid)) if method == Method::GET => {
            polling::poll(&shared, sid, &cors).await
        }
        (Transport::Polling, Some(sid)) => polling::post(&shared, sid, body, &cors).await,
        (Transport::WebSocket, Some(sid)) => websocket::upgrade(shared, sid, &request, body, &cors),
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

/// A new connection for `request`, registered with the server.
fn new_conn<H: Handler>(
    shared: &Shared<H>,
    request: &HttpRequest,
    transport: Transport,
) -> Arc<Conn<H::State>> {
    let conn = Arc::new(Conn::new(
        StoredRequest::capture(request),
        transport,
        Arc::clone(&shared.sockets),
        shared.config.outbound_queue,
        shared.config.ping_interval,
    ));
    if shared.engine.is_some() {
        conn.push_work(Work::Opened);
    }
    shared.sessions.insert(conn.sid, Arc::clone(&conn));
    tracing::debug!(sid = %conn.sid, ?transport, "connection opened");
    conn
}
