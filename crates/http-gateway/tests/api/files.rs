//! The bounds on uploads (`POST /api/files`): per room (413 `too_large`), per user (429
//! `rate_limited` with `Retry-After`) and per node in memory (503 `unavailable`), on one node
//! and, for the room and the user, across two gateways on one Redis. Small bounds through the
//! settings; files are UTF-8 text, so they are documents.

use std::time::Duration;

use chat_http_gateway::Settings;
use chat_testkit::require_redis;
use serde_json::{Value, json};

use crate::helpers::{Response, TestApp, spawn_app_with, spawn_nodes_with};
use crate::socket::{PollingSocket, pair};

const BOUNDARY: &str = "chat-test-boundary-1b2c3d";

/// Small bounds: files of at most 1000 bytes, rooms of 2500, a node of 100000, 100 uploads
/// a minute; short pings so polls come back quickly.
fn small(settings: &mut Settings) {
    settings.files.max_bytes = 1000;
    settings.files.max_room_bytes = 2500;
    settings.files.max_total_bytes = 100_000;
    settings.rate.uploads_per_minute = 100;
    settings.presence.ping_interval_ms = 300;
    settings.presence.ping_timeout_ms = 5000;
}

/// Uploads `size` bytes of text as `token`.
async fn upload(app: &TestApp, token: &str, size: usize) -> Response {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"note.txt\"\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend(std::iter::repeat_n(b'a', size));
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let bearer = format!("Bearer {token}");
    app.raw(
        "POST",
        "/api/files",
        &[
            ("Content-Type", content_type.as_str()),
            ("Authorization", bearer.as_str()),
        ],
        &body,
    )
    .await
}

/// Uploads and expects 201; returns the file.
async fn stored(app: &TestApp, token: &str, size: usize) -> Value {
    let response = upload(app, token, size).await;
    assert_eq!(
        response.status,
        201,
        "{size} bytes: {}",
        String::from_utf8_lossy(&response.body)
    );
    let file = response.json()["file"].clone();
    assert_eq!(file["fileSize"], size);
    file
}

/// Uploads and expects the error `status` `code`.
async fn refused(app: &TestApp, token: &str, size: usize, status: u16, code: &str) -> Response {
    let response = upload(app, token, size).await;
    assert_eq!(
        (response.status, response.error_code().as_str()),
        (status, code),
        "{size} bytes"
    );
    response
}

/// Every file downloads whole through its own URL.
async fn all_downloadable(app: &TestApp, files: &[&Value]) {
    for file in files {
        let url = file["fileUrl"].as_str().unwrap();
        let response = app.get(url, None).await;
        assert_eq!(response.status, 200, "{url}");
        assert_eq!(
            response.body.len() as u64,
            file["fileSize"].as_u64().unwrap()
        );
    }
}

