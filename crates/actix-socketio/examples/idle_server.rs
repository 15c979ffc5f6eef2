//! A minimal Socket.IO server with the default timings, for load and memory measurements:
//! accepts every CONNECT on `/` and echoes `echo` events. Listens on 127.0.0.1:`PORT`
//! (default 3001) with `WORKERS` actix workers (default 2) and `TCP_NODELAY` set.
//!
//! `PORT=3001 cargo run --release -p actix-socketio --example idle_server`

use actix_socketio::{
    Config, ConnectError, DisconnectReason, Event, Handler, RequestInfo, Socket, SocketIo,
};
use actix_web::{App, HttpServer};
use serde_json::Value;

struct Idle;

impl Handler for Idle {
    type State = ();

    async fn connect(
        &self,
        _socket_id: &str,
        _nsp: &str,
        _auth: Option<Value>,
        _request: &RequestInfo,
    ) -> Result<(), ConnectError> {
        Ok(())
    }

    async fn connected(&self, _socket: &Socket<()>) {}

    async fn event(&self, socket: &Socket<()>, event: Event) {
        if event.name == "echo" {
            let _ = socket.emit_with_attachments("echo", &event.args, event.attachments);
        }
    }

    async fn disconnected(&self, _socket: &Socket<()>, _reason: DisconnectReason) {}
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = env_or("PORT", 3001);
    let workers: usize = env_or("WORKERS", 2);
    let io = SocketIo::new(Config::default(), Idle);
    HttpServer::new(move || {
        let io = io.clone();
        App::new().configure(move |cfg| io.configure(cfg))
    })
    .workers(workers)
    .on_connect(|connection, _| {
        if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
