//! Entry points for the fuzz targets (`fuzz/` at the repository root): each feeds client bytes
//! through the same code a request or frame goes through, on a real connection state with one
//! socket connected to `/`, without a server or a runtime. Not part of the API.

use std::sync::Arc;

use actix_web::{http::Method, web::Bytes};
use actix_ws::AggregatedMessage;
use engineioxide_core::{Sid, Str};
use futures_util::FutureExt;
use serde_json::Value;

use crate::{
    config::Config,
    engine::{
        conn::{Conn, Transport},
        reason::DisconnectReason,
        request::{RequestInfo, StoredRequest},
        server::{Engine, Protocol},
        transport::{http::route, polling::ingest_payload, websocket::on_message},
    },
    socketio::{
        event::Event,
        handler::{ConnectError, Handler},
        layer::{SocketEngine, SocketLayer},
        socket::{Socket, SocketConn, Work},
    },
};

/// The fixture's application: no namespace exists, so every CONNECT is refused while it is
/// decoded, and no handler call is ever made.
struct Refuse;

impl Handler for Refuse {
    type State = ();

    fn accepts_namespace(&self, _nsp: &str) -> bool {
        false
    }

    async fn connect(
        &self,
        _socket_id: &str,
        _nsp: &str,
        _auth: Option<Value>,
        _request: &RequestInfo,
    ) -> Result<(), ConnectError> {
        Err(ConnectError("Invalid namespace".to_owned()))
    }

    async fn connected(&self, _socket: &Socket<()>) {}

    async fn event(&self, _socket: &Socket<()>, _event: Event) {}

    async fn disconnected(&self, _socket: &Socket<()>, _reason: DisconnectReason) {}
}

/// A connection as the transports see it: one socket connected to `/` (so its events and acks
/// are dispatched), on a server that refuses further CONNECTs.
struct Fixture {
    engine: SocketEngine<Refuse>,
    conn: Arc<SocketConn<()>>,
}

impl Fixture {
    fn new(max_payload: usize) -> Self {
        let config = Config {
            max_payload,
            outbound_queue: 16,
            ..Config::default()
        };
        let layer = SocketLayer::new(&config, Refuse);
        let engine = Engine::new(config, layer);
        let conn = Arc::new(Conn::new(
            StoredRequest::empty(),
            Transport::Polling,
            engine.protocol.conn_data(),
            engine.config.outbound_queue,
            engine.config.ping_interval,
        ));
        let socket = Socket::new(Sid::new(), Str::from("/"), (), Arc::downgrade(&conn));
        conn.state().layer.push(socket.clone());
        engine.protocol.sockets.insert(socket.sid(), socket);
        Self { engine, conn }
    }

    /// Takes the queued handler calls as the connection's task would, answering acks so their
    /// encoding runs too.
    fn drain(&self) {
        while let Some(work) = self.conn.pop_work() {
            if let Work::Event { event, .. } = work
                && let Some(ack) = event.ack
            {
                let _ = ack.send_with_attachments(&event.args, event.attachments);
            }
        }
        let mut state = self.conn.state();
        let _ = Conn::drain_frames(&mut state, self.engine.config.max_payload);
    }
}

/// The Engine.IO query string and method of a request: the transport, protocol version and
/// session id checks. Returns whether the request would be served.
pub fn query(query: &str, post: bool) -> bool {
    let method = if post { Method::POST } else { Method::GET };
    route(query, &method).is_ok()
}

/// A long-polling POST body of at most `max_payload` bytes: the payload decoder, then every
/// packet through the Engine.IO and Socket.IO decoding and dispatch. Returns why the
/// connection would close, if it would.
pub fn polling_payload(body: &[u8], max_payload: usize) -> Option<DisconnectReason> {
    let fixture = Fixture::new(max_payload);
    let body = Bytes::copy_from_slice(&body[..body.len().min(max_payload)]);
    let outcome = ingest_payload(&fixture.engine, &fixture.conn, body)
        .now_or_never()
        .and_then(Result::err);
    fixture.drain();
    outcome
}

/// A sequence of WebSocket messages on one connection (text when `text` is true, else binary),
/// through the Engine.IO and Socket.IO decoding and dispatch, so binary attachments meet the
/// packets that announce them. Stops at the first message that closes the connection.
pub fn websocket_messages<'a>(
    messages: impl IntoIterator<Item = (bool, &'a [u8])>,
) -> Option<DisconnectReason> {
    let fixture = Fixture::new(1_048_576);
    for (text, data) in messages {
        let message = if text {
            match std::str::from_utf8(data) {
                Ok(text) => AggregatedMessage::Text(text.into()),
                // A WebSocket text frame is UTF-8 or the frame decoder refuses it.
                Err(_) => continue,
            }
        } else {
            AggregatedMessage::Binary(Bytes::copy_from_slice(data))
        };
        if let Err(reason) = on_message(&fixture.engine, &fixture.conn, message) {
            fixture.drain();
            return Some(reason);
        }
    }
    fixture.drain();
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_run_the_transport_code() {
        assert!(query("EIO=4&transport=polling", false));
        assert!(!query("EIO=4&transport=polling", true));
        assert!(!query("EIO=3&transport=polling", false));
        assert_eq!(polling_payload(b"42[\"e\",1]\x1e3", 1000), None);
        assert_eq!(
            polling_payload(b"42{}", 1000),
            Some(DisconnectReason::ParseError)
        );
        assert_eq!(
            polling_payload(b"1", 1000),
            Some(DisconnectReason::TransportClose)
        );
        let attachment: &[u8] = &[1, 2, 3];
        assert_eq!(
            websocket_messages([
                (true, &b"451-1[\"e\",{\"_placeholder\":true,\"num\":0}]"[..]),
                (false, attachment),
            ]),
            None
        );
        assert_eq!(
            websocket_messages([(true, &b"abc"[..])]),
            Some(DisconnectReason::ParseError)
        );
    }
}
