//! Slow and hostile clients: connections that never send CONNECT, parallel polls and posts on
//! one session, dead peers, and a socket that stops reading while others are flooded. Each
//! test shows that a well-behaved bystander keeps being served and that nothing stays behind.

use std::time::{Duration, Instant};

use actix_socketio::{Config, DisconnectReason, EncodedPacket};
use futures_util::future::join_all;
use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::helpers::{TestApp, WAIT, WsClient, http, spawn_app, test_config};

/// The bystander is still served: an echo comes back.
async fn served(client: &mut WsClient) {
    client.send(r#"42["echo","still here"]"#).await;
    assert_eq!(client.recv().await, r#"42["echo-back","still here"]"#);
}

/// Waits up to `limit` for the server to hold exactly `count` connections.
async fn connections_settle(app: &TestApp, count: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while app.io.connection_count() != count {
        assert!(
            Instant::now() < deadline,
            "{} connections left, expected {count}",
            app.io.connection_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_half_open_connections_are_closed_after_the_connect_timeout() {
    let config = Config {
        connect_timeout: Duration::from_millis(1500),
        ..test_config()
    };
    let app = spawn_app(config).await;
    let mut bystander = app.ws_socket().await;
    let started = Instant::now();
    // 700 polling handshakes (no connection held) and 300 WebSockets that stay open, none of
    // which ever sends a Socket.IO CONNECT.
    let polling = join_all((0..700).map(|_| app.polling_session())).await;
    assert_eq!(polling.len(), 700);
    let mut sockets = Vec::new();
    for chunk in 0..6 {
        let batch = join_all((0..50).map(|_| app.ws())).await;
        sockets.extend(batch);
        served_now(&mut bystander, chunk).await;
    }
    for socket in &mut sockets {
        socket.open().await;
    }
    assert!(
        app.io.connection_count() >= 1000,
        "{}",
        app.io.connection_count()
    );
    served(&mut bystander).await;
    // All closed once the timeout passed; the bystander, connected, stays.
    connections_settle(&app, 1, Duration::from_secs(10)).await;
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(app.io.connected_count(), 1);
    for socket in &mut sockets[..10] {
        socket.expect_closed().await;
    }
    served(&mut bystander).await;
}

/// The bystander answers between batches (and keeps its heartbeat).
async fn served_now(bystander: &mut WsClient, round: usize) {
    bystander.send(&format!(r#"42["echo",{round}]"#)).await;
    assert_eq!(
        bystander.recv().await,
        format!(r#"42["echo-back",{round}]"#)
    );
}

#[tokio::test]
async fn parallel_polls_on_one_session_close_it_and_leave_nothing() {
    let mut app = spawn_app(test_config()).await;
    let mut bystander = app.ws_socket().await;
    let sid = app.polling_session().await;
    let query = format!("EIO=4&transport=polling&sid={sid}");
    app.http("POST", &query, Some("40")).await;
    assert!(app.http("GET", &query, None).await.body.contains("welcome"));
    let addr = app.addr;
    let answers = join_all((0..20).map(|_| http(addr, "GET", &query, None, &[]))).await;
    let mut outcomes: Vec<(u16, String)> = answers
        .into_iter()
        .map(|answer| (answer.status, answer.body))
        .collect();
    outcomes.sort();
    // One GET was pending and gets the close packet; every other one is refused.
    assert_eq!(outcomes[0], (200, "1".to_owned()), "{outcomes:?}");
    assert!(
        outcomes[1..].iter().all(|(status, _)| *status == 400),
        "{outcomes:?}"
    );
    assert_eq!(app.disconnected().await, DisconnectReason::MultiplePolling);
    connections_settle(&app, 1, WAIT).await;
    assert_eq!(app.http("GET", &query, None).await.status, 400);
    served(&mut bystander).await;
}

#[tokio::test]
async fn a_second_post_while_one_is_in_flight_closes_the_session() {
    let mut app = spawn_app(test_config()).await;
    let mut bystander = app.ws_socket().await;
    let sid = app.polling_session().await;
    let query = format!("EIO=4&transport=polling&sid={sid}");
    app.http("POST", &query, Some("40")).await;
    app.http("GET", &query, None).await;
    // A POST whose body never finishes arriving stays in flight.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /socket.io/?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n42[\"ec"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    loop {
        let second = app.http("POST", &query, Some(r#"42["echo",1]"#)).await;
        if second.status == 400 {
            break;
        }
        // The first POST had not reached the server yet; this one went through.
        assert!(
            started.elapsed() < WAIT,
            "the second POST was never refused"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.disconnected().await, DisconnectReason::TransportError);
    connections_settle(&app, 1, WAIT).await;
    drop(slow);
    served(&mut bystander).await;
}

#[tokio::test]
async fn dead_peers_are_dropped_by_the_heartbeat() {
    let config = Config {
        ping_interval: Duration::from_millis(400),
        ping_timeout: Duration::from_millis(400),
        ..test_config()
    };
    let app = spawn_app(config).await;
    let mut bystander = app.ws_socket().await;
    // Connected sockets whose peers then go silent: TCP stays up, nothing is read or sent.
    let dead = join_all((0..50).map(|_| app.ws_socket())).await;
    assert!(app.io.connection_count() > 1);
    let started = Instant::now();
    // The bystander answers its pings (recv does) while the others are timed out.
    while app.io.connection_count() > 1 {
        served(&mut bystander).await;
        assert!(
            started.elapsed() < WAIT,
            "{} left",
            app.io.connection_count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Gone after about one interval plus the timeout.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    served(&mut bystander).await;
    drop(dead);
}

#[tokio::test]
async fn a_socket_that_stops_reading_is_dropped_while_readers_keep_up() {
    let config = Config {
        outbound_queue: 64,
        ..test_config()
    };
    let mut app = spawn_app(config).await;
    let mut reader = app.ws_socket().await;
    let stalled = app.ws_socket().await;
    // 64 KiB per packet: the stalled peer's socket buffers fill, then its queue, then it is
    // disconnected; the reader reads everything.
    let packet = EncodedPacket::event("/", "bulk", &"x".repeat(64 * 1024)).unwrap();
    let started = Instant::now();
    let mut sent = 0;
    while app.io.connected_count() == 2 {
        assert!(
            started.elapsed() < WAIT,
            "the stalled socket was never dropped"
        );
        for _ in 0..8 {
            app.io.broadcast("/", &packet);
            sent += 1;
        }
        for _ in 0..8 {
            assert!(reader.recv().await.starts_with(r#"42["bulk""#));
        }
    }
    assert_eq!(app.disconnected().await, DisconnectReason::QueueFull);
    assert!(sent > 64, "dropped after {sent} packets");
    served(&mut reader).await;
    drop(stalled);
}

#[tokio::test]
async fn a_burst_of_requests_is_answered_without_overflowing_the_senders_queue() {
    let config = Config {
        outbound_queue: 16,
        ..test_config()
    };
    let app = spawn_app(config).await;
    let mut client = app.ws_socket().await;
    // Far more events than the queue holds, sent before reading anything: their answers are
    // written as they come instead of piling up, and the client stays connected.
    for index in 0..300 {
        client.send(&format!(r#"42["echo",{index}]"#)).await;
    }
    for index in 0..300 {
        assert_eq!(client.recv().await, format!(r#"42["echo-back",{index}]"#));
    }
    assert_eq!(app.io.connected_count(), 1);
    served(&mut client).await;
}
