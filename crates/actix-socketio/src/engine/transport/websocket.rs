//! The WebSocket transport: direct connections, the upgrade from polling, and the one loop
//! per connection that reads frames, writes queued frames and drives the handler calls.

use std::{
    future::poll_fn,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode};
use engineioxide_core::{Packet as EnginePacket, ProtocolVersion, Sid, Str};
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use super::{
    http::{Cors, EngineError},
    ws_io::{ActixWs, RawWs, ReadError, WsIo, send_now},
};
use crate::{
    engine::{
        conn::{Conn, ConnData, Transport, WORK_QUEUE_LIMIT},
        driver::Driver,
        frame::{Frame, open_frame},
        reason::DisconnectReason,
        server::{Engine, Protocol},
    },
    takeover::{Offered, Slot, Upgraded},
};

/// How long the client has to send `2probe` and then `5` on an upgrading WebSocket.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where an accepted WebSocket's frames will come from.
enum Accepted {
    /// actix-ws, under the HTTP/1 dispatcher.
    Actix(Box<ActixWs>),
    /// The TCP stream itself, once the [`takeover`](crate::takeover) service has written the
    /// `101` answer.
    Raw(oneshot::Receiver<Upgraded>),
}

impl Accepted {
    /// The connection's frames, once they can flow (`None` if the handover failed).
    async fn ready(self, max_payload: usize) -> Option<Io> {
        match self {
            Self::Actix(io) => Some(Io::Actix(*io)),
            Self::Raw(receiver) => receiver
                .await
                .ok()
                .map(|upgraded| Io::Raw(RawWs::new(upgraded, max_payload))),
        }
    }
}

/// Starts the WebSocket handshake, with messages limited to `max_payload`.
fn accept(
    max_payload: usize,
    request: &HttpRequest,
    body: web::Payload,
) -> Result<(HttpResponse, Accepted), actix_web::Error> {
    if request.extensions().contains::<Offered>() {
        let mut response = HttpResponse::from(
            actix_http::ws::handshake(request.head())?
                .finish()
                .map_into_boxed_body(),
        );
        let (sender, receiver) = oneshot::channel();
        response.extensions_mut().insert(Slot(sender));
        return Ok((response, Accepted::Raw(receiver)));
    }
    let (response, session, stream) = actix_ws::handle(request, body)?;
    let stream = stream
        .max_frame_size(max_payload)
        .aggregate_continuations()
        .max_continuation_size(max_payload);
    Ok((
        response,
        Accepted::Actix(Box::new(ActixWs { session, stream })),
    ))
}

/// `?EIO=4&transport=websocket` without a sid: a new session on a WebSocket.
pub(super) fn open<P: Protocol>(
    engine: Arc<Engine<P>>,
    request: &HttpRequest,
    body: web::Payload,
    cors: &Cors,
) -> HttpResponse {
    let (response, accepted) = match accept(engine.config.max_payload, request, body) {
        Ok(accepted) => accepted,
        Err(_) => return cors.error(EngineError::BadRequest),
    };
    let conn = engine.open_conn(request, Transport::WebSocket);
    conn.push_control([open_frame(conn.sid, &engine.config, false)]);
    let driver = Driver::new(Arc::clone(&engine), conn, None);
    actix_web::rt::spawn(engine.tasks.track_future(async move {
        match accepted.ready(driver.engine.config.max_payload).await {
            Some(io) => run(driver, io).await,
            None => Box::pin(driver.finish(DisconnectReason::TransportClose)).await,
        }
    }));
    response
}

