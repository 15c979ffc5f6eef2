//! Socket.IO: connect and auth, namespaces, events and acks both ways, disconnects, ordering,
//! broadcast and shutdown.

use std::time::Duration;

use actix_socketio::{Config, DisconnectReason, EncodedPacket};
use serde_json::json;

use crate::helpers::{Record, spawn_app, test_config};

#[tokio::test]
async fn connect_with_auth_is_seen_by_the_handler() {
    let mut app = spawn_app(test_config()).await;
    let mut client = app.ws().await;
    client.open().await;
    client.send(r#"40{"token":"123"}"#).await;
    let connect = client.recv().await;
    let handshake: serde_json::Value = serde_json::from_str(&connect[2..]).unwrap();
    let socket_id = handshake["sid"].as_str().unwrap().to_owned();
    assert_eq!(client.recv().await, r#"42["welcome",{"token":"123"}]"#);
    assert_eq!(
        app.record().await,
        Record::Connect {
            nsp: "/".to_owned(),
            auth: Some(json!({"token": "123"}))
        }
    );
    assert_eq!(
        app.record().await,
        Record::Connected {
            id: socket_id.clone(),
            nsp: "/".to_owned()
        }
    );
    let socket = app.io.socket(&socket_id).unwrap();
    assert_eq!(socket.state(), &Some(json!({"token": "123"})));
    assert_eq!(app.io.connected_count(), 1);
}

#[tokio::test]
async fn refused_connect_and_unknown_namespace() {
    let app = spawn_app(test_config()).await;
    let mut client = app.ws().await;
    client.open().await;
    client.send(r#"40{"token":"bad"}"#).await;
    assert_eq!(client.recv().await, r#"44{"message":"Invalid token"}"#);
    client.send("40/nope,").await;
    assert_eq!(
        client.recv().await,
        r#"44/nope,{"message":"Invalid namespace"}"#
    );
    client.send("40/random").await;
    assert_eq!(
        client.recv().await,
        r#"44/random,{"message":"Invalid namespace"}"#
    );
    // The connection stays usable.
    client.send("40").await;
    assert!(client.recv().await.starts_with("40{\"sid\":"));
    assert_eq!(app.io.connected_count(), 1);
}

#[tokio::test]
async fn several_namespaces_on_one_connection() {
    let mut app = spawn_app(test_config()).await;
    let mut client = app.ws_socket().await;
    client.send("40/custom,").await;
    assert!(client.recv().await.starts_with("40/custom,{\"sid\":"));
    assert_eq!(client.recv().await, r#"42/custom,["welcome",null]"#);
    client.send(r#"42/custom,["echo","c"]"#).await;
    assert_eq!(client.recv().await, r#"42/custom,["echo-back","c"]"#);
    client.send(r#"42["echo","main"]"#).await;
    assert_eq!(client.recv().await, r#"42["echo-back","main"]"#);
    client.send("41/custom,").await;
    let reason = app.disconnected().await;
    assert_eq!(reason, DisconnectReason::ClientDisconnect);
    client.send(r#"42["echo","still"]"#).await;
    assert_eq!(client.recv().await, r#"42["echo-back","still"]"#);
    assert_eq!(app.io.connected_count(), 1);
}

#[tokio::test]
async fn client_event_with_ack_is_answered() {
    let app = spawn_app(test_config()).await;
    let mut client = app.ws_socket().await;
    client.send(r#"42456["echo",1,"2",{"3":[false]}]"#).await;
    assert_eq!(client.recv().await, r#"43456[1,"2",{"3":[false]}]"#);
}

#[tokio::test]
async fn binary_event_attachments_round_trip() {
    let app = spawn_app(test_config()).await;
    let mut client = app.ws_socket().await;
    client
        .send(r#"452-["echo",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        .await;
    client.send_binary(&[1, 2, 3]).await;
    client.send_binary(&[4, 5, 6]).await;
    assert_eq!(
        client.recv().await,
        r#"452-["echo-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
    );
    assert_eq!(client.recv_binary().await, vec![1, 2, 3]);
    assert_eq!(client.recv_binary().await, vec![4, 5, 6]);
    client
        .send(r#"451-789["echo",{"_placeholder":true,"num":0}]"#)
        .await;
    client.send_binary(&[9]).await;
    assert_eq!(
        client.recv().await,
        r#"461-789[{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(client.recv_binary().await, vec![9]);
}

#[tokio::test]
async fn server_ack_answered_and_timing_out() {
    let mut app = spawn_app(test_config()).await;
    let mut client = app.ws_socket().await;
    client.send(r#"42["ask"]"#).await;
    let question = client.recv().await;
    assert_eq!(question, r#"420["question","q"]"#);
    client.send(r#"430["yes",2]"#).await;
    assert_eq!(client.recv().await, r#"42["answered",["yes",2]]"#);

    client.send(r#"42["ask",50]"#).await;
    assert_eq!(client.recv().await, r#"421["question","q"]"#);
    assert_eq!(
        client.recv().await,
        r#"42["ack-error","the acknowledgement timed out"]"#
    );
    // A late answer is ignored.
    client.send(r#"431["late"]"#).await;
    client.send(r#"42["echo","after"]"#).await;
    assert_eq!(client.recv().await, r#"42["echo-back","after"]"#);
    app.wait_for(|record| matches!(record, Record::Event { name, .. } if name == "echo"))
        .await;
}

#[tokio::test]
async fn callback_acks_are_answered_and_time_out() {
    let config = Config {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(2000),
        ..test_config()
    };
    let app = spawn_app(config).await;
    let mut client = app.ws_socket().await;
    client.send(r#"42["ask-callback"]"#).await;
    assert_eq!(client.recv().await, r#"420["question","q"]"#);
    client.send(r#"430["yes",2]"#).await;
    assert_eq!(client.recv().await, r#"42["answered",["yes",2]]"#);

    // No answer: the callback hears of the timeout at a heartbeat after the deadline.
    client.send(r#"42["ask-callback",50]"#).await;
    assert_eq!(client.recv().await, r#"421["question","q"]"#);
    assert_eq!(
        client.recv().await,
        r#"42["ack-error","the acknowledgement timed out"]"#
    );
    // An answer after the deadline but before the heartbeat is a timeout too.
    client.send(r#"42["ask-callback",0]"#).await;
    assert_eq!(client.recv().await, r#"422["question","q"]"#);
    client.send(r#"432["late"]"#).await;
    assert_eq!(
        client.recv().await,
        r#"42["ack-error","the acknowledgement timed out"]"#
    );
}

#[tokio::test]
async fn events_are_handled_in_order() {
    let app = spawn_app(test_config()).await;
    let mut client = app.ws_socket().await;
    client.send(r#"42["slow",100]"#).await;
    client.send(r#"42["echo","second"]"#).await;
    assert_eq!(client.recv().await, r#"42["slow-done"]"#);
    assert_eq!(client.recv().await, r#"42["echo-back","second"]"#);
}

#[tokio::test]
async fn disconnect_from_either_side() {
    let mut app = spawn_app(test_config()).await;
    let mut client = app.ws_socket().await;
    client.send("41").await;
    assert_eq!(app.disconnected().await, DisconnectReason::ClientDisconnect);
    assert_eq!(app.io.connected_count(), 0);

    let mut client = app.ws_socket().await;
    client.send(r#"42["disconnect-me"]"#).await;
    assert_eq!(client.recv().await, "41");
    client.expect_closed().await;
    assert_eq!(app.disconnected().await, DisconnectReason::ServerDisconnect);

    let client = app.ws_socket().await;
    drop(client);
    assert_eq!(app.disconnected().await, DisconnectReason::TransportClose);
}

#[tokio::test]
async fn broadcast_reaches_every_socket_of_the_namespace() {
    let app = spawn_app(test_config()).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(app.ws_socket().await);
    }
    let mut custom = app.ws().await;
    custom.open().await;
    custom.send("40/custom,").await;
    custom.recv().await;
    custom.recv().await;
    let packet = EncodedPacket::event("/", "news", &json!({"n": 1})).unwrap();
    assert_eq!(app.io.broadcast("/", &packet), 3);
    for client in &mut clients {
        assert_eq!(client.recv().await, r#"42["news",{"n":1}]"#);
    }
    let packet = EncodedPacket::event("/custom", "news", &[(); 0]).unwrap();
    assert_eq!(app.io.broadcast("/custom", &packet), 1);
    assert_eq!(custom.recv().await, r#"42/custom,["news"]"#);
}

#[tokio::test]
async fn close_all_disconnects_everyone() {
    let mut app = spawn_app(test_config()).await;
    let mut ws = app.ws_socket().await;
    let sid = app.polling_session().await;
    let query = format!("EIO=4&transport=polling&sid={sid}");
    app.http("POST", &query, Some("40")).await;
    assert!(app.http("GET", &query, None).await.body.contains("welcome"));
    let (addr, poll_query) = (app.addr, query.clone());
    let poll =
        tokio::spawn(
            async move { crate::helpers::http(addr, "GET", &poll_query, None, &[]).await },
        );
    let closing = tokio::spawn(app.io.close_all());
    assert_eq!(ws.recv().await, "41");
    ws.expect_closed().await;
    let poll = poll.await.unwrap();
    assert_eq!(poll.body, "41");
    // The close packet comes alone, on the next poll.
    assert_eq!(app.http("GET", &query, None).await.body, "1");
    tokio::time::timeout(crate::helpers::WAIT, closing)
        .await
        .unwrap()
        .unwrap();
    for _ in 0..2 {
        assert_eq!(app.disconnected().await, DisconnectReason::ServerShutdown);
    }
    assert_eq!(app.io.connection_count(), 0);
}

/// Graceful shutdown runs every disconnect rule: `close_all` returns only once the handler's
/// `disconnected` returned for every socket, over WebSocket and polling, even when it takes a
/// while after the connection left the session registry.
#[tokio::test]
async fn close_all_waits_for_every_disconnect_handler() {
    let mut app = spawn_app(test_config()).await;
    let connect = r#"40{"slowDisconnect":300}"#;
    let mut websockets = Vec::new();
    for _ in 0..3 {
        let mut client = app.ws().await;
        client.open().await;
        client.send(connect).await;
        assert!(client.recv().await.starts_with("40{\"sid\":"));
        assert!(client.recv().await.starts_with("42[\"welcome\""));
        websockets.push(client);
    }
    let mut pollers = Vec::new();
    for _ in 0..3 {
        let sid = app.polling_session().await;
        let query = format!("EIO=4&transport=polling&sid={sid}");
        assert_eq!(app.http("POST", &query, Some(connect)).await.status, 200);
        assert!(app.http("GET", &query, None).await.body.contains("welcome"));
        // Polls until the close packet, as a client does.
        let addr = app.addr;
        pollers.push(tokio::spawn(async move {
            loop {
                let polled = crate::helpers::http(addr, "GET", &query, None, &[]).await;
                if polled.status != 200 || polled.body.split('\x1e').any(|packet| packet == "1") {
                    break;
                }
            }
        }));
    }
    tokio::time::timeout(crate::helpers::WAIT, app.io.close_all())
        .await
        .unwrap();
    let disconnected = app
        .records_now()
        .into_iter()
        .filter(|record| {
            matches!(
                record,
                Record::Disconnected {
                    reason: DisconnectReason::ServerShutdown,
                    ..
                }
            )
        })
        .count();
    assert_eq!(disconnected, 6);
    assert_eq!(app.io.connection_count(), 0);
    for poller in pollers {
        poller.await.unwrap();
    }
    drop(websockets);
}

#[tokio::test]
async fn server_emit_then_disconnect_over_polling_delivers_both_before_the_close() {
    let mut app = spawn_app(test_config()).await;
    let sid = app.polling_session().await;
    let query = format!("EIO=4&transport=polling&sid={sid}");
    app.http("POST", &query, Some("40")).await;
    let polled = app.http("GET", &query, None).await.body;
    let handshake: serde_json::Value =
        serde_json::from_str(&polled.split('\x1e').next().unwrap()[2..]).unwrap();
    let socket = app.io.socket(handshake["sid"].as_str().unwrap()).unwrap();
    socket.emit("bye", &1).unwrap();
    socket.disconnect();
    assert!(!socket.is_connected());
    assert!(socket.emit("late", &1).is_err());
    assert_eq!(
        app.http("GET", &query, None).await.body,
        "42[\"bye\",1]\x1e41"
    );
    assert_eq!(app.http("GET", &query, None).await.body, "1");
    assert_eq!(app.disconnected().await, DisconnectReason::ServerDisconnect);
    assert_eq!(app.http("GET", &query, None).await.status, 400);
}
