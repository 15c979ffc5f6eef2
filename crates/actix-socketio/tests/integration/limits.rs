//! Limits and hostile input: oversized frames, broken packets, queue overflow, connect timeout.

use std::time::Duration;

use actix_socketio::{Config, DisconnectReason};

use crate::helpers::{Record, spawn_app, test_config};

#[tokio::test]
async fn oversized_frame_closes_only_that_connection() {
    let config = Config {
        max_payload: 1000,
        ..test_config()
    };
    let mut app = spawn_app(config).await;
    let mut other = app.ws_socket().await;
    let mut big = app.ws_socket().await;
    let payload = format!(r#"42["echo","{}"]"#, "x".repeat(2000));
    big.send(&payload).await;
    big.expect_closed().await;
    assert_eq!(app.disconnected().await, DisconnectReason::TransportError);
    other.send(r#"42["echo","fine"]"#).await;
    assert_eq!(other.recv().await, r#"42["echo-back","fine"]"#);
}

#[tokio::test]
async fn oversized_polling_body_is_413() {
    let config = Config {
        max_payload: 1000,
        ..test_config()
    };
    let app = spawn_app(config).await;
    let sid = app.polling_session().await;
    let query = format!("EIO=4&transport=polling&sid={sid}");
    let body = format!("4{}", "x".repeat(2000));
    assert_eq!(app.http("POST", &query, Some(&body)).await.status, 413);
    assert_eq!(app.http("GET", &query, None).await.status, 400);
}

#[tokio::test]
async fn broken_packets_close_only_their_connection() {
    let mut app = spawn_app(test_config()).await;
    let mut healthy = app.ws_socket().await;
    for broken in [
        "4garbage",
        "42{}",
        r#"42["unterminated"#,
        r#"42abc["echo",1]"#,
        "9",
        "abc",
        "",
        r#"40[1]"#,
        r#"43"#,
    ] {
        let mut client = app.ws_socket().await;
        client.send(broken).await;
        client.expect_closed().await;
        let reason = app.disconnected().await;
        assert!(
            matches!(
                reason,
                DisconnectReason::ParseError | DisconnectReason::TransportError
            ),
            "{broken}: {reason:?}"
        );
    }
    // Unknown binary frames and stray packets on a polling session.
    let sid = app.polling_session().await;
    let query = format!("EIO=4&transport=polling&sid={sid}");
    assert_eq!(app.http("POST", &query, Some("x")).await.status, 400);
    healthy.send(r#"42["echo","alive"]"#).await;
    assert_eq!(healthy.recv().await, r#"42["echo-back","alive"]"#);
    let mut fresh = app.ws_socket().await;
    fresh.send(r#"42["echo","new"]"#).await;
    assert_eq!(fresh.recv().await, r#"42["echo-back","new"]"#);
}

#[tokio::test]
async fn a_panicking_handler_closes_only_its_connection() {
    let mut app = spawn_app(test_config()).await;
    let mut healthy = app.ws_socket().await;
    let mut client = app.ws_socket().await;
    client.send(r#"42["panic"]"#).await;
    client.expect_closed().await;
    assert_eq!(app.disconnected().await, DisconnectReason::TransportError);
    assert_eq!(app.io.connection_count(), 1);
    healthy.send(r#"42["echo","alive"]"#).await;
    assert_eq!(healthy.recv().await, r#"42["echo-back","alive"]"#);
}

#[tokio::test]
async fn full_outbound_queue_closes_the_connection() {
    let config = Config {
        outbound_queue: 8,
        ..test_config()
    };
    let mut app = spawn_app(config).await;
    let mut client = app.ws_socket().await;
    // One handler call emits more than the queue holds before the writer can run.
    client.send(r#"42["flood",100]"#).await;
    app.wait_for(|record| record == &Record::EmitFailed("queue full".to_owned()))
        .await;
    assert_eq!(app.disconnected().await, DisconnectReason::QueueFull);
    client.expect_closed().await;
}

#[tokio::test]
async fn connect_timeout_closes_idle_connections() {
    let config = Config {
        connect_timeout: Duration::from_millis(200),
        ..test_config()
    };
    let app = spawn_app(config).await;
    let mut client = app.ws().await;
    client.open().await;
    let started = std::time::Instant::now();
    client.expect_closed().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(app.io.connection_count(), 0);
}
