//! The servers the official protocol test suites expect, both on 127.0.0.1:3000 with
//! pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1000000 and CORS `*`:
//!
//! - at `/socket.io/`, for `socketio/socket.io-protocol` (`test-suite/`), a Socket.IO server
//!   (connectTimeout 1000 ms): on connection it emits `auth` with the handshake's auth
//!   payload, answers `message` with `message-back` carrying the same arguments, acks
//!   `message-with-ack` with its arguments, and accepts namespace `/custom` too;
//! - at `/engine.io/`, for `socketio/engine.io-protocol` (`test-suite/`), a plain Engine.IO
//!   server that sends every message back as it came.
//!
//! `cargo run --release -p actix-socketio --example conformance`

use std::time::Duration;

use actix_socketio::{
    Config, ConnectError, DisconnectReason, EngineHandler, EngineIo, EngineMessage, EngineSocket,
    Event, Handler, RequestInfo, Socket, SocketIo,
};
use actix_web::{App, HttpServer};
use serde_json::{Value, json};

struct Conformance;

impl Handler for Conformance {
    type State = Value;

    fn accepts_namespace(&self, nsp: &str) -> bool {
        nsp == "/" || nsp == "/custom"
    }

    async fn connect(
        &self,
        _socket_id: &str,
        _nsp: &str,
        auth: Option<Value>,
        _request: &RequestInfo,
    ) -> Result<Value, ConnectError> {
        Ok(auth.unwrap_or_else(|| json!({})))
    }

    async fn connected(&self, socket: &Socket<Value>) {
        let _ = socket.emit("auth", socket.state());
    }

    async fn event(&self, socket: &Socket<Value>, event: Event) {
        match event.name.as_str() {
            "message" => {
                let _ =
                    socket.emit_with_attachments("message-back", &event.args, event.attachments);
            }
            "message-with-ack" => {
                if let Some(ack) = event.ack {
                    let _ = ack.send_with_attachments(&event.args, event.attachments);
                }
            }
            _ => {}
        }
    }

    async fn disconnected(&self, _socket: &Socket<Value>, _reason: DisconnectReason) {}
}

/// The Engine.IO echo.
struct Echo;

impl EngineHandler for Echo {
    async fn message(&self, socket: &EngineSocket, message: EngineMessage) {
        let _ = socket.send_message(message);
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let config = Config {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        connect_timeout: Duration::from_millis(1000),
        cors_origins: Some(vec!["*".to_owned()]),
        ..Config::default()
    };
    let engine = EngineIo::new(
        Config {
            path: "/engine.io/".to_owned(),
            ..config.clone()
        },
        Echo,
    );
    let io = SocketIo::new(config, Conformance);
    HttpServer::new(move || {
        let io = io.clone();
        let engine = engine.clone();
        App::new()
            .configure(move |cfg| io.configure(cfg))
            .configure(move |cfg| engine.configure(cfg))
    })
    // One worker, like the single-threaded reference: the suite sends concurrent requests
    // (a poll and a close) and expects them handled in the order they were sent.
    .workers(1)
    .bind(("127.0.0.1", 3000))?
    .run()
    .await
}
