//! Engine.IO: handshakes, polling exchange, upgrade, heartbeat, errors and CORS.

use std::time::Duration;

use actix_socketio::{Config, DisconnectReason};
use serde_json::json;

use crate::helpers::{Record, WsClient, http, spawn_app, test_config};

#[tokio::test]
async fn websocket_handshake_sends_the_open_packet() {
    let app = spawn_app(test_config()).await;
    let mut client = app.ws().await;
    let open = client.open().await;
    assert_eq!(open["sid"].as_str().unwrap().len(), 16);
    assert_eq!(open["upgrades"], json!([]));
    assert_eq!(open["pingInterval"], json!(1000));
    assert_eq!(open["pingTimeout"], json!(2000));
    assert_eq!(open["maxPayload"], json!(1_048_576));
    assert_eq!(app.io.connection_count(), 1);
}

#[tokio::test]
async fn polling_handshake_post_and_get() {
    let mut app = spawn_app(test_config()).await;
    let response = app.http("GET", "EIO=4&transport=polling", None).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    let open = crate::helpers::open_packet(&response.body);
    assert_eq!(open["upgrades"], json!(["websocket"]));
    let sid = open["sid"].as_str().unwrap();
    let query = format!("EIO=4&transport=polling&sid={sid}");

    let posted = app.http("POST", &query, Some("40{\"token\":\"t\"}")).await;
    assert_eq!((posted.status, posted.body.as_str()), (200, "ok"));
    let polled = app.http("GET", &query, None).await;
    assert_eq!(polled.status, 200);
    let packets: Vec<&str> = polled.body.split('\x1e').collect();
    assert!(packets[0].starts_with("40{\"sid\":"), "{packets:?}");
    assert_eq!(packets[1], r#"42["welcome",{"token":"t"}]"#);

    let posted = app
        .http("POST", &query, Some("42[\"echo\",1]\x1e421[\"echo\",2]"))
        .await;
    assert_eq!(posted.status, 200);
    let polled = app.http("GET", &query, None).await;
    assert_eq!(polled.body, "42[\"echo-back\",1]\x1e431[2]");
    app.wait_for(|record| matches!(record, Record::Event { args, .. } if args == &[json!(2)]))
        .await;
}

#[tokio::test]
async fn polling_binary_packets_are_base64() {
    let app = spawn_app(test_config()).await;
    let sid = app.polling_session().await;
    let query = format!("EIO=4&transport=polling&sid={sid}");
    app.http("POST", &query, Some("40")).await;
    app.http("GET", &query, None).await;
    let body = "451-[\"echo\",{\"_placeholder\":true,\"num\":0}]\x1ebAQIDBA==";
    assert_eq!(app.http("POST", &query, Some(body)).await.status, 200);
    let polled = app.http("GET", &query, None).await;
    assert_eq!(
        polled.body,
        "451-[\"echo-back\",{\"_placeholder\":true,\"num\":0}]\x1ebAQIDBA=="
    );
}

#[tokio::test]
async fn upgrade_from_polling_to_websocket() {
    let mut app = spawn_app(test_config()).await;
    let sid = app.polling_session().await;
    let query = format!("EIO=4&transport=polling&sid={sid}");
    app.http("POST", &query, Some("40")).await;
    assert!(app.http("GET", &query, None).await.body.contains("welcome"));

    let addr = app.addr;
    let pending_query = query.clone();
    let pending = tokio::spawn(async move { http(addr, "GET", &pending_query, None, &[]).await });
    let mut ws = WsClient::connect(app.addr, &format!("EIO=4&transport=websocket&sid={sid}")).await;
    ws.send("2probe").await;
    assert_eq!(ws.recv().await, "3probe");
    let drained = tokio::time::timeout(crate::helpers::WAIT, pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((drained.status, drained.body.as_str()), (200, "6"));
    ws.send("5").await;
    ws.send("42[\"echo\",\"over ws\"]").await;
    assert_eq!(ws.recv().await, r#"42["echo-back","over ws"]"#);
    let socket_id = match app
        .wait_for(|record| matches!(record, Record::Connected { .. }))
        .await
    {
        Record::Connected { id, .. } => id,
        _ => unreachable!(),
    };
    assert_eq!(
        app.io.socket(&socket_id).unwrap().transport(),
        actix_socketio::Transport::WebSocket
    );
    let after = app.http("GET", &query, None).await;
    assert_eq!(after.status, 400);
    // A second WebSocket on the same session is closed at once, as the reference does.
    let mut second =
        WsClient::connect(app.addr, &format!("EIO=4&transport=websocket&sid={sid}")).await;
    second.expect_closed().await;
    // Heartbeats now run over the WebSocket.
    ws.keep_pings = true;
    assert_eq!(ws.recv().await, "2");
}

#[tokio::test]
async fn unknown_sid_and_bad_queries_are_400_with_the_reference_body() {
    let app = spawn_app(test_config()).await;
    let check = |query: &'static str, method: &'static str, body: &'static str| {
        let addr = app.addr;
        async move {
            let response = http(addr, method, query, None, &[]).await;
            assert_eq!(response.status, 400, "{query}");
            assert_eq!(response.body, body, "{query}");
            assert_eq!(
                response.header("content-type"),
                Some("application/json"),
                "{query}"
            );
        }
    };
    check(
        "EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAA",
        "GET",
        r#"{"code":1,"message":"Session ID unknown"}"#,
    )
    .await;
    check(
        "EIO=4&transport=polling&sid=not-a-sid",
        "POST",
        r#"{"code":1,"message":"Session ID unknown"}"#,
    )
    .await;
    check(
        "EIO=4",
        "GET",
        r#"{"code":0,"message":"Transport unknown"}"#,
    )
    .await;
    check(
        "EIO=4&transport=abc",
        "GET",
        r#"{"code":0,"message":"Transport unknown"}"#,
    )
    .await;
    check(
        "transport=polling",
        "GET",
        r#"{"code":5,"message":"Unsupported protocol version"}"#,
    )
    .await;
    check(
        "EIO=3&transport=polling",
        "GET",
        r#"{"code":5,"message":"Unsupported protocol version"}"#,
    )
    .await;
    check(
        "EIO=4&transport=polling",
        "POST",
        r#"{"code":2,"message":"Bad handshake method"}"#,
    )
    .await;
    check(
        "EIO=4&transport=polling",
        "PUT",
        r#"{"code":2,"message":"Bad handshake method"}"#,
    )
    .await;
}

#[tokio::test]
async fn a_refused_handshake_is_429_on_both_transports() {
    let app = spawn_app(test_config()).await;
    let refusal = r#"{"code":4,"message":"Too many handshakes"}"#;
    let response = app
        .http("GET", "EIO=4&transport=polling&refuse=1", None)
        .await;
    assert_eq!((response.status, response.body.as_str()), (429, refusal));
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket&refuse=1",
        app.addr
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
            assert_eq!(response.body().as_deref(), Some(refusal.as_bytes()));
        }
        other => panic!("expected a refused upgrade, got {other:?}"),
    }
    assert_eq!(app.io.connection_count(), 0);
    // Requests of open sessions are never asked.
    let sid = app.polling_session().await;
    let query = format!("EIO=4&transport=polling&sid={sid}&refuse=1");
    let posted = app.http("POST", &query, Some("40")).await;
    assert_eq!((posted.status, posted.body.as_str()), (200, "ok"));
}

