//! The test application: server, handler that records what it sees, and clients.

use std::{net::SocketAddr, time::Duration};

use actix_http::HttpService;
use actix_server::Server;
use actix_service::map_config;
use actix_socketio::takeover;
use actix_socketio::{
    AckSender, Config, ConnectError, DisconnectReason, EmitError, Event, Handler, RequestInfo,
    Socket, SocketIo,
};
use actix_web::{App, HttpRequest, HttpServer, dev::AppConfig, web::ServiceConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

/// Upper bound of every wait in the tests.
pub const WAIT: Duration = Duration::from_secs(5);

/// What the handler saw, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Connect {
        nsp: String,
        auth: Option<Value>,
    },
    Connected {
        id: String,
        nsp: String,
    },
    Event {
        nsp: String,
        name: String,
        args: Vec<Value>,
    },
    EmitFailed(String),
    Disconnected {
        id: String,
        nsp: String,
        reason: DisconnectReason,
    },
}

pub struct TestHandler {
    records: mpsc::UnboundedSender<Record>,
}

impl TestHandler {
    fn record(&self, record: Record) {
        let _ = self.records.send(record);
    }
}

impl Handler for TestHandler {
    type State = Option<Value>;

    /// Refuses handshakes whose query has `refuse=1`, after a real suspension, as a handler
    /// asking a store shared by several servers would (the future borrows the request).
    async fn allow_handshake(&self, request: &HttpRequest) -> bool {
        tokio::time::sleep(Duration::from_millis(5)).await;
        !request
            .query_string()
            .split('&')
            .any(|pair| pair == "refuse=1")
    }

    fn accepts_namespace(&self, nsp: &str) -> bool {
        nsp == "/" || nsp == "/custom"
    }

    async fn connect(
        &self,
        _socket_id: &str,
        nsp: &str,
        auth: Option<Value>,
        _request: &RequestInfo,
    ) -> Result<Self::State, ConnectError> {
        self.record(Record::Connect {
            nsp: nsp.to_owned(),
            auth: auth.clone(),
        });
        if auth.as_ref().and_then(|auth| auth.get("token")) == Some(&json!("bad")) {
            return Err(ConnectError("Invalid token".to_owned()));
        }
        Ok(auth)
    }

    async fn connected(&self, socket: &Socket<Self::State>) {
        self.record(Record::Connected {
            id: socket.id().to_owned(),
            nsp: socket.namespace().to_owned(),
        });
        socket.emit("welcome", socket.state()).unwrap();
    }

    async fn event(&self, socket: &Socket<Self::State>, event: Event) {
        self.record(Record::Event {
            nsp: socket.namespace().to_owned(),
            name: event.name.clone(),
            args: event.args.clone(),
        });
        let first = event.args.first().cloned().unwrap_or(Value::Null);
        match event.name.as_str() {
            "echo" => match event.ack {
                Some(ack) => reply(ack, &event.args, event.attachments),
                None => socket
                    .emit_with_attachments("echo-back", &event.args, event.attachments)
                    .unwrap(),
            },
            "ask" => {
                let timeout = Duration::from_millis(first.as_u64().unwrap_or(2000));
                let answer = socket
                    .emit_with_ack("question", "q", timeout)
                    .unwrap()
                    .await;
                match answer {
                    Ok(args) => socket.emit("answered", &args).unwrap(),
                    Err(error) => socket.emit("ack-error", &error.to_string()).unwrap(),
                }
            }
            "ask-callback" => {
                let timeout = Duration::from_millis(first.as_u64().unwrap_or(2000));
                let asker = socket.clone();
                socket
                    .emit_with_ack_callback("question", "q", timeout, move |answer| match answer {
                        Ok(args) => asker.emit("answered", &args).unwrap(),
                        Err(error) => asker.emit("ack-error", &error.to_string()).unwrap(),
                    })
                    .unwrap();
            }
            "slow" => {
                tokio::time::sleep(Duration::from_millis(first.as_u64().unwrap_or(50))).await;
                socket.emit("slow-done", &[(); 0]).unwrap();
            }
            "flood" => {
                for index in 0..first.as_u64().unwrap_or(10) {
                    if let Err(error) = socket.emit("flood", &index) {
                        let name = match error {
                            EmitError::QueueFull => "queue full".to_owned(),
                            other => other.to_string(),
                        };
                        self.record(Record::EmitFailed(name));
                        break;
                    }
                }
            }
            "disconnect-me" => socket.disconnect(),
            "panic" => panic!("a handler bug"),
            _ => {}
        }
    }

