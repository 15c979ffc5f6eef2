//! The WebSocket transport: direct connections, the upgrade from polling, and the one loop
//! per connection that reads frames, writes queued frames and drives the handler calls.

use std::{
    future::poll_fn,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{
    AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Message, ProtocolError,
    Session,
};
use engineioxide_core::{Packet as EnginePacket, ProtocolVersion, Sid, Str};
use futures_util::{Sink, Stream};
use tokio::sync::oneshot;

use super::{
    http::{Cors, EngineError},
    new_conn,
};
use crate::{
    conn::{Conn, WORK_QUEUE_LIMIT},
    driver::Driver,
    handler::{DisconnectReason, Handler},
    ingest::ingest,
    packet::{Frame, open_frame},
    server::Shared,
    socket::Transport,
};

/// How long the client has to send `2probe` and then `5` on an upgrading WebSocket.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the WebSocket handshake, with frames limited to `max_payload`.
fn accept(
    max_payload: usize,
    request: &HttpRequest,
    body: web::Payload,
) -> Result<(HttpResponse, Session, AggregatedMessageStream), actix_web::Error> {
    let (response, session, stream) = actix_ws::handle(request, body)?;
    let stream = stream
        .max_frame_size(max_payload)
        .aggregate_continuations()
        .max_continuation_size(max_payload);
    Ok((response, session, stream))
}

/// `?EIO=4&transport=websocket` without a sid: a new session on a WebSocket.
pub(super) fn open<H: Handler>(
    shared: Arc<Shared<H>>,
    request: &HttpRequest,
    body: web::Payload,
    cors: &Cors,
) -> HttpResponse {
    let (response, session, stream) = match accept(shared.config.max_payload, request, body) {
        Ok(accepted) => accepted,
        Err(_) => return cors.error(EngineError::BadRequest),
    };
    let conn = new_conn(&shared, request, Transport::WebSocket);
    conn.push_control([open_frame(conn.sid, &shared.config, false)]);
    let driver = Driver::new(shared, conn, None);
    actix_web::rt::spawn(run(driver, session, stream));
    response
}

/// `?transport=websocket&sid=`: the upgrade of a polling session.
pub(super) fn upgrade<H: Handler>(
    shared: Arc<Shared<H>>,
    sid: Sid,
    request: &HttpRequest,
    body: web::Payload,
    cors: &Cors,
) -> HttpResponse {
    let Some(conn) = shared.sessions.get(&sid) else {
        return cors.error(EngineError::UnknownSid);
    };
    let (response, session, stream) = match accept(shared.config.max_payload, request, body) {
        Ok(accepted) => accepted,
        Err(_) => return cors.error(EngineError::BadRequest),
    };
    let refused = {
        let mut state = conn.state();
        let refused = state.transport != Transport::Polling
            || state.upgrade_pending
            || state.closing.is_some();
        state.upgrade_pending |= !refused;
        refused
    };
    if refused {
        // Like the reference server: the session is already (being) upgraded, so this
        // WebSocket is accepted and closed at once.
        drop(stream);
        actix_web::rt::spawn(async move {
            let _ = session.close(None).await;
        });
    } else {
        actix_web::rt::spawn(run_upgrade(shared, conn, session, stream));
    }
    response
}

async fn run_upgrade<H: Handler>(
    shared: Arc<Shared<H>>,
    conn: Arc<Conn<H::State>>,
    mut session: Session,
    mut stream: AggregatedMessageStream,
) {
    let probed = tokio::time::timeout(UPGRADE_TIMEOUT, probe(&conn, &mut session, &mut stream))
        .await
        .unwrap_or(Err(()));
    let handover = match probed {
        Ok(()) => {
            let (sender, receiver) = oneshot::channel();
            let mut state = conn.state();
            state.upgrading = false;
            state.upgrade_pending = false;
            if state.closing.is_some() {
                None
            } else {
                state.transport = Transport::WebSocket;
                state.handover = Some(sender);
                Some(receiver)
            }
        }
        Err(()) => {
            let mut state = conn.state();
            state.upgrading = false;
            state.upgrade_pending = false;
            None
        }
    };
    // Wakes the polling task for the handover and the pending GET for its noop.
    conn.wake_all();
    let current = match handover {
        Some(receiver) => receiver.await.ok(),
        None => None,
    };
    match current {
        Some(current) => {
            tracing::debug!(sid = %conn.sid, "upgraded to websocket");
            run(Driver::new(shared, conn, current), session, stream).await;
        }
        None => {
            let _ = session.close(None).await;
        }
    }
}

/// Waits for `2probe`, answers `3probe`, then waits for `5`.
async fn probe<S: Send + Sync + 'static>(
    conn: &Conn<S>,
    session: &mut Session,
    stream: &mut AggregatedMessageStream,
) -> Result<(), ()> {
    let mut probed = false;
    loop {
        match stream.recv().await {
            Some(Ok(AggregatedMessage::Text(text))) if !probed && &*text == "2probe" => {
                session.text("3probe").await.map_err(|_| ())?;
                probed = true;
                conn.state().upgrading = true;
                conn.poll_waker.wake();
            }
            Some(Ok(AggregatedMessage::Text(text))) if probed && &*text == "5" => return Ok(()),
            Some(Ok(AggregatedMessage::Ping(data))) => session.pong(&data).await.map_err(|_| ())?,
            Some(Ok(AggregatedMessage::Pong(_))) => {}
            _ => return Err(()),
        }
    }
}

/// Read and write state of the WebSocket loop.
struct Io {
    session: Session,
    stream: AggregatedMessageStream,
    read_done: bool,
    write_failed: bool,
    close_code: CloseCode,
}