#[tokio::test]
async fn cors_preflight_and_origin_list() {
    let config = Config {
        cors_origins: Some(vec!["https://chat.example".to_owned()]),
        ..test_config()
    };
    let app = spawn_app(config).await;
    let allowed = [("Origin", "https://chat.example")];
    let response = http(app.addr, "GET", "EIO=4&transport=polling", None, &allowed).await;
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://chat.example")
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true")
    );
    let other = [("Origin", "https://evil.example")];
    let response = http(app.addr, "GET", "EIO=4&transport=polling", None, &other).await;
    assert_eq!(response.header("access-control-allow-origin"), None);
    let preflight = http(
        app.addr,
        "OPTIONS",
        "EIO=4&transport=polling",
        None,
        &allowed,
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert!(
        preflight
            .header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
}

#[tokio::test]
async fn websocket_heartbeat_and_ping_timeout() {
    let config = Config {
        ping_interval: Duration::from_millis(100),
        ping_timeout: Duration::from_millis(100),
        ..test_config()
    };
    let mut app = spawn_app(config).await;
    let mut client = app.ws_socket().await;
    client.keep_pings = true;
    for _ in 0..3 {
        assert_eq!(client.recv().await, "2");
        client.send("3").await;
    }
    // Silent from now on: closed after one interval plus the timeout.
    assert_eq!(client.recv().await, "2");
    let started = std::time::Instant::now();
    client.expect_closed().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(app.disconnected().await, DisconnectReason::PingTimeout);
}

#[tokio::test]
async fn polling_heartbeat_and_ping_timeout() {
    let config = Config {
        ping_interval: Duration::from_millis(100),
        ping_timeout: Duration::from_millis(100),
        ..test_config()
    };
    let app = spawn_app(config).await;
    let sid = app.polling_session().await;
    let query = format!("EIO=4&transport=polling&sid={sid}");
    for _ in 0..3 {
        assert_eq!(app.http("GET", &query, None).await.body, "2");
        assert_eq!(app.http("POST", &query, Some("3")).await.status, 200);
    }
    assert_eq!(app.http("GET", &query, None).await.body, "2");
    // The pending GET ends with a close packet once the pong is overdue.
    assert_eq!(app.http("GET", &query, None).await.body, "1");
    assert_eq!(app.http("GET", &query, None).await.status, 400);
}

#[tokio::test]
async fn duplicate_polls_close_the_session() {
    let app = spawn_app(test_config()).await;
    let sid = app.polling_session().await;
    let query = format!("EIO=4&transport=polling&sid={sid}");
    // Two concurrent polls: whichever arrives second is refused, the first gets a close packet.
    let (first, second) =
        tokio::join!(app.http("GET", &query, None), app.http("GET", &query, None));
    let mut outcomes = [
        (first.status, first.body.clone()),
        (second.status, second.body.clone()),
    ];
    outcomes.sort();
    assert_eq!(outcomes[0], (200, "1".to_owned()), "{outcomes:?}");
    assert_eq!(outcomes[1].0, 400, "{outcomes:?}");
    assert_eq!(app.http("GET", &query, None).await.status, 400);
}

#[tokio::test]
async fn client_close_packet_ends_the_session() {
    let app = spawn_app(test_config()).await;
    let sid = app.polling_session().await;
    let query = format!("EIO=4&transport=polling&sid={sid}");
    let (poll, post) = tokio::join!(
        app.http("GET", &query, None),
        app.http("POST", &query, Some("1"))
    );
    // The poll either was pending (answered with a noop) or came after the close.
    assert!(
        (poll.status, poll.body.as_str()) == (200, "6") || poll.status == 400,
        "{} {}",
        poll.status,
        poll.body
    );
    assert!(post.status == 200 || post.status == 400);
    wait_until(|| async { app.io.connection_count() == 0 }).await;
    assert_eq!(app.http("GET", &query, None).await.status, 400);
}

/// Polls `condition` until it holds, for at most [`crate::helpers::WAIT`].
pub async fn wait_until<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + crate::helpers::WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
