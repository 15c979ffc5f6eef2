//! The plain Engine.IO server ([`EngineIo`]), checked against the behaviours the official
//! Engine.IO v4 protocol test suite specifies (`socketio/engine.io-protocol`): an echo server
//! at `/engine.io/`, handshakes and their refusals, messages both ways on both transports,
//! heartbeats, closes and the upgrade. The handler's calls are recorded too.

use std::{net::SocketAddr, time::Duration};

use actix_socketio::{
    Config, DisconnectReason, EngineHandler, EngineIo, EngineMessage, EngineSocket, RequestInfo,
};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::{HttpResponse, WAIT, WsClient, http_at, open_packet};

const PATH: &str = "/engine.io/";

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Opened(String),
    Message(EngineMessage),
    Closed(DisconnectReason),
}

struct Echo {
    calls: mpsc::UnboundedSender<Call>,
}

impl EngineHandler for Echo {
    async fn opened(&self, socket: &EngineSocket, request: &RequestInfo) {
        assert!(request.query.contains("EIO=4"));
        let _ = self.calls.send(Call::Opened(socket.id().to_owned()));
    }

    async fn message(&self, socket: &EngineSocket, message: EngineMessage) {
        let _ = self.calls.send(Call::Message(message.clone()));
        if message == EngineMessage::Text("close-me".to_owned()) {
            socket.send("bye").unwrap();
            socket.close();
        } else {
            socket.send_message(message).unwrap();
        }
    }

    async fn closed(&self, _socket: &EngineSocket, reason: DisconnectReason) {
        let _ = self.calls.send(Call::Closed(reason));
    }
}

struct EngineApp {
    addr: SocketAddr,
    engine: EngineIo<Echo>,
    calls: mpsc::UnboundedReceiver<Call>,
}

/// The reference settings of the official suite: pingInterval 300 ms, pingTimeout 200 ms,
/// maxPayload 1000000, CORS `*`.
fn reference_config() -> Config {
    Config {
        path: PATH.to_owned(),
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        cors_origins: Some(vec!["*".to_owned()]),
        ..Config::default()
    }
}

/// Slower heartbeats for the tests that do not answer pings, so a ping never slips into a
/// response they compare exactly on a busy machine.
fn relaxed_config() -> Config {
    Config {
        ping_interval: Duration::from_millis(2000),
        ping_timeout: Duration::from_millis(2000),
        ..reference_config()
    }
}

async fn spawn_engine(config: Config) -> EngineApp {
    let (sender, calls) = mpsc::unbounded_channel();
    let engine = EngineIo::new(config, Echo { calls: sender });
    let routes = engine.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    crate::helpers::serve(listener, 1, move |cfg| routes.configure(cfg));
    EngineApp {
        addr,
        engine,
        calls,
    }
}

impl EngineApp {
    async fn request(&self, method: &str, query: &str, body: Option<&str>) -> HttpResponse {
        http_at(self.addr, method, PATH, query, body, &[]).await
    }

    async fn get(&self, sid: &str) -> HttpResponse {
        self.request("GET", &session(sid), None).await
    }

    async fn post(&self, sid: &str, body: &str) -> HttpResponse {
        self.request("POST", &session(sid), Some(body)).await
    }

    /// Opens a polling session; returns its sid.
    async fn polling_session(&self) -> String {
        let response = self.request("GET", "EIO=4&transport=polling", None).await;
        assert_eq!(response.status, 200, "{}", response.body);
        open_packet(&response.body)["sid"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn ws(&self, query: &str) -> WsClient {
        WsClient::connect_at(self.addr, PATH, query).await
    }

    async fn call(&mut self) -> Call {
        tokio::time::timeout(WAIT, self.calls.recv())
            .await
            .expect("timed out waiting for a handler call")
            .expect("handler gone")
    }

    async fn closed(&mut self) -> DisconnectReason {
        loop {
            if let Call::Closed(reason) = self.call().await {
                return reason;
            }
        }
    }
}

fn session(sid: &str) -> String {
    format!("EIO=4&transport=polling&sid={sid}")
}

fn check_open(open: &Value, upgrades: Value) {
    let keys: Vec<&str> = open
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ]
    );
    assert!(open["sid"].is_string());
    assert_eq!(open["upgrades"], upgrades);
    assert_eq!(open["pingInterval"], json!(300));
    assert_eq!(open["pingTimeout"], json!(200));
    assert_eq!(open["maxPayload"], json!(1_000_000));
}

