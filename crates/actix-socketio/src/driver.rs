//! The per-connection task logic shared by both transports: handler calls one at a time,
//! heartbeats, the connect timeout, and the final cleanup that reports every socket gone.

use std::{
    collections::VecDeque,
    future::{Future, poll_fn},
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::{Arc, Weak},
    task::{Context, Poll},
};

use engineioxide_core::{Sid, Str};
use futures_util::FutureExt;
use serde_json::Value;
use tokio::{
    sync::oneshot,
    time::{Instant, Sleep, sleep_until},
};

use crate::{
    conn::{Conn, Outbound, Work, WorkFuture},
    engine::EngineSocket,
    handler::{ConnectError, DisconnectReason, Handler},
    packet::{Frame, connect_error_packet, connect_packet},
    server::Shared,
    socket::Socket,
};

/// How the polling task's loop ended.
pub(crate) enum PollingOutcome {
    Closed(DisconnectReason),
    Handover(oneshot::Sender<Option<WorkFuture>>),
}

/// Handler calls and timers of one connection; owned by whichever task drives it.
pub(crate) struct Driver<H: Handler> {
    pub(crate) shared: Arc<Shared<H>>,
    pub(crate) conn: Arc<Conn<H::State>>,
    current: Option<WorkFuture>,
    timer: Pin<Box<Sleep>>,
    connect_deadline: Option<Instant>,
    close_grace: Option<Instant>,
}

impl<H: Handler> Driver<H> {
    /// A driver for `conn`, resuming `current` if a call was in flight before an upgrade.
    pub(crate) fn new(
        shared: Arc<Shared<H>>,
        conn: Arc<Conn<H::State>>,
        current: Option<WorkFuture>,
    ) -> Self {
        let now = Instant::now();
        // A plain Engine.IO connection has no CONNECT to wait for.
        let connect_deadline = (shared.engine.is_none() && conn.state().sockets.is_empty())
            .then(|| now + shared.config.connect_timeout);
        Self {
            shared,
            conn,
            current,
            timer: Box::pin(sleep_until(now)),
            connect_deadline,
            close_grace: None,
        }
    }

    /// Runs queued handler calls, one at a time; true if one started or finished.
    pub(crate) fn poll_work(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        loop {
            if self.current.is_none() {
                // The client's own answers must not overflow its queue: with half of it
                // waiting to be written, the next call waits for the writer (and reading
                // stops once the work queue is full) instead.
                if self.conn.outbox_backlogged() {
                    return progressed;
                }
                let Some(work) = self.conn.pop_work() else {
                    return progressed;
                };
                self.current = Some(self.start(work));
                progressed = true;
            }
            let Some(current) = self.current.as_mut() else {
                return progressed;
            };
            match current.as_mut().poll(cx) {
                Poll::Ready(()) => self.current = None,
                Poll::Pending => return progressed,
            }
        }
    }

    fn start(&self, work: Work<H::State>) -> WorkFuture {
        let shared = Arc::clone(&self.shared);
        let conn = Arc::clone(&self.conn);
        match work {
            Work::Event { socket, event } => Box::pin(guarded(conn, async move {
                shared.handler.event(&socket, event).await;
            })),
            Work::Disconnected { socket, reason } => Box::pin(guarded(conn, async move {
                shared.handler.disconnected(&socket, reason).await;
            })),
            Work::Connect { nsp, auth } => {
                Box::pin(guarded(Arc::clone(&conn), connect(shared, conn, nsp, auth)))
            }
            Work::Opened => match &shared.engine {
                Some(engine) => Box::pin(guarded(
                    Arc::clone(&conn),
                    engine.opened(engine_socket(&conn), conn.request.info()),
                )),
                None => Box::pin(std::future::ready(())),
            },
            Work::Message(message) => match &shared.engine {
                Some(engine) => Box::pin(guarded(
                    Arc::clone(&conn),
                    engine.message(engine_socket(&conn), message),
                )),
                None => Box::pin(std::future::ready(())),
            },
        }
    }

