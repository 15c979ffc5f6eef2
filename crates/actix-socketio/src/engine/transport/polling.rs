//! HTTP long-polling: the handshake, the long GET that drains the outbox, and the POST that
//! delivers the client's packets.

use std::{
    future::{Future, poll_fn},
    pin::pin,
    sync::Arc,
    task::Poll,
    time::Duration,
};

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use bytes::Bytes;
use engineioxide_core::{Packet as EnginePacket, ProtocolVersion, Sid, payload};
use futures_util::StreamExt;
use http_body_util::Full;
use tokio::time::sleep;

use super::http::{Cors, EngineError};
use crate::engine::{
    conn::{Conn, ConnData, Transport, WORK_QUEUE_LIMIT},
    driver::{Driver, run_polling},
    frame::{Frame, open_frame},
    reason::DisconnectReason,
    server::{Engine, Protocol},
};

const SEPARATOR: char = '\x1e';

/// How long a polling request that arrives while the session is being upgraded waits for the
/// upgrade to finish before it is served (the reference server likewise answers polls with a
/// noop every 100 ms while it upgrades). A request the client sent after its `5` can reach
/// the server before the WebSocket task read the `5`: it then sees the upgrade finish, and is
/// refused like every later one instead of served on a transport the client left.
const UPGRADE_SETTLE: Duration = Duration::from_millis(100);

/// `GET ?EIO=4&transport=polling`: opens a session and answers its OPEN packet.
pub(super) fn handshake<P: Protocol>(
    engine: &Arc<Engine<P>>,
    request: &HttpRequest,
    cors: &Cors,
) -> HttpResponse {
    let conn = engine.open_conn(request, Transport::Polling);
    let open = open_frame(conn.sid, &engine.config, true);
    let driver = Driver::new(Arc::clone(engine), conn, None);
    actix_web::rt::spawn(engine.tasks.track_future(run_polling(driver)));
    payload_response(cors, vec![open])
}

/// Resets a flag of the connection when the request ends, however it ends.
struct ActiveGuard<'a, D: ConnData> {
    conn: &'a Conn<D>,
    get: bool,
}

impl<D: ConnData> Drop for ActiveGuard<'_, D> {
    fn drop(&mut self) {
        let mut state = self.conn.state();
        if self.get {
            state.get_active = false;
        } else {
            state.post_active = false;
        }
    }
}

/// `GET ?sid=`: waits for packets and answers them joined by `\x1e`.
pub(super) async fn poll<P: Protocol>(engine: &Engine<P>, sid: Sid, cors: &Cors) -> HttpResponse {
    let Some(conn) = engine.sessions.get(&sid) else {
        return cors.error(EngineError::UnknownSid);
    };
    if conn.check_pong_overdue(engine.config.ping_timeout) && !can_deliver_close(&conn) {
        return cors.error(EngineError::UnknownSid);
    }
    let arrived_upgrading = {
        let mut state = conn.state();
        if state.transport == Transport::WebSocket {
            return cors.error(EngineError::BadRequest);
        }
        if state.get_active {
            drop(state);
            conn.close(DisconnectReason::MultiplePolling);
            return cors.error(EngineError::BadRequest);
        }
        state.get_active = true;
        state.upgrade_pending || state.upgrading
    };
    let _guard = ActiveGuard {
        conn: &conn,
        get: true,
    };
    let max_payload = engine.config.max_payload;
    // Only a poll that arrived during an upgrade waits for it (see `UPGRADE_SETTLE`): one
    // pending before is the client's own, which it waits for before it sends its `5`.
    let mut settle = pin!(arrived_upgrading.then(|| sleep(UPGRADE_SETTLE)));
    let frames = poll_fn(|cx| {
        conn.poll_waker.register(cx.waker());
        let mut state = conn.state();
        let frames = match state.closing {
            // The close packet never shares a payload with other packets: socket.io-client
            // dispatches decoded packets on the next tick but handles a close at once, so
            // it would drop the packets queued before the close (as the reference server
            // avoids by flushing its buffer first and closing on the next poll).
            Some(reason) if reason.flushes() && !state.outbox.is_empty() => {
                Conn::drain_frames(&mut state, max_payload)
            }
            Some(reason) if reason.flushes() => {
                state.close_delivered = true;
                drop(state);
                conn.driver_waker.wake();
                vec![Frame::control("1")]
            }
            Some(DisconnectReason::TransportClose) => vec![Frame::control("6")],
            Some(_) => vec![Frame::control("1")],
            None if state.transport == Transport::WebSocket && arrived_upgrading => {
                return Poll::Ready(None);
            }
            None if state.transport == Transport::WebSocket => vec![Frame::control("6")],
            None if !state.outbox.is_empty() => Conn::drain_frames(&mut state, max_payload),
            None if state.upgrading => {
                drop(state);
                if let Some(settle) = settle.as_mut().as_pin_mut()
                    && settle.poll(cx).is_pending()
                {
                    return Poll::Pending;
                }
                vec![Frame::control("6")]
            }
            None => return Poll::Pending,
        };
        Poll::Ready(Some(frames))
    })
    .await;
    let Some(frames) = frames else {
        return cors.error(EngineError::BadRequest);
    };
    // Handler calls held back by a full outbox may go on now.
    conn.driver_waker.wake();
    payload_response(cors, frames)
}

