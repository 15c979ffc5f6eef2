//! What only the taken-over WebSocket does itself (the rest of the suite runs on it too):
//! joining fragmented messages, control frames, bytes sent before the `101`, batched writes,
//! and the answer to upgrade requests that are not Engine.IO WebSockets.

use actix_socketio::Config;
use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    },
};

use crate::helpers::{WAIT, WsClient, spawn_app, test_config};

/// The next frame of any kind, control frames included.
async fn next_raw(client: &mut WsClient) -> Option<Message> {
    let message = tokio::time::timeout(WAIT, client.ws.next())
        .await
        .expect("timed out waiting for a frame");
    message.and_then(Result::ok)
}

/// Sends one text message split into continuation frames at the given pieces.
async fn send_fragments(client: &mut WsClient, pieces: &[&str]) {
    for (index, piece) in pieces.iter().enumerate() {
        let opcode = if index == 0 {
            Data::Text
        } else {
            Data::Continue
        };
        let last = index + 1 == pieces.len();
        let frame = Frame::message(piece.as_bytes().to_vec(), OpCode::Data(opcode), last);
        client.ws.send(Message::Frame(frame)).await.unwrap();
    }
}

#[tokio::test]
async fn fragmented_messages_are_joined_and_pings_answered() {
    let app = spawn_app(test_config()).await;
    let mut client = app.ws_socket().await;
    send_fragments(&mut client, &[r#"42["echo","hel"#, "lo wo", r#"rld"]"#]).await;
    assert_eq!(client.recv().await, r#"42["echo-back","hello world"]"#);
    client
        .ws
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    loop {
        match next_raw(&mut client).await {
            Some(Message::Pong(data)) => {
                assert_eq!(&data[..], b"are you there");
                break;
            }
            Some(Message::Text(text)) if text.as_str() == "2" => client.send("3").await,
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    // Still served after the control frame.
    client.send(r#"42["echo","after"]"#).await;
    assert_eq!(client.recv().await, r#"42["echo-back","after"]"#);
}

#[tokio::test]
async fn a_fragmented_message_over_the_limit_closes_the_connection() {
    let config = Config {
        max_payload: 1000,
        ..test_config()
    };
    let app = spawn_app(config).await;
    let mut client = app.ws_socket().await;
    let piece = "x".repeat(600);
    send_fragments(&mut client, &[r#"42["echo",""#, &piece, &piece, r#""]"#]).await;
    client.expect_closed().await;
}

#[tokio::test]
async fn a_burst_larger_than_one_write_arrives_whole_and_in_order() {
    let config = Config {
        outbound_queue: 20_000,
        ..test_config()
    };
    let app = spawn_app(config).await;
    let mut client = app.ws_socket().await;
    // 8,000 small frames (well over one 64 KiB write) and one frame larger than a write.
    client.send(r#"42["flood",8000]"#).await;
    for index in 0..8000 {
        assert_eq!(client.recv().await, format!(r#"42["flood",{index}]"#));
    }
    let big = "y".repeat(200_000);
    client.send(&format!(r#"42["echo","{big}"]"#)).await;
    assert_eq!(client.recv().await, format!(r#"42["echo-back","{big}"]"#));
}

/// A masked client text frame (mask key zero, so the payload reads as is).
fn client_frame(text: &str) -> Vec<u8> {
    let length = u8::try_from(text.len()).unwrap();
    assert!(length < 126);
    let mut frame = vec![0x81, 0x80 | length, 0, 0, 0, 0];
    frame.extend_from_slice(text.as_bytes());
    frame
}

/// Reads one short unmasked server text frame from `buffer`, refilling it from `stream`.
async fn server_frame(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> String {
    loop {
        if buffer.len() >= 2
            && usize::from(buffer[1]) < 126
            && buffer.len() >= 2 + usize::from(buffer[1])
        {
            assert_eq!(buffer[0], 0x81, "a final text frame");
            let length = usize::from(buffer[1]);
            let text = String::from_utf8(buffer[2..2 + length].to_vec()).unwrap();
            buffer.drain(..2 + length);
            return text;
        }
        let mut chunk = [0; 4096];
        let read = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("timed out waiting for a frame")
            .unwrap();
        assert!(read > 0, "connection closed early");
        buffer.extend_from_slice(&chunk[..read]);
    }
}

#[tokio::test]
async fn frames_sent_with_the_request_head_are_not_lost() {
    let app = spawn_app(test_config()).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let mut request = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        app.addr
    )
    .into_bytes();
    request.extend(client_frame("40"));
    stream.write_all(&request).await.unwrap();
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0; 4096];
        let read = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("timed out waiting for the 101")
            .unwrap();
        assert!(read > 0, "connection closed before the 101");
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    buffer.drain(..head_end);
    assert!(
        server_frame(&mut stream, &mut buffer)
            .await
            .starts_with("0{")
    );
    assert!(
        server_frame(&mut stream, &mut buffer)
            .await
            .starts_with("40{\"sid\":")
    );
}

/// Sends a WebSocket upgrade request for `target` and returns the whole answer, which must
/// end with the connection closed.
async fn upgrade_answer(app_addr: std::net::SocketAddr, target: &str) -> String {
    let mut stream = TcpStream::connect(app_addr).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {app_addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("the connection was not closed after the answer")
        .unwrap();
    String::from_utf8(raw).unwrap()
}

#[tokio::test]
async fn upgrade_requests_that_are_not_engine_websockets_get_the_apps_answer_and_a_close() {
    let app = spawn_app(test_config()).await;
    let elsewhere = upgrade_answer(app.addr, "/elsewhere").await;
    assert!(elsewhere.starts_with("HTTP/1.1 404"), "{elsewhere}");
    let old_protocol = upgrade_answer(app.addr, "/socket.io/?EIO=3&transport=websocket").await;
    assert!(old_protocol.starts_with("HTTP/1.1 400"), "{old_protocol}");
    assert!(
        old_protocol.ends_with(r#"{"code":5,"message":"Unsupported protocol version"}"#),
        "{old_protocol}"
    );
    let unknown = upgrade_answer(app.addr, "/socket.io/?EIO=4&transport=websocket&sid=nope").await;
    assert!(
        unknown.ends_with(r#"{"code":1,"message":"Session ID unknown"}"#),
        "{unknown}"
    );
    // The server still serves.
    let mut client = app.ws_socket().await;
    client.send(r#"42["echo","still here"]"#).await;
    assert_eq!(client.recv().await, r#"42["echo-back","still here"]"#);
}
