//! The Engine.IO endpoint: validates the query like the reference server, then hands the
//! request to the long-polling or WebSocket transport.

pub(crate) mod http;
pub(crate) mod polling;
pub(crate) mod websocket;
pub(crate) mod ws_io;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, http::Method, web};

use self::http::{Cors, EngineError, route};
use crate::engine::{
    conn::Transport,
    server::{Engine, Protocol},
};

/// Mounts the endpoint (GET, POST, OPTIONS) at the configured path, with and without its
/// trailing slash.
pub(crate) fn mount<P: Protocol>(engine: &Arc<Engine<P>>, cfg: &mut web::ServiceConfig) {
    let path = engine.config.normalized_path();
    let mut paths = vec![path.clone()];
    if path != "/" {
        paths.push(path.trim_end_matches('/').to_owned());
    }
    let engine = Arc::clone(engine);
    cfg.service(
        web::resource(paths).to(move |request: HttpRequest, body: web::Payload| {
            handle(Arc::clone(&engine), request, body)
        }),
    );
}

/// Serves one request to the Engine.IO path.
async fn handle<P: Protocol>(
    engine: Arc<Engine<P>>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    let cors = Cors::new(&engine.config, &request);
    if request.method() == Method::OPTIONS {
        return cors.preflight(&request);
    }
    let (transport, sid) = match route(request.query_string(), request.method()) {
        Ok(route) => route,
        Err(error) => return cors.error(error),
    };
    if sid.is_none() && !engine.protocol.allow_handshake(&request).await {
        return cors.error(EngineError::TooManyHandshakes);
    }
    let method = request.method();
    match (transport, sid) {
        (Transport::Polling, None) => polling::handshake(&engine, &request, &cors),
        (Transport::WebSocket, None) => websocket::open(engine, &request, body, &cors),
        (Transport::Polling, Some(sid)) if method == Method::GET => {
            polling::poll(&engine, sid, &cors).await
        }
        (Transport::Polling, Some(sid)) => polling::post(&engine, sid, body, &cors).await,
        (Transport::WebSocket, Some(sid)) => websocket::upgrade(engine, sid, &request, body, &cors),
    }
}