    async fn disconnected(&self, socket: &Socket<Self::State>, reason: DisconnectReason) {
        // A handler with work left at the end (marking a user offline, say): a socket that
        // connected with `slowDisconnect` in its auth takes that many milliseconds.
        let delay = socket
            .state()
            .as_ref()
            .and_then(|auth| auth.get("slowDisconnect"))
            .and_then(Value::as_u64);
        if let Some(delay) = delay {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.record(Record::Disconnected {
            id: socket.id().to_owned(),
            nsp: socket.namespace().to_owned(),
            reason,
        });
    }
}

fn reply(ack: AckSender, args: &[Value], attachments: Vec<bytes::Bytes>) {
    if attachments.is_empty() {
        ack.send_args(args).unwrap();
    } else {
        ack.send_with_attachments(args, attachments).unwrap();
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub io: SocketIo<TestHandler>,
    records: mpsc::UnboundedReceiver<Record>,
}

/// A test configuration with short timings; a client that reads nothing for a while (as
/// tests' bystander clients do) still outlives the heartbeat. Heartbeat tests shorten it.
pub fn test_config() -> Config {
    Config {
        ping_interval: Duration::from_millis(1000),
        ping_timeout: Duration::from_millis(2000),
        connect_timeout: Duration::from_secs(3),
        cors_origins: Some(vec!["*".to_owned()]),
        ..Config::default()
    }
}

pub async fn spawn_app(config: Config) -> TestApp {
    let (sender, records) = mpsc::unbounded_channel();
    let io = SocketIo::new(config, TestHandler { records: sender });
    let server_io = io.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, 2, move |cfg| server_io.configure(cfg));
    TestApp { addr, io, records }
}

/// Serves the routes `configure` mounts on `listener` with `workers` workers: through
/// `HttpServer` (WebSockets under actix-ws), or, in the `takeover` run of this suite, through
/// actix-http with [`takeover::upgrade_service`], like `chat-server`.
pub fn serve(
    listener: std::net::TcpListener,
    workers: usize,
    configure: impl Fn(&mut ServiceConfig) + Clone + Send + 'static,
) {
    if !crate::TAKEOVER {
        let server = HttpServer::new(move || {
            let configure = configure.clone();
            App::new().configure(configure)
        })
        .workers(workers)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        return;
    }
    let server = Server::build()
        .workers(workers)
        .disable_signals()
        .listen("test", listener, move || {
            let configure = configure.clone();
            let app = move || {
                let configure = configure.clone();
                map_config(App::new().configure(configure), |_| AppConfig::default())
            };
            HttpService::build()
                .tcp_nodelay(true)
                .upgrade(takeover::upgrade_service(app.clone()))
                .finish(app())
                .tcp()
        })
        .unwrap()
        .run();
    tokio::spawn(server);
}

impl TestApp {
    /// The next record, failing the test after [`WAIT`].
    pub async fn record(&mut self) -> Record {
        tokio::time::timeout(WAIT, self.records.recv())
            .await
            .expect("timed out waiting for a handler call")
            .expect("handler gone")
    }

    /// Skips records until one matches.
    pub async fn wait_for(&mut self, mut matches: impl FnMut(&Record) -> bool) -> Record {
        loop {
            let record = self.record().await;
            if matches(&record) {
                return record;
            }
        }
    }

    /// Every record so far, without waiting for more.
    pub fn records_now(&mut self) -> Vec<Record> {
        std::iter::from_fn(|| self.records.try_recv().ok()).collect()
    }

    pub async fn disconnected(&mut self) -> DisconnectReason {
        match self
            .wait_for(|record| matches!(record, Record::Disconnected { .. }))
            .await
        {
            Record::Disconnected { reason, .. } => reason,
            _ => unreachable!(),
        }
    }

    pub async fn ws(&self) -> WsClient {
        WsClient::connect(self.addr, "EIO=4&transport=websocket").await
    }

    /// A WebSocket client connected to namespace `/` (welcome consumed).
    pub async fn ws_socket(&self) -> WsClient {
        let mut client = self.ws().await;
        client.open().await;
        client.send("40").await;
        assert!(client.recv().await.starts_with("40{\"sid\":"));
        assert!(client.recv().await.starts_with("42[\"welcome\""));
        client
    }

    pub async fn http(&self, method: &str, query: &str, body: Option<&str>) -> HttpResponse {
        http(self.addr, method, query, body, &[]).await
    }

    /// Opens a polling session; returns its sid.
    pub async fn polling_session(&self) -> String {
        let response = self.http("GET", "EIO=4&transport=polling", None).await;
        assert_eq!(response.status, 200, "{}", response.body);
        open_packet(&response.body)["sid"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Parses an Engine.IO OPEN packet.
pub fn open_packet(text: &str) -> Value {
    assert!(text.starts_with('0'), "not an open packet: {text}");
    serde_json::from_str(&text[1..]).unwrap()
}

pub struct WsClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub keep_pings: bool,
}

impl WsClient {
    pub async fn connect(addr: SocketAddr, query: &str) -> Self {
        Self::connect_at(addr, "/socket.io/", query).await
    }

    /// A WebSocket to `path?query`.
    pub async fn connect_at(addr: SocketAddr, path: &str, query: &str) -> Self {
        let url = format!("ws://{addr}{path}?{query}");
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .unwrap()
            .unwrap();
        Self {
            ws,
            keep_pings: false,
        }
    }

    /// Reads the OPEN packet.
    pub async fn open(&mut self) -> Value {
        let text = self.recv().await;
        open_packet(&text)
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_binary(&mut self, data: &[u8]) {
        self.ws.send(Message::binary(data.to_vec())).await.unwrap();
    }

    /// The next frame; pings are answered and skipped unless `keep_pings`.
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame");
            match message {
                Some(Ok(Message::Text(text))) if text.as_str() == "2" && !self.keep_pings => {
                    self.send("3").await;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(message)) => return Some(message),
            }
        }
    }

    /// The next text frame.
    pub async fn recv(&mut self) -> String {
        match self.next().await {
            Some(Message::Text(text)) => text.as_str().to_owned(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    pub async fn recv_binary(&mut self) -> Vec<u8> {
        match self.next().await {
            Some(Message::Binary(data)) => data.to_vec(),
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }

    /// Waits until the server closes the connection, skipping frames.
    pub async fn expect_closed(&mut self) {
        while self.next().await.is_some() {}
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A one-shot HTTP/1.1 request (`Connection: close`) to the Socket.IO path.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    query: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> HttpResponse {
    http_at(addr, method, "/socket.io/", query, body, headers).await
}

/// A one-shot HTTP/1.1 request (`Connection: close`) to `path?query`.
pub async fn http_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    query: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path}?{query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("timed out waiting for an HTTP response")
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}