    /// Sends pings, closes on a missing pong or CONNECT, and arms the timer for the next
    /// deadline. Returns true once a flushing close has waited long enough for a poll.
    pub(crate) fn poll_timers(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let now = Instant::now();
            let Some(deadline) = self.next_deadline(now) else {
                return true;
            };
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
        }
    }

    /// Acts on every deadline that passed and returns the next one; `None` when the close
    /// grace expired.
    fn next_deadline(&mut self, now: Instant) -> Option<Instant> {
        let config = &self.shared.config;
        let mut state = self.conn.state();
        if state.closing.is_some() {
            let grace = *self.close_grace.get_or_insert(now + config.ping_timeout);
            return (now < grace).then_some(grace);
        }
        if self.connect_deadline.is_some() && !state.sockets.is_empty() {
            self.connect_deadline = None;
        }
        if let Some(deadline) = self.connect_deadline
            && now >= deadline
            && state.work.is_empty()
            && self.current.is_none()
        {
            drop(state);
            tracing::debug!(sid = %self.conn.sid, "no CONNECT within the connect timeout");
            self.conn.close(DisconnectReason::TransportClose);
            return self.next_deadline(now);
        }
        let heartbeat = match state.pong_deadline {
            Some(deadline) if now >= deadline => {
                drop(state);
                self.conn.close(DisconnectReason::PingTimeout);
                return self.next_deadline(now);
            }
            Some(deadline) => deadline,
            None if now >= state.next_ping => {
                state.outbox.push_back(Frame::control("2"));
                // From when the ping was due, so a late timer does not extend the deadline.
                let deadline = state.next_ping + config.ping_timeout;
                state.pong_deadline = Some(deadline);
                let sockets = state.sockets.clone();
                drop(state);
                for socket in sockets {
                    socket.expire_acks(now);
                }
                self.conn.driver_waker.wake();
                self.conn.poll_waker.wake();
                deadline
            }
            None => state.next_ping,
        };
        // A passed connect deadline with a CONNECT still queued waits for that call instead.
        let connect = self.connect_deadline.filter(|deadline| *deadline > now);
        Some(connect.map_or(heartbeat, |connect| connect.min(heartbeat)))
    }

    /// The polling task's loop: returns when the connection closes or a WebSocket takes over.
    pub(crate) fn poll_polling(&mut self, cx: &mut Context<'_>) -> Poll<PollingOutcome> {
        self.conn.driver_waker.register(cx.waker());
        loop {
            let progressed = self.poll_work(cx);
            let grace_over = self.poll_timers(cx);
            let mut state = self.conn.state();
            // Polling responses are written by the GET requests: nothing to yield to here.
            state.yield_requested = false;
            if let Some(handover) = state.handover.take() {
                return Poll::Ready(PollingOutcome::Handover(handover));
            }
            if let Some(reason) = state.closing
                && (!reason.flushes() || state.close_delivered || grace_over)
            {
                return Poll::Ready(PollingOutcome::Closed(reason));
            }
            drop(state);
            if !progressed {
                return Poll::Pending;
            }
        }
    }

    /// Gives up the call in flight, for the WebSocket task that takes over.
    pub(crate) fn into_current(mut self) -> Option<WorkFuture> {
        self.current.take()
    }

    /// Ends the connection: unregisters it, finishes the queued calls, then reports every
    /// socket gone to the handler.
    pub(crate) async fn finish(mut self, reason: DisconnectReason) {
        self.conn.close(reason);
        let reason = self.conn.closing().unwrap_or(reason);
        let shared = Arc::clone(&self.shared);
        let conn = Arc::clone(&self.conn);
        shared.remove_session(&conn.sid);
        if let Some(current) = self.current.take() {
            current.await;
        }
        while let Some(work) = conn.pop_work() {
            if !matches!(work, Work::Connect { .. }) {
                self.start(work).await;
            }
        }
        if let Some(engine) = &shared.engine {
            guarded(
                Arc::clone(&conn),
                engine.closed(engine_socket(&conn), reason),
            )
            .await;
        }
        let sockets = std::mem::take(&mut conn.state().sockets);
        for socket in sockets {
            if socket.mark_disconnected() {
                conn.registry.remove(&socket.sid());
                let call = shared.handler.disconnected(&socket, reason);
                guarded(Arc::clone(&conn), call).await;
            }
        }
        {
            let mut state = conn.state();
            state.outbox = VecDeque::new();
            state.work = VecDeque::new();
            state.handover = None;
        }
        conn.wake_all();
        tracing::debug!(sid = %conn.sid, %reason, "connection closed");
    }
}

/// Runs a polling connection's task until it closes or hands over to a WebSocket.
pub(crate) async fn run_polling<H: Handler>(mut driver: Driver<H>) {
    match poll_fn(|cx| driver.poll_polling(cx)).await {
        PollingOutcome::Closed(reason) => Box::pin(driver.finish(reason)).await,
        PollingOutcome::Handover(sender) => {
            let shared = Arc::clone(&driver.shared);
            let conn = Arc::clone(&driver.conn);
            if let Err(current) = sender.send(driver.into_current()) {
                Box::pin(
                    Driver::new(shared, conn, current).finish(DisconnectReason::TransportClose),
                )
                .await;
            }
        }
    }
}

/// The [`EngineSocket`] handle of a plain Engine.IO connection.
fn engine_socket<S: Send + Sync + 'static>(conn: &Arc<Conn<S>>) -> EngineSocket {
    let outbound: Weak<dyn Outbound> = Arc::downgrade(conn) as Weak<dyn Outbound>;
    EngineSocket::new(conn.sid, outbound)
}

/// Runs a handler call; a panic in it is logged and closes the connection instead of killing
/// the connection's task with its sockets still registered.
async fn guarded<S: Send + Sync + 'static>(conn: Arc<Conn<S>>, call: impl Future<Output = ()>) {
    if AssertUnwindSafe(call).catch_unwind().await.is_err() {
        tracing::error!(sid = %conn.sid, "a handler call panicked, closing the connection");
        conn.close(DisconnectReason::TransportError);
    }
}

/// A Socket.IO CONNECT: asks the handler, then registers the socket and answers.
async fn connect<H: Handler>(
    shared: Arc<Shared<H>>,
    conn: Arc<Conn<H::State>>,
    nsp: Str,
    auth: Option<Value>,
) {
    if let Some(previous) = conn.socket_for(&nsp) {
        // A second CONNECT to an open namespace replaces the socket, as a reconnect would.
        if previous.mark_disconnected() {
            conn.registry.remove(&previous.sid());
            conn.remove_socket(&previous);
            shared
                .handler
                .disconnected(&previous, DisconnectReason::ClientDisconnect)
                .await;
        }
    }
    let id = Sid::new();
    let request = conn.request.info();
    match shared
        .handler
        .connect(id.as_str(), &nsp, auth, &request)
        .await
    {
        Ok(state) => {
            let socket = Socket::new(id, nsp.clone(), state, Arc::downgrade(&conn));
            conn.state().sockets.push(socket.clone());
            conn.registry.insert(id, socket.clone());
            conn.push_control(connect_packet(nsp, id).frames());
            tracing::debug!(sid = %conn.sid, socket = %id, nsp = %socket.namespace(), "socket connected");
            conn.yield_to_transport().await;
            shared.handler.connected(&socket).await;
        }
        Err(ConnectError(message)) => {
            conn.push_control(connect_error_packet(nsp, &message).frames());
        }
    }
}