/// A closing connection that still has to hand its last packets to one more GET.
fn can_deliver_close<D: ConnData>(conn: &Conn<D>) -> bool {
    let state = conn.state();
    state
        .closing
        .is_some_and(|reason| reason.flushes() && !state.close_delivered)
}

/// `POST ?sid=`: decodes the body's packets and ingests them.
pub(super) async fn post<P: Protocol>(
    engine: &Engine<P>,
    sid: Sid,
    body: web::Payload,
    cors: &Cors,
) -> HttpResponse {
    let Some(conn) = engine.sessions.get(&sid) else {
        return cors.error(EngineError::UnknownSid);
    };
    if conn.check_pong_overdue(engine.config.ping_timeout) {
        return cors.error(EngineError::UnknownSid);
    }
    let arrived_upgrading = {
        let mut state = conn.state();
        if state.transport == Transport::WebSocket {
            return cors.error(EngineError::BadRequest);
        }
        if state.post_active {
            drop(state);
            conn.close(DisconnectReason::TransportError);
            return cors.error(EngineError::BadRequest);
        }
        state.post_active = true;
        state.upgrade_pending || state.upgrading
    };
    let _guard = ActiveGuard {
        conn: &conn,
        get: false,
    };
    if arrived_upgrading && upgrade_settled(&conn).await == Transport::WebSocket {
        return cors.error(EngineError::BadRequest);
    }
    let max_payload = engine.config.max_payload;
    let bytes = match body.to_bytes_limited(max_payload).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            conn.close(DisconnectReason::TransportError);
            return cors.error(EngineError::BadRequest);
        }
        Err(_) => {
            conn.close(DisconnectReason::TransportError);
            return cors
                .builder(StatusCode::PAYLOAD_TOO_LARGE)
                .content_type("text/html")
                .body("payload too large");
        }
    };
    match ingest_payload(engine, &conn, bytes).await {
        Ok(()) => {}
        Err(DisconnectReason::TransportClose) => conn.close(DisconnectReason::TransportClose),
        Err(reason) => {
            conn.close(reason);
            return cors.error(EngineError::BadRequest);
        }
    }
    // Backpressure: the next POST waits until the handler has caught up.
    poll_fn(|cx| {
        conn.post_waker.register(cx.waker());
        let state = conn.state();
        if state.closing.is_some() || state.work.len() < WORK_QUEUE_LIMIT {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    cors.builder(StatusCode::OK)
        .content_type("text/html")
        .body("ok")
}

/// Waits until the upgrade of `conn` succeeded or failed, or the connection is closing, for
/// at most [`UPGRADE_SETTLE`]; returns the transport then. For a POST, which owns the
/// connection's `post_waker` while it is active.
async fn upgrade_settled<D: ConnData>(conn: &Conn<D>) -> Transport {
    let mut settle = pin!(sleep(UPGRADE_SETTLE));
    poll_fn(|cx| {
        conn.post_waker.register(cx.waker());
        let state = conn.state();
        if !(state.upgrade_pending || state.upgrading) || state.closing.is_some() {
            return Poll::Ready(state.transport);
        }
        drop(state);
        settle.as_mut().poll(cx).map(|()| conn.transport())
    })
    .await
}

/// Decodes a POST body's packets and ingests them in order, up to the first that ends the
/// connection (a close packet, or anything invalid).
pub(crate) async fn ingest_payload<P: Protocol>(
    engine: &Engine<P>,
    conn: &Arc<Conn<P::Data>>,
    body: Bytes,
) -> Result<(), DisconnectReason> {
    let max = u64::try_from(engine.config.max_payload).unwrap_or(u64::MAX);
    let mut packets = std::pin::pin!(payload::decoder(
        Full::new(body),
        None,
        ProtocolVersion::V4,
        max
    ));
    while let Some(packet) = packets.next().await {
        let packet = packet.map_err(|error| {
            tracing::debug!(sid = %conn.sid, %error, "invalid Engine.IO payload");
            DisconnectReason::ParseError
        })?;
        engine.ingest(conn, packet)?;
    }
    Ok(())
}

/// Joins frames into a polling payload: text packets as they are, binary ones as `b<base64>`.
fn payload_response(cors: &Cors, frames: Vec<Frame>) -> HttpResponse {
    let mut body = String::new();
    for frame in frames {
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Binary(data) => String::from(EnginePacket::Binary(data)).into(),
            Frame::WsPong(_) => continue,
        };
        if !body.is_empty() {
            body.push(SEPARATOR);
        }
        body.push_str(&text);
    }
    cors.builder(StatusCode::OK)
        .content_type("text/plain; charset=UTF-8")
        .body(body)
}
