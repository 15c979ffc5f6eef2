//! A minimal Socket.IO client over Engine.IO long-polling, on the raw HTTP client of
//! `helpers`: enough to connect a guest, emit events and wait for the ones it receives.
//! Answers the server's pings, so give the app a short `presence.ping_interval_ms` for
//! polls to come back quickly.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::TestApp;

/// Engine.IO's packet separator in a polling payload.
const SEPARATOR: char = '\u{1e}';

pub struct PollingSocket<'a> {
    app: &'a TestApp,
    sid: String,
    /// Events received and not yet waited for: `(name, data)`.
    received: VecDeque<(String, Value)>,
    closed: bool,
}

impl<'a> PollingSocket<'a> {
    /// Opens an Engine.IO session; `Err` with the status and body when it is refused.
    pub async fn open(app: &'a TestApp) -> Result<Self, (u16, String)> {
        let response = app
            .raw("GET", "/socket.io/?EIO=4&transport=polling", &[], b"")
            .await;
        let body = String::from_utf8_lossy(&response.body).into_owned();
        let Some(handshake) = body.strip_prefix('0').filter(|_| response.status == 200) else {
            return Err((response.status, body));
        };
        let handshake: Value = serde_json::from_str(handshake).unwrap();
        Ok(Self {
            app,
            sid: handshake["sid"].as_str().unwrap().to_owned(),
            received: VecDeque::new(),
            closed: false,
        })
    }

    /// Opens a session and connects to `/` with `token`; waits for `connection:established`.
    pub async fn connect(app: &'a TestApp, token: &str) -> Self {
        let mut socket = Self::open(app).await.unwrap();
        socket
            .send(&format!("40{}", serde_json::json!({ "token": token })))
            .await;
        socket.wait_for("connection:established").await;
        socket
    }

    fn path(&self) -> String {
        format!("/socket.io/?EIO=4&transport=polling&sid={}", self.sid)
    }

    async fn send(&self, packet: &str) {
        let response = self
            .app
            .raw(
                "POST",
                &self.path(),
                &[("Content-Type", "text/plain;charset=UTF-8")],
                packet.as_bytes(),
            )
            .await;
        assert_eq!(response.status, 200, "{packet}: {response:?}");
    }

    /// Emits `event` with `data` (no ack).
    pub async fn emit(&self, event: &str, data: Value) {
        self.send(&format!("42{}", serde_json::json!([event, data])))
            .await;
    }

    /// One poll: queues the events it brought, answers pings, notes a close.
    async fn poll(&mut self) {
        let response = self.app.raw("GET", &self.path(), &[], b"").await;
        if response.status != 200 {
            self.closed = true;
            return;
        }
        let body = String::from_utf8_lossy(&response.body).into_owned();
        for packet in body.split(SEPARATOR) {
            match packet.as_bytes().first() {
                Some(b'2') => self.send("3").await,
                Some(b'1') => self.closed = true,
                Some(b'4') => {
                    if let Some(event) = packet.strip_prefix("42") {
                        // An event the server wants acked carries its ack id first.
                        let event = event.trim_start_matches(|c: char| c.is_ascii_digit());
                        let event: Value = serde_json::from_str(event).unwrap();
                        let name = event[0].as_str().unwrap_or_default().to_owned();
                        self.received.push_back((name, event[1].clone()));
                    } else if packet.starts_with("41") {
                        self.closed = true;
                    }
                }
                _ => {}
            }
        }
    }

    /// Polls until `event` arrives (within 10 s) and returns its data.
    pub async fn wait_for(&mut self, event: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(index) = self.received.iter().position(|(name, _)| name == event) {
                return self.received.remove(index).unwrap().1;
            }
            assert!(
                !self.closed && Instant::now() < deadline,
                "no {event} (closed: {}); received {:?}",
                self.closed,
                self.received
            );
            self.poll().await;
        }
    }

    /// Polls until the server closes the connection (within 10 s).
    pub async fn wait_closed(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.closed {
            assert!(Instant::now() < deadline, "still open");
            self.poll().await;
        }
    }
}

/// Two guests paired with each other: their sockets, tokens and ids.
pub struct Pair<'a> {
    pub sockets: [PollingSocket<'a>; 2],
    pub tokens: [String; 2],
    pub ids: [String; 2],
}

/// Creates two guests, connects them and pairs them (both got `match:found`).
pub async fn pair(app: &TestApp) -> Pair<'_> {
    let (first_token, first) = app.guest(serde_json::json!({})).await;
    let (second_token, second) = app.guest(serde_json::json!({})).await;
    let mut sockets = [
        PollingSocket::connect(app, &first_token).await,
        PollingSocket::connect(app, &second_token).await,
    ];
    for socket in &mut sockets {
        socket.emit("match:search", serde_json::json!({})).await;
    }
    for socket in &mut sockets {
        socket.wait_for("match:found").await;
    }
    Pair {
        sockets,
        tokens: [first_token, second_token],
        ids: [
            first["id"].as_str().unwrap().to_owned(),
            second["id"].as_str().unwrap().to_owned(),
        ],
    }
}