#[tokio::test]
async fn handshakes_announce_the_settings() {
    let mut app = spawn_engine(reference_config()).await;
    let response = app.request("GET", "EIO=4&transport=polling", None).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    let open = open_packet(&response.body);
    check_open(&open, json!(["websocket"]));
    assert_eq!(
        app.call().await,
        Call::Opened(open["sid"].as_str().unwrap().to_owned())
    );

    let mut ws = app.ws("EIO=4&transport=websocket").await;
    check_open(&ws.open().await, json!([]));
    assert_eq!(app.engine.connection_count(), 2);
}

#[tokio::test]
async fn bad_handshakes_are_refused_with_400() {
    let app = spawn_engine(relaxed_config()).await;
    for (method, query) in [
        ("GET", "transport=polling"),
        ("GET", "EIO=abc&transport=polling"),
        ("GET", "EIO=4"),
        ("GET", "EIO=4&transport=abc"),
        ("POST", "EIO=4&transport=polling"),
        ("PUT", "EIO=4&transport=polling"),
    ] {
        let response = app.request(method, query, None).await;
        assert_eq!(response.status, 400, "{method} {query}");
    }
    for query in [
        "transport=websocket",
        "EIO=abc&transport=websocket",
        "EIO=4",
        "EIO=4&transport=abc",
    ] {
        let url = format!("ws://{}{PATH}?{query}", app.addr);
        let refused = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .unwrap();
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 400, "{query}");
            }
            other => panic!("{query}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(app.engine.connection_count(), 0);
}

#[tokio::test]
async fn polling_echoes_text_and_binary_payloads() {
    let mut app = spawn_engine(relaxed_config()).await;
    let sid = app.polling_session().await;
    for body in [
        "4hello",
        "4test1\x1e4test2\x1e4test3",
        "4hello\x1ebAQIDBA==",
    ] {
        let pushed = app.post(&sid, body).await;
        assert_eq!((pushed.status, pushed.body.as_str()), (200, "ok"));
        let polled = app.get(&sid).await;
        assert_eq!((polled.status, polled.body.as_str()), (200, body));
    }
    assert!(matches!(app.call().await, Call::Opened(_)));
    assert_eq!(
        app.call().await,
        Call::Message(EngineMessage::Text("hello".to_owned()))
    );
    for _ in 0..4 {
        app.call().await;
    }
    assert_eq!(
        app.call().await,
        Call::Message(EngineMessage::Binary(Bytes::from_static(&[1, 2, 3, 4])))
    );
}

#[tokio::test]
async fn polling_invalid_packet_closes_the_session() {
    let mut app = spawn_engine(relaxed_config()).await;
    let sid = app.polling_session().await;
    assert_eq!(app.post(&sid, "abc").await.status, 400);
    assert_eq!(app.get(&sid).await.status, 400);
    assert_eq!(app.closed().await, DisconnectReason::ParseError);
}

#[tokio::test]
async fn duplicate_polls_close_the_session() {
    let mut app = spawn_engine(relaxed_config()).await;
    let sid = app.polling_session().await;
    let addr = app.addr;
    let query = session(&sid);
    // The second GET is sent while the first is pending (as the official suite does, 5 ms
    // later); whichever the server sees second is refused and the first gets the close.
    let (first, second) = tokio::join!(http_at(addr, "GET", PATH, &query, None, &[]), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        http_at(addr, "GET", PATH, &query, None, &[]).await
    });
    let mut outcomes = [(first.status, first.body), (second.status, second.body)];
    outcomes.sort();
    assert_eq!(outcomes[0], (200, "1".to_owned()), "{outcomes:?}");
    assert_eq!(outcomes[1].0, 400, "{outcomes:?}");
    assert_eq!(app.get(&sid).await.status, 400);
    assert_eq!(app.closed().await, DisconnectReason::MultiplePolling);
}

#[tokio::test]
async fn websocket_echoes_text_and_binary_and_closes_on_invalid_packets() {
    let mut app = spawn_engine(relaxed_config()).await;
    let mut ws = app.ws("EIO=4&transport=websocket").await;
    ws.open().await;
    ws.send("4hello").await;
    assert_eq!(ws.recv().await, "4hello");
    ws.send_binary(&[1, 2, 3, 4]).await;
    assert_eq!(ws.recv_binary().await, [1, 2, 3, 4]);
    ws.send("abc").await;
    ws.expect_closed().await;
    assert_eq!(app.closed().await, DisconnectReason::ParseError);
}

#[tokio::test]
async fn polling_heartbeat_and_ping_timeout() {
    let mut app = spawn_engine(reference_config()).await;
    let sid = app.polling_session().await;
    for _ in 0..3 {
        let polled = app.get(&sid).await;
        assert_eq!((polled.status, polled.body.as_str()), (200, "2"));
        assert_eq!(app.post(&sid, "3").await.status, 200);
    }
    // Silent now: gone after one interval plus the timeout.
    tokio::time::sleep(Duration::from_millis(300 + 200)).await;
    assert_eq!(app.get(&sid).await.status, 400);
    assert_eq!(app.closed().await, DisconnectReason::PingTimeout);
}

