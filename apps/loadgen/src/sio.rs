//! The little Socket.IO v5 / Engine.IO v4 client the load needs: WebSocket transport only,
//! namespace `/`, text packets, events and acks both ways, answers to pings.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::http::tcp_connect;

/// How long the handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// One Socket.IO packet of namespace `/` (an Engine.IO `4` message).
#[derive(Debug, Clone)]
pub struct Packet(Utf8Bytes);

/// What a packet is.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `42[id]["name",payload]`: an event, with the ack id the server asks for.
    Event {
        /// The ack id, when the server wants an answer.
        ack: Option<u64>,
        /// The event name.
        name: &'a str,
        /// The payload's JSON text (may be empty).
        payload: &'a str,
    },
    /// `43id[...]`: the answer to one of our acks.
    Ack {
        /// Our ack id.
        id: u64,
        /// The JSON array of the answer's arguments.
        args: &'a str,
    },
    /// `40{...}`: connected.
    Connect(&'a str),
    /// `44{...}`: connection refused.
    ConnectError(&'a str),
    /// `41`: disconnected by the server.
    Disconnect,
    /// Anything else.
    Other,
}

impl Packet {
    /// The raw text (after the Engine.IO type).
    pub fn text(&self) -> &str {
        self.0.as_str()
    }

    /// Classifies the packet.
    pub fn kind(&self) -> Kind<'_> {
        let text = &self.text()[1..];
        let Some(kind) = text.as_bytes().first() else {
            return Kind::Other;
        };
        let rest = &text[1..];
        match kind {
            b'0' => Kind::Connect(rest),
            b'1' => Kind::Disconnect,
            b'4' => Kind::ConnectError(rest),
            b'2' => {
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                let ack = rest[..digits].parse().ok();
                let array = &rest[digits..];
                // ["name",payload]
                let Some(body) = array.strip_prefix("[\"") else {
                    return Kind::Other;
                };
                let Some(name_end) = body.find('"') else {
                    return Kind::Other;
                };
                let name = &body[..name_end];
                let after = &body[name_end + 1..];
                let payload = after
                    .strip_prefix(',')
                    .unwrap_or("")
                    .strip_suffix(']')
                    .unwrap_or("");
                Kind::Event { ack, name, payload }
            }
            b'3' => {
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                match rest[..digits].parse() {
                    Ok(id) => Kind::Ack {
                        id,
                        args: &rest[digits..],
                    },
                    Err(_) => Kind::Other,
                }
            }
            _ => Kind::Other,
        }
    }
}

/// The value of a top-level-ish string field `"key":"value"` in a JSON text (first match).
/// Good enough for the server's payloads, whose ids and timestamps carry no escapes.
pub fn string_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("\"{key}\":\"");
    let start = json.find(&pattern)? + pattern.len();
    let end = json[start..].find('"')?;
    Some(&json[start..start + end])
}

/// Like [`string_field`] but the last occurrence.
pub fn last_string_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("\"{key}\":\"");
    let start = json.rfind(&pattern)? + pattern.len();
    let end = json[start..].find('"')?;
    Some(&json[start..start + end])
}

/// An authenticated Socket.IO connection over WebSocket.
#[derive(Debug)]
pub struct Socket {
    ws: WebSocketStream<TcpStream>,
    next_ack: u64,
    server: SocketAddr,
    client: u64,
}