/// Drives a WebSocket connection until it closes, then reports its sockets gone.
async fn run<H: Handler>(mut driver: Driver<H>, session: Session, stream: AggregatedMessageStream) {
    let mut io = Io {
        session,
        stream,
        read_done: false,
        write_failed: false,
        close_code: CloseCode::Normal,
    };
    let reason = poll_fn(|cx| step(&mut driver, &mut io, cx)).await;
    drop(io);
    // Boxed so that its state, sized by the handler's futures, is not part of every idle
    // connection's task.
    Box::pin(driver.finish(reason)).await;
}

fn step<H: Handler>(
    driver: &mut Driver<H>,
    io: &mut Io,
    cx: &mut Context<'_>,
) -> Poll<DisconnectReason> {
    let conn = Arc::clone(&driver.conn);
    // While this task runs, the wake-ups it causes itself (reading a frame queues work, a
    // handler call queues frames) would only poll it once more for nothing: the waker is
    // registered again just before going idle, followed by one more pass that sees whatever
    // arrived in between.
    drop(conn.driver_waker.take());
    let mut registered = false;
    loop {
        let mut progressed = driver.poll_work(cx);
        driver.poll_timers(cx);
        progressed |= read(driver, io, cx);
        progressed |= write(&conn, io, cx);
        if std::mem::take(&mut conn.state().yield_requested) {
            // The handler call already woke this task: let the writer flush first.
            return Poll::Pending;
        }
        if let Some(reason) = conn.closing() {
            let flushed = conn.state().outbox.is_empty();
            if io.write_failed || !reason.flushes() || flushed {
                if !io.write_failed
                    && let Poll::Ready(Ok(())) = Pin::new(&mut io.session).poll_ready(cx)
                {
                    let close = CloseReason {
                        code: io.close_code,
                        description: None,
                    };
                    let _ = Pin::new(&mut io.session).start_send(Message::Close(Some(close)));
                }
                return Poll::Ready(reason);
            }
        }
        if progressed {
            if std::mem::take(&mut registered) {
                drop(conn.driver_waker.take());
            }
        } else if registered {
            return Poll::Pending;
        } else {
            conn.driver_waker.register(cx.waker());
            registered = true;
        }
    }
}

/// Reads frames while the handler keeps up; true if any arrived.
fn read<H: Handler>(driver: &Driver<H>, io: &mut Io, cx: &mut Context<'_>) -> bool {
    let conn = &driver.conn;
    let mut progressed = false;
    while !io.read_done && conn.closing().is_none() && conn.state().work.len() < WORK_QUEUE_LIMIT {
        let message = match Pin::new(&mut io.stream).poll_next(cx) {
            Poll::Pending => break,
            Poll::Ready(message) => message,
        };
        progressed = true;
        let result = match message {
            Some(Ok(message)) => on_message(&driver.shared, conn, message),
            Some(Err(error)) => {
                tracing::debug!(sid = %conn.sid, %error, "websocket read failed");
                io.read_done = true;
                match error {
                    // The peer went away without a close frame.
                    ProtocolError::Io(_) => Err(DisconnectReason::TransportClose),
                    ProtocolError::Overflow => {
                        io.close_code = CloseCode::Size;
                        Err(DisconnectReason::TransportError)
                    }
                    _ => {
                        io.close_code = CloseCode::Protocol;
                        Err(DisconnectReason::TransportError)
                    }
                }
            }
            None => {
                io.read_done = true;
                Err(DisconnectReason::TransportClose)
            }
        };
        if let Err(reason) = result {
            if reason == DisconnectReason::ParseError {
                io.close_code = CloseCode::Protocol;
            }
            conn.close(reason);
        }
    }
    progressed
}

pub(crate) fn on_message<H: Handler>(
    shared: &Shared<H>,
    conn: &Arc<Conn<H::State>>,
    message: AggregatedMessage,
) -> Result<(), DisconnectReason> {
    match message {
        AggregatedMessage::Text(text) => {
            let packet = EnginePacket::parse(ProtocolVersion::V4, Str::copy_from_slice(&text))
                .map_err(|_| DisconnectReason::ParseError)?;
            ingest(shared, conn, packet)
        }
        AggregatedMessage::Binary(data) => ingest(shared, conn, EnginePacket::Binary(data)),
        AggregatedMessage::Ping(data) => {
            conn.push_control([Frame::WsPong(data)]);
            Ok(())
        }
        AggregatedMessage::Pong(_) => Ok(()),
        AggregatedMessage::Close(_) => Err(DisconnectReason::TransportClose),
    }
}

/// Hands queued frames to the WebSocket writer while it has room; true if any were written.
fn write<S: Send + Sync + 'static>(conn: &Conn<S>, io: &mut Io, cx: &mut Context<'_>) -> bool {
    if io.write_failed {
        return false;
    }
    let mut progressed = false;
    let mut failed = false;
    {
        // Every queued frame goes to the session under one lock and one flush, so that the
        // HTTP dispatcher writes them together.
        let mut state = conn.state();
        while !state.outbox.is_empty() {
            match Pin::new(&mut io.session).poll_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(_)) => {
                    failed = true;
                    break;
                }
                Poll::Ready(Ok(())) => {}
            }
            let Some(frame) = state.outbox.pop_front() else {
                break;
            };
            let message = match frame {
                Frame::Text(text) => Message::Text(text),
                Frame::Binary(data) => Message::Binary(data),
                Frame::WsPong(data) => Message::Pong(data),
            };
            progressed = true;
            if Pin::new(&mut io.session).start_send(message).is_err() {
                failed = true;
                break;
            }
        }
        Conn::shrink_idle(&mut state);
    }
    if failed {
        io.write_failed = true;
        conn.close(DisconnectReason::TransportClose);
    }
    if progressed {
        let _ = Pin::new(&mut io.session).poll_flush(cx);
    }
    progressed
}