/// `?transport=websocket&sid=`: the upgrade of a polling session.
pub(super) fn upgrade<P: Protocol>(
    engine: Arc<Engine<P>>,
    sid: Sid,
    request: &HttpRequest,
    body: web::Payload,
    cors: &Cors,
) -> HttpResponse {
    let Some(conn) = engine.sessions.get(&sid) else {
        return cors.error(EngineError::UnknownSid);
    };
    let (response, accepted) = match accept(engine.config.max_payload, request, body) {
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
    let max_payload = engine.config.max_payload;
    // Tracked only once the probe succeeded (see `run_upgrade`): until then the polling task
    // is the connection's, and a probe that never comes must not hold up a shutdown.
    actix_web::rt::spawn(async move {
        let Some(mut io) = accepted.ready(max_payload).await else {
            if !refused {
                conn.state().upgrade_pending = false;
                // A POST may be waiting for the upgrade to settle.
                conn.post_waker.wake();
            }
            return;
        };
        if refused {
            // Like the reference server: the session is already (being) upgraded, so this
            // WebSocket is accepted and closed at once.
            io.start_close(CloseCode::Normal, &engine.tasks);
            io.finish(&engine.tasks);
        } else {
            run_upgrade(engine, conn, io).await;
        }
    });
    response
}

async fn run_upgrade<P: Protocol>(engine: Arc<Engine<P>>, conn: Arc<Conn<P::Data>>, mut io: Io) {
    let probed = tokio::time::timeout(UPGRADE_TIMEOUT, probe(&conn, &mut io))
        .await
        .unwrap_or(Err(()));
    let handover = match probed {
        Ok(()) => {
            // This task becomes the connection's: tracked from before the check that the
            // connection is not closing, so while it is still registered and a shutdown
            // waiting for the registry to empty then waits for this task too.
            let task = engine.tasks.token();
            let (sender, receiver) = oneshot::channel();
            let mut state = conn.state();
            state.upgrading = false;
            state.upgrade_pending = false;
            if state.closing.is_some() {
                None
            } else {
                state.transport = Transport::WebSocket;
                state.handover = Some(sender);
                Some((receiver, task))
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
        Some((receiver, task)) => receiver.await.ok().map(|current| (current, task)),
        None => None,
    };
    match current {
        Some((current, _task)) => {
            tracing::debug!(sid = %conn.sid, "upgraded to websocket");
            run(Driver::new(engine, conn, current), io).await;
        }
        None => {
            io.start_close(CloseCode::Normal, &engine.tasks);
            io.finish(&engine.tasks);
        }
    }
}

/// Waits for `2probe`, answers `3probe`, then waits for `5`.
async fn probe<D: ConnData>(conn: &Conn<D>, io: &mut Io) -> Result<(), ()> {
    let mut probed = false;
    loop {
        match poll_fn(|cx| io.poll_message(cx)).await {
            Some(Ok(AggregatedMessage::Text(text))) if !probed && &*text == "2probe" => {
                send_now(io, Frame::control("3probe")).await?;
                probed = true;
                conn.state().upgrading = true;
                conn.poll_waker.wake();
            }
            Some(Ok(AggregatedMessage::Text(text))) if probed && &*text == "5" => return Ok(()),
            Some(Ok(AggregatedMessage::Ping(data))) => send_now(io, Frame::WsPong(data)).await?,
            Some(Ok(AggregatedMessage::Pong(_))) => {}
            _ => return Err(()),
        }
    }
}

/// Either kind of WebSocket I/O (an enum rather than a generic keeps one copy of the loop).
enum Io {
    Actix(ActixWs),
    Raw(RawWs),
}

impl WsIo for Io {
    fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AggregatedMessage, ReadError>>> {
        match self {
            Self::Actix(io) => io.poll_message(cx),
            Self::Raw(io) => io.poll_message(cx),
        }
    }

    fn take_frames(
        &mut self,
        outbox: &mut std::collections::VecDeque<Frame>,
        cx: &mut Context<'_>,
    ) -> Result<bool, ()> {
        match self {
            Self::Actix(io) => io.take_frames(outbox, cx),
            Self::Raw(io) => io.take_frames(outbox, cx),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        match self {
            Self::Actix(io) => io.poll_flush(cx),
            Self::Raw(io) => io.poll_flush(cx),
        }
    }

    fn start_close(&mut self, code: CloseCode, tasks: &TaskTracker) {
        match self {
            Self::Actix(io) => io.start_close(code, tasks),
            Self::Raw(io) => io.start_close(code, tasks),
        }
    }

    fn finish(self, tasks: &TaskTracker) {
        match self {
            Self::Actix(io) => io.finish(tasks),
            Self::Raw(io) => io.finish(tasks),
        }
    }
}

/// Read and write state of the WebSocket loop.
struct Loop {
    io: Io,
    read_done: bool,
    write_failed: bool,
    close_code: CloseCode,
}

/// Drives a WebSocket connection until it closes, then reports its sockets gone.
async fn run<P: Protocol>(mut driver: Driver<P>, io: Io) {
    let mut io = Loop {
        io,
        read_done: false,
        write_failed: false,
        close_code: CloseCode::Normal,
    };
    let reason = poll_fn(|cx| step(&mut driver, &mut io, cx)).await;
    io.io.finish(&driver.engine.tasks);
    // Boxed so that its state, sized by the handler's futures, is not part of every idle
    // connection's task.
    Box::pin(driver.finish(reason)).await;
}

fn step<P: Protocol>(
    driver: &mut Driver<P>,
    io: &mut Loop,
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
                if !io.write_failed {
                    io.io.start_close(io.close_code, &driver.engine.tasks);
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

/// Reads messages while the handler keeps up; true if any arrived.
fn read<P: Protocol>(driver: &Driver<P>, io: &mut Loop, cx: &mut Context<'_>) -> bool {
    let conn = &driver.conn;
    let mut progressed = false;
    while !io.read_done && conn.closing().is_none() && conn.state().work.len() < WORK_QUEUE_LIMIT {
        let message = match io.io.poll_message(cx) {
            Poll::Pending => break,
            Poll::Ready(message) => message,
        };
        progressed = true;
        let result = match message {
            Some(Ok(message)) => on_message(&driver.engine, conn, message),
            Some(Err(error)) => {
                io.read_done = true;
                match error {
                    // The peer went away without a close frame.
                    ReadError::Io => Err(DisconnectReason::TransportClose),
                    ReadError::Overflow => {
                        io.close_code = CloseCode::Size;
                        Err(DisconnectReason::TransportError)
                    }
                    ReadError::Protocol => {
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

/// Handles one WebSocket message; `Err` means the connection must close.
pub(crate) fn on_message<P: Protocol>(
    engine: &Engine<P>,
    conn: &Arc<Conn<P::Data>>,
    message: AggregatedMessage,
) -> Result<(), DisconnectReason> {
    match message {
        AggregatedMessage::Text(text) => {
            let packet = EnginePacket::parse(ProtocolVersion::V4, Str::copy_from_slice(&text))
                .map_err(|_| DisconnectReason::ParseError)?;
            engine.ingest(conn, packet)
        }
        AggregatedMessage::Binary(data) => engine.ingest(conn, EnginePacket::Binary(data)),
        AggregatedMessage::Ping(data) => {
            conn.push_control([Frame::WsPong(data)]);
            Ok(())
        }
        AggregatedMessage::Pong(_) => Ok(()),
        AggregatedMessage::Close(_) => Err(DisconnectReason::TransportClose),
    }
}

/// Hands queued frames to the WebSocket writer while it has room and writes them; true if
/// any were taken or the writer finished a batch.
fn write<D: ConnData>(conn: &Conn<D>, io: &mut Loop, cx: &mut Context<'_>) -> bool {
    if io.write_failed {
        return false;
    }
    let taken = {
        // Every queued frame goes to the writer under one lock, so that they leave together.
        let mut state = conn.state();
        let taken = io.io.take_frames(&mut state.outbox, cx);
        Conn::shrink_idle(&mut state);
        taken
    };
    let flushed = match taken {
        Ok(taken) => match io.io.poll_flush(cx) {
            Poll::Ready(Ok(())) => Ok(taken),
            Poll::Ready(Err(())) => Err(()),
            Poll::Pending => Ok(taken),
        },
        Err(()) => Err(()),
    };
    match flushed {
        Ok(progressed) => progressed,
        Err(()) => {
            io.write_failed = true;
            conn.close(DisconnectReason::TransportClose);
            false
        }
    }
}