impl Socket {
    /// Opens the WebSocket, sends CONNECT with `token` and waits for
    /// `connection:established`.
    pub async fn connect(
        server: SocketAddr,
        source: Option<Ipv4Addr>,
        token: &str,
    ) -> anyhow::Result<Self> {
        tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            Self::connect_inner(server, source, token),
        )
        .await
        .context("handshake timed out")?
    }

    async fn connect_inner(
        server: SocketAddr,
        source: Option<Ipv4Addr>,
        token: &str,
    ) -> anyhow::Result<Self> {
        let stream = tcp_connect(server, source).await?;
        let url = format!("ws://{server}/socket.io/?EIO=4&transport=websocket");
        // Small buffers: thousands of mostly idle sockets per process.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
            .await
            .context("WebSocket handshake")?;
        let mut socket = Self {
            ws,
            next_ack: 1,
            server,
            client: 0,
        };
        // Engine.IO open packet.
        match socket.ws.next().await {
            Some(Ok(Message::Text(text))) if text.starts_with('0') => {}
            other => bail!("expected the Engine.IO open packet, got {other:?}"),
        }
        socket
            .send_text(format!("40{{\"token\":\"{token}\"}}"))
            .await?;
        let mut connected = false;
        loop {
            let packet = socket
                .recv()
                .await?
                .context("closed during the handshake")?;
            match packet.kind() {
                Kind::Connect(_) => connected = true,
                Kind::ConnectError(message) => bail!("CONNECT refused: {message}"),
                Kind::Event {
                    name: "connection:established",
                    ..
                } if connected => return Ok(socket),
                _ => {}
            }
        }
    }

    /// The server (node) this socket is connected to.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The global client index this socket serves (set by whoever opened it).
    pub fn client(&self) -> u64 {
        self.client
    }

    /// Records the global client index this socket serves.
    pub fn set_client(&mut self, client: u64) {
        self.client = client;
    }

    /// The next Socket.IO packet; answers Engine.IO pings on the way. `None` once closed.
    pub async fn recv(&mut self) -> anyhow::Result<Option<Packet>> {
        loop {
            let Some(message) = self.ws.next().await else {
                return Ok(None);
            };
            match message? {
                Message::Text(text) => match text.as_bytes().first() {
                    Some(b'2') => self.send_text("3".to_owned()).await?,
                    Some(b'4') => return Ok(Some(Packet(text))),
                    Some(b'1') => return Ok(None),
                    _ => {}
                },
                Message::Close(_) => return Ok(None),
                _ => {}
            }
        }
    }

    /// Sends a raw Engine.IO text frame.
    pub async fn send_text(&mut self, text: String) -> anyhow::Result<()> {
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    /// Emits `name` with a JSON `payload` (or none when empty), optionally asking for an
    /// ack; returns the ack id used.
    pub async fn emit(
        &mut self,
        name: &str,
        payload: &str,
        want_ack: bool,
    ) -> anyhow::Result<Option<u64>> {
        let ack = want_ack.then(|| {
            let id = self.next_ack;
            self.next_ack += 1;
            id
        });
        let mut text = String::with_capacity(16 + name.len() + payload.len());
        text.push_str("42");
        if let Some(id) = ack {
            text.push_str(&id.to_string());
        }
        text.push_str("[\"");
        text.push_str(name);
        text.push('"');
        if !payload.is_empty() {
            text.push(',');
            text.push_str(payload);
        }
        text.push(']');
        self.send_text(text).await?;
        Ok(ack)
    }

    /// The ack id the next [`Socket::emit`] asking for one will use.
    pub fn next_ack_id(&self) -> u64 {
        self.next_ack
    }

    /// Answers the server's ack `id` with no arguments.
    pub async fn ack(&mut self, id: u64) -> anyhow::Result<()> {
        self.send_text(format!("43{id}[]")).await
    }

    /// Waits for the event `name` (answering pings, skipping everything else), at most
    /// `limit`; returns its payload text.
    pub async fn wait_event(&mut self, name: &str, limit: Duration) -> anyhow::Result<String> {
        // The other events meanwhile (the first few: names, with the payload of short ones and
        // of errors), for the error.
        let mut others: Vec<String> = Vec::new();
        let others_ref = &mut others;
        let wait = async {
            loop {
                let packet = self
                    .recv()
                    .await?
                    .with_context(|| format!("closed while waiting for {name}"))?;
                if let Kind::Event {
                    name: got, payload, ..
                } = packet.kind()
                {
                    if got == name {
                        return Ok(payload.to_owned());
                    }
                    if others_ref.len() < 4 {
                        if got == "error" || payload.len() <= 80 {
                            let short: String = payload.chars().take(160).collect();
                            others_ref.push(format!("{got} {short}"));
                        } else {
                            others_ref.push(got.to_owned());
                        }
                    }
                }
            }
        };
        let result = tokio::time::timeout(limit, wait).await;
        match result {
            Ok(done) => done,
            Err(_) if others.is_empty() => bail!("no {name} within {limit:?}"),
            Err(_) => bail!(
                "no {name} within {limit:?} (other events: {})",
                others.join("; ")
            ),
        }
    }

    /// Closes the WebSocket (Socket.IO disconnect first).
    pub async fn close(mut self) {
        let _ = self.send_text("41".to_owned()).await;
        let _ = self.ws.close(None).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn packet(text: &str) -> Packet {
        Packet(Utf8Bytes::from(text.to_owned()))
    }

    #[test]
    fn classifies_events_and_acks() {
        assert_eq!(
            packet("42[\"match:searching\",{}]").kind(),
            Kind::Event {
                ack: None,
                name: "match:searching",
                payload: "{}"
            }
        );
        assert_eq!(
            packet("4217[\"chat:message\",{\"a\":1}]").kind(),
            Kind::Event {
                ack: Some(17),
                name: "chat:message",
                payload: "{\"a\":1}"
            }
        );
        assert_eq!(
            packet("42[\"partner:reconnected\"]").kind(),
            Kind::Event {
                ack: None,
                name: "partner:reconnected",
                payload: ""
            }
        );
        assert_eq!(
            packet("433[{\"ok\":true}]").kind(),
            Kind::Ack {
                id: 3,
                args: "[{\"ok\":true}]"
            }
        );
        assert_eq!(
            packet("40{\"sid\":\"x\"}").kind(),
            Kind::Connect("{\"sid\":\"x\"}")
        );
        assert_eq!(
            packet("44{\"message\":\"Invalid token\"}").kind(),
            Kind::ConnectError("{\"message\":\"Invalid token\"}")
        );
    }

    #[test]
    fn finds_string_fields() {
        let json = r#"{"id":"msg_1_a","clientId":"42","timestamp":"2024-01-01T00:00:00.000Z"}"#;
        assert_eq!(string_field(json, "id"), Some("msg_1_a"));
        assert_eq!(string_field(json, "clientId"), Some("42"));
        assert_eq!(
            last_string_field(json, "timestamp"),
            Some("2024-01-01T00:00:00.000Z")
        );
        assert_eq!(string_field(json, "nothing"), None);
    }
}
