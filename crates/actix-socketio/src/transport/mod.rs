//! The Engine.IO endpoint: validates the query like the reference server, then hands the
//! request to the long-polling or WebSocket transport.

mod http;
mod polling;
mod websocket;

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

use self::http::{Cors, EngineError, Query};

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
    let query = Query::parse(request.query_string());
    let transport = match query.transport {
        Some("polling") => Transport::Polling,
        Some("websocket") => Transport::WebSocket,
        _ => return cors.error(EngineError::UnknownTransport),
    };
    if query.eio != Some("4") {
        return cors.error(EngineError::UnsupportedProtocolVersion);
    }
    let sid = match query.sid.map(str::parse::<Sid>) {
        None => None,
        Some(Ok(sid)) => Some(sid),
        Some(Err(_)) => return cors.error(EngineError::UnknownSid),
    };
    let method = request.method().clone();
    match (transport, sid) {
        (_, None) if method != Method::GET => cors.error(EngineError::BadHandshakeMethod),
        (Transport::Polling, None) => polling::handshake(&shared, &request, &cors),
        (Transport::WebSocket, None) => websocket::open(shared, &request, body, &cors),
        (Transport::Polling, Some(sid)) if method == Method::GET => {
            polling::poll(&shared, sid, &cors).await
        }
        (Transport::Polling, Some(sid)) if method == Method::POST => {
            polling::post(&shared, sid, body, &cors).await
        }
        (Transport::Polling, Some(_)) => cors.error(EngineError::BadRequest),
        (Transport::WebSocket, Some(sid)) => websocket::upgrade(shared, sid, &request, body, &cors),
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
