//! Slow and hostile HTTP clients against the real application: a slow-loris head, oversized
//! heads, and too many handshakes from one address. Each test also proves that every other
//! client keeps being served meanwhile. Every wait is bounded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{TestApp, spawn_app_with};

/// Upper bound of every wait.
const WAIT: Duration = Duration::from_secs(5);

/// A `GET /healthz` that must answer 200 quickly.
async fn healthy(app: &TestApp) {
    let started = Instant::now();
    let response = tokio::time::timeout(WAIT, app.get("/healthz", None))
        .await
        .expect("healthz answered in time");
    assert_eq!(response.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "healthz took {:?}",
        started.elapsed()
    );
}

/// Reads until the server closes; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the server closed the connection in time")
        .ok();
    answer
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[tokio::test]
async fn a_slow_loris_head_is_cut_and_others_are_served() {
    let app = spawn_app_with(|settings| settings.server.client_request_timeout_ms = 500).await;
    let address = app.address;
    let started = Instant::now();
    let loris = tokio::spawn(async move {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        // One byte every 50 ms: the whole head would take about 4.5 s.
        for byte in head {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if started.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        read_until_closed(&mut stream).await
    });
    // Meanwhile (the only worker is not stalled) others are served at once.
    for _ in 0..5 {
        healthy(&app).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = tokio::time::timeout(WAIT, loris).await.unwrap().unwrap();
    assert_eq!(
        status_of(&answer),
        Some(408),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut after {:?}",
        started.elapsed()
    );
    healthy(&app).await;
}

#[tokio::test]
async fn oversized_heads_are_refused_and_others_are_served() {
    let app = spawn_app_with(|_| {}).await;
    // More than 96 headers.
    let many: Vec<(String, String)> = (0..120)
        .map(|index| (format!("X-Header-{index}"), "v".to_owned()))
        .collect();
    let headers: Vec<(&str, &str)> = many
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(app.raw("GET", "/healthz", &headers, b"").await.status, 431);
    healthy(&app).await;
    // A head over 128 KiB, in the query or in one header.
    let long_query = format!("/api/users/online?cursor={}", "a".repeat(140 * 1024));
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let request = format!("GET {long_query} HTTP/1.1\r\nHost: x\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    assert_eq!(status_of(&read_until_closed(&mut stream).await), Some(431));
    healthy(&app).await;
    let big = "b".repeat(140 * 1024);
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    assert_eq!(status_of(&read_until_closed(&mut stream).await), Some(431));
    healthy(&app).await;
    // Long but within the limits: served (here, refused by the route's own rules).
    let fair_query = format!("/api/users/online?cursor={}", "a".repeat(8 * 1024));
    assert_eq!(app.get(&fair_query, None).await.status, 400);
}

/// An HTTP request from a chosen loopback address (any 127.x.y.z reaches the server).
async fn request_from(source: [u8; 4], server: SocketAddr, path: &str) -> (u16, String) {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    let mut stream = socket.connect(server).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status_of(&answer).unwrap_or(0), body)
}

#[tokio::test]
async fn handshakes_are_limited_per_address() {
    let app = spawn_app_with(|settings| settings.rate.handshakes_per_10s = 5).await;
    let handshake = "/socket.io/?EIO=4&transport=polling";
    let mut sids = Vec::new();
    for _ in 0..5 {
        let (status, body) = request_from([127, 0, 0, 1], app.address, handshake).await;
        assert_eq!(status, 200, "{body}");
        let open: serde_json::Value = serde_json::from_str(&body[1..]).unwrap();
        sids.push(open["sid"].as_str().unwrap().to_owned());
    }
    let (status, body) = request_from([127, 0, 0, 1], app.address, handshake).await;
    assert_eq!(status, 429);
    assert_eq!(body, r#"{"code":4,"message":"Too many handshakes"}"#);
    // A WebSocket handshake counts the same.
    let (status, _) = request_from(
        [127, 0, 0, 1],
        app.address,
        "/socket.io/?EIO=4&transport=websocket",
    )
    .await;
    assert_eq!(status, 429);
    // Another address has its own allowance; open sessions and REST are not counted.
    let (status, _) = request_from([127, 0, 0, 2], app.address, handshake).await;
    assert_eq!(status, 200);
    let post = app
        .raw(
            "POST",
            &format!("/socket.io/?EIO=4&transport=polling&sid={}", sids[0]),
            &[("Content-Type", "text/plain")],
            b"3",
        )
        .await;
    assert_eq!(post.status, 200);
    healthy(&app).await;
}