/// Clears the chat of `sockets[0]` and waits until the partner heard it (the files are gone
/// by then).
async fn clear(sockets: &mut [PollingSocket<'_>; 2]) {
    sockets[0].emit("chat:clear", json!({})).await;
    sockets[1].wait_for("chat:cleared").await;
}

#[tokio::test]
async fn a_room_holds_at_most_its_bound_and_frees_it_when_its_files_go() {
    let app = spawn_app_with(small).await;
    let mut chat = pair(&app).await;
    let [a, b] = chat.tokens.clone();
    let first = stored(&app, &a, 1000).await;
    let second = stored(&app, &b, 1000).await;
    // Both members' uploads count: 2000 + 600 > 2500.
    let over = refused(&app, &a, 600, 413, "too_large").await;
    assert!(
        over.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2500"),
        "{:?}",
        over.json()
    );
    refused(&app, &b, 501, 413, "too_large").await;
    // Exactly the bound fits, and nothing stored before a refusal is lost.
    let third = stored(&app, &b, 500).await;
    all_downloadable(&app, &[&first, &second, &third]).await;
    refused(&app, &a, 1, 413, "too_large").await;
    // Another room has its own budget.
    let other = pair(&app).await;
    let elsewhere = stored(&app, &other.tokens[0], 1000).await;

    // chat:clear frees the room's budget.
    clear(&mut chat.sockets).await;
    let again = [stored(&app, &a, 1000).await, stored(&app, &b, 1000).await];
    refused(&app, &a, 501, 413, "too_large").await;
    all_downloadable(&app, &[&again[0], &again[1], &elsewhere]).await;
}

#[tokio::test]
async fn expired_files_free_their_rooms_budget() {
    let app = spawn_app_with(|settings| {
        small(settings);
        settings.files.ttl_secs = 1;
    })
    .await;
    let chat = pair(&app).await;
    let a = &chat.tokens[0];
    for _ in 0..2 {
        stored(&app, a, 1000).await;
    }
    stored(&app, a, 500).await;
    refused(&app, a, 1, 413, "too_large").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    stored(&app, a, 1000).await;
    stored(&app, a, 1000).await;
}

#[tokio::test]
async fn uploads_are_limited_per_user_with_retry_after() {
    let app = spawn_app_with(|settings| {
        small(settings);
        settings.rate.uploads_per_minute = 3;
    })
    .await;
    let chat = pair(&app).await;
    let [a, b] = chat.tokens.clone();
    stored(&app, &a, 10).await;
    // A refused upload counts too.
    refused(&app, &a, 1001, 413, "too_large").await;
    stored(&app, &a, 10).await;
    let limited = refused(&app, &a, 10, 429, "rate_limited").await;
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    // The partner has an allowance of their own.
    for _ in 0..3 {
        stored(&app, &b, 10).await;
    }
    refused(&app, &b, 10, 429, "rate_limited").await;
}

#[tokio::test]
async fn a_node_holds_at_most_its_memory_bound_of_files() {
    let app = spawn_app_with(|settings| {
        small(settings);
        settings.files.max_room_bytes = 1000;
        settings.files.max_total_bytes = 2500;
    })
    .await;
    let mut first = pair(&app).await;
    let second = pair(&app).await;
    let third = pair(&app).await;
    let kept = [
        stored(&app, &first.tokens[0], 1000).await,
        stored(&app, &second.tokens[0], 1000).await,
    ];
    // 2000 + 1000 > 2500 in this node's memory: 503, and nothing lost.
    refused(&app, &third.tokens[0], 1000, 503, "unavailable").await;
    refused(&app, &third.tokens[1], 501, 503, "unavailable").await;
    let last = stored(&app, &third.tokens[1], 500).await;
    all_downloadable(&app, &[&kept[0], &kept[1], &last]).await;
    // Until files go: a cleared room frees the node's memory too.
    clear(&mut first.sockets).await;
    stored(&app, &third.tokens[0], 500).await;
    stored(&app, &first.tokens[1], 500).await;
    refused(&app, &first.tokens[1], 1, 503, "unavailable").await;
    assert_eq!(app.get("/healthz", None).await.status, 200);
}

#[tokio::test]
async fn the_room_and_user_bounds_hold_across_gateways_on_one_redis() {
    let Some(redis) = require_redis() else {
        return;
    };
    let nodes = spawn_nodes_with(&redis.url(), 2, |settings| {
        small(settings);
        settings.files.max_room_bytes = 1500;
        settings.rate.uploads_per_minute = 2;
    })
    .await;
    // A on node 0, B on node 1, in one chat.
    let (a, _) = nodes[0].guest(json!({})).await;
    let (b, _) = nodes[1].guest(json!({})).await;
    let mut sockets = [
        PollingSocket::connect(&nodes[0], &a).await,
        PollingSocket::connect(&nodes[1], &b).await,
    ];
    for socket in &mut sockets {
        socket.emit("match:search", json!({})).await;
    }
    for socket in &mut sockets {
        socket.wait_for("match:found").await;
    }
    let first = stored(&nodes[0], &a, 1000).await;
    // The room's total lives in Redis: node 1 sees node 0's upload.
    refused(&nodes[1], &b, 1000, 413, "too_large").await;
    let second = stored(&nodes[1], &b, 500).await;
    // B's third attempt, through the other node, is over B's allowance.
    refused(&nodes[0], &b, 1, 429, "rate_limited").await;
    refused(&nodes[1], &a, 1, 413, "too_large").await;
    all_downloadable(&nodes[1], &[&first, &second]).await;
}