#[tokio::test]
async fn websocket_heartbeat_and_ping_timeout() {
    let mut app = spawn_engine(reference_config()).await;
    let mut ws = app.ws("EIO=4&transport=websocket").await;
    ws.keep_pings = true;
    ws.open().await;
    for _ in 0..3 {
        assert_eq!(ws.recv().await, "2");
        ws.send("3").await;
    }
    let started = std::time::Instant::now();
    ws.expect_closed().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(app.closed().await, DisconnectReason::PingTimeout);
}

#[tokio::test]
async fn client_close_packets_end_the_session() {
    let mut app = spawn_engine(relaxed_config()).await;
    let sid = app.polling_session().await;
    let pending = {
        let addr = app.addr;
        let query = session(&sid);
        tokio::spawn(async move { http_at(addr, "GET", PATH, &query, None, &[]).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(app.post(&sid, "1").await.status, 200);
    let pending = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!((pending.status, pending.body.as_str()), (200, "6"));
    assert_eq!(app.get(&sid).await.status, 400);
    assert_eq!(app.closed().await, DisconnectReason::TransportClose);

    let mut ws = app.ws("EIO=4&transport=websocket").await;
    ws.open().await;
    ws.send("1").await;
    ws.expect_closed().await;
    assert_eq!(app.closed().await, DisconnectReason::TransportClose);
}

#[tokio::test]
async fn server_close_flushes_then_closes() {
    let mut app = spawn_engine(relaxed_config()).await;
    let sid = app.polling_session().await;
    app.post(&sid, "4close-me").await;
    assert_eq!(app.get(&sid).await.body, "4bye");
    assert_eq!(app.get(&sid).await.body, "1");
    assert_eq!(app.closed().await, DisconnectReason::ServerDisconnect);
}

#[tokio::test]
async fn upgrade_to_websocket() {
    let mut app = spawn_engine(relaxed_config()).await;
    let sid = app.polling_session().await;
    let upgrade = format!("EIO=4&transport=websocket&sid={sid}");
    let mut ws = app.ws(&upgrade).await;
    ws.send("2probe").await;
    assert_eq!(ws.recv().await, "3probe");
    // The poll in the middle of the upgrade ends with a noop.
    let polled = app.get(&sid).await;
    assert_eq!((polled.status, polled.body.as_str()), (200, "6"));
    ws.send("5").await;
    ws.send("4hello").await;
    assert_eq!(ws.recv().await, "4hello");
    // Polling requests and other WebSockets on the upgraded session are refused.
    assert_eq!(app.get(&sid).await.status, 400);
    let mut second = app.ws(&upgrade).await;
    second.expect_closed().await;
    ws.send_binary(&[9]).await;
    assert_eq!(ws.recv_binary().await, [9]);
    drop(ws);
    assert_eq!(app.closed().await, DisconnectReason::TransportClose);
}

/// The suite's "ignores HTTP requests with same sid after upgrade": a poll or POST sent right
/// after the `5` is refused, whichever reaches the server first, and the WebSocket goes on.
/// It races the WebSocket task reading the `5`, hence the many rounds (before the server
/// held such requests for the upgrade, about one round in four lost the race).
#[tokio::test]
async fn polling_requests_sent_after_the_upgrade_are_refused() {
    let mut app = spawn_engine(relaxed_config()).await;
    let refused = |response: HttpResponse| {
        assert_eq!(
            (response.status, response.body.as_str()),
            (400, r#"{"code":3,"message":"Bad request"}"#)
        );
        assert_eq!(response.header("content-type"), Some("application/json"));
    };
    for round in 0..20 {
        let sid = app.polling_session().await;
        let mut ws = app
            .ws(&format!("EIO=4&transport=websocket&sid={sid}"))
            .await;
        ws.send("2probe").await;
        assert_eq!(ws.recv().await, "3probe");
        ws.send("5").await;
        if round % 2 == 0 {
            refused(app.get(&sid).await);
            refused(app.post(&sid, "4late").await);
        } else {
            refused(app.post(&sid, "4late").await);
            refused(app.get(&sid).await);
        }
        ws.send("4hello").await;
        assert_eq!(ws.recv().await, "4hello");
        drop(ws);
        // No refused POST reached the handler.
        loop {
            match app.call().await {
                Call::Closed(reason) => break assert_eq!(reason, DisconnectReason::TransportClose),
                call => assert_ne!(call, Call::Message(EngineMessage::Text("late".to_owned()))),
            }
        }
    }
}
