//! A minimal HTTP/1.1 client over one keep-alive TCP connection: enough for the JSON API.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// An answer: status and body.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "status {}: body is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Opens a TCP connection to `server`, from `source` when given.
pub async fn tcp_connect(
    server: SocketAddr,
    source: Option<Ipv4Addr>,
) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::from((ip, 0)))
            .with_context(|| format!("bind {ip}"))?;
    }
    let stream = socket
        .connect(server)
        .await
        .with_context(|| format!("connect {server}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One keep-alive connection; reconnects when the server closed it.
#[derive(Debug)]
pub struct HttpConn {
    server: SocketAddr,
    source: Option<Ipv4Addr>,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
}

impl HttpConn {
    /// A connection to `server` (opened on first use), from `source` when given.
    pub fn new(server: SocketAddr, source: Option<Ipv4Addr>) -> Self {
        Self {
            server,
            source,
            stream: None,
            buffer: Vec::with_capacity(4096),
        }
    }

    /// Sends one request and reads the answer. A reused connection that fails is retried
    /// once on a fresh one (the server may have closed it while idle).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> anyhow::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.server);
        if let Some(token) = token {
            head.push_str("Authorization: Bearer ");
            head.push_str(token);
            head.push_str("\r\n");
        }
        if let Some(content_type) = content_type {
            head.push_str("Content-Type: ");
            head.push_str(content_type);
            head.push_str("\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let reused = self.stream.is_some();
        match self.exchange(&request).await {
            Ok(response) => Ok(response),
            Err(_) if reused => {
                self.stream = None;
                self.exchange(&request).await
            }
            Err(error) => Err(error),
        }
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(
        &mut self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<Response> {
        self.request(
            "POST",
            path,
            token,
            Some("application/json"),
            body.to_string().as_bytes(),
        )
        .await
    }

    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<Response> {
        if self.stream.is_none() {
            self.stream = Some(tcp_connect(self.server, self.source).await?);
        }
        let result = self.exchange_on_open(request).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange_on_open(&mut self, request: &[u8]) -> anyhow::Result<Response> {
        let stream = self.stream.as_mut().context("not connected")?;
        stream.write_all(request).await?;
        self.buffer.clear();
        let head_end = loop {
            if let Some(position) = find(&self.buffer, b"\r\n\r\n") {
                break position;
            }
            if read_more(stream, &mut self.buffer).await? == 0 {
                bail!("connection closed before the response head");
            }
        };
        let head =
            std::str::from_utf8(&self.buffer[..head_end]).context("response head is not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .context("bad status line")?;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().context("bad content-length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                close = true;
            }
        }
        let body_start = head_end + 4;
        let body = if chunked {
            loop {
                if let Some(body) = dechunk(&self.buffer[body_start..])? {
                    break body;
                }
                if read_more(stream, &mut self.buffer).await? == 0 {
                    bail!("connection closed inside a chunked body");
                }
            }
        } else {
            let length = if status == 204 || status == 304 {
                0
            } else {
                length.unwrap_or(0)
            };
            while self.buffer.len() < body_start + length {
                if read_more(stream, &mut self.buffer).await? == 0 {
                    bail!("connection closed inside the body");
                }
            }
            self.buffer[body_start..body_start + length].to_vec()
        };
        if close {
            self.stream = None;
        }
        Ok(Response { status, body })
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0_u8; 8192];
    let read = stream.read(&mut chunk).await?;
    buffer.extend_from_slice(&chunk[..read]);
    Ok(read)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The de-chunked body once complete, `None` while more bytes are needed.
fn dechunk(mut data: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&data[..line_end])?
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        let start = line_end + 2;
        if size == 0 {
            return Ok((data.len() >= start + 2).then_some(out));
        }
        if data.len() < start + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}

/// Creates a guest; returns `(token, user id)`.
pub async fn create_guest(conn: &mut HttpConn, body: &Value) -> anyhow::Result<(String, String)> {
    let response = conn.post_json("/api/guest", None, body).await?;
    if response.status != 201 {
        bail!(
            "POST /api/guest answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
    }
    let json = response.json()?;
    let token = json["token"]
        .as_str()
        .context("no token in the answer")?
        .to_owned();
    let user = json["user"]["id"]
        .as_str()
        .context("no user id in the answer")?
        .to_owned();
    Ok((token, user))
}

/// `GET /api/stats` → the `stats` object.
pub async fn stats(server: SocketAddr) -> anyhow::Result<Value> {
    let mut conn = HttpConn::new(server, None);
    let response = conn.request("GET", "/api/stats", None, None, b"").await?;
    if response.status != 200 {
        bail!("GET /api/stats answered {}", response.status);
    }
    Ok(response.json()?["stats"].clone())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_complete_bodies_only() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n0\r\n\r\n").unwrap(),
            Some(b"abc".to_vec())
        );
        assert_eq!(dechunk(b"3\r\nab").unwrap(), None);
        assert_eq!(dechunk(b"3\r\nabc\r\n0\r\n").unwrap(), None);
    }
}
