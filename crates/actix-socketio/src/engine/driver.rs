//! The per-connection task logic shared by both transports: handler calls one at a time,
//! heartbeats, the protocol's establish timeout (the Socket.IO connect timeout), and the final
//! cleanup that hands the connection's end to the protocol.

use std::{
    collections::VecDeque,
    future::{Future, poll_fn},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::{
    sync::oneshot,
    time::{Instant, Sleep, sleep_until},
};

use crate::engine::{
    conn::{Conn, ConnData, WorkFuture},
    frame::Frame,
    reason::DisconnectReason,
    server::{Engine, Protocol},
};

/// How the polling task's loop ended.
pub(crate) enum PollingOutcome {
    Closed(DisconnectReason),
    Handover(oneshot::Sender<Option<WorkFuture>>),
}

/// Handler calls and timers of one connection; owned by whichever task drives it.
pub(crate) struct Driver<P: Protocol> {
    pub(crate) engine: Arc<Engine<P>>,
    pub(crate) conn: Arc<Conn<P::Data>>,
    current: Option<WorkFuture>,
    timer: Pin<Box<Sleep>>,
    /// Until when the protocol may take to be established on the connection.
    establish_deadline: Option<Instant>,
    close_grace: Option<Instant>,
}

impl<P: Protocol> Driver<P> {
    /// A driver for `conn`, resuming `current` if a call was in flight before an upgrade.
    pub(crate) fn new(
        engine: Arc<Engine<P>>,
        conn: Arc<Conn<P::Data>>,
        current: Option<WorkFuture>,
    ) -> Self {
        let now = Instant::now();
        let establish_deadline = P::establish_timeout(&engine.config)
            .filter(|_| !P::Data::established(&conn.state().layer))
            .map(|timeout| now + timeout);
        Self {
            engine,
            conn,
            current,
            timer: Box::pin(sleep_until(now)),
            establish_deadline,
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

    fn start(&self, work: <P::Data as ConnData>::Work) -> WorkFuture {
        P::start(&self.engine, &self.conn, work)
    }

    /// Sends pings, closes on a missing pong or establishment, and arms the timer for the next
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
        let config = &self.engine.config;
        let mut state = self.conn.state();
        if state.closing.is_some() {
            let grace = *self.close_grace.get_or_insert(now + config.ping_timeout);
            return (now < grace).then_some(grace);
        }
        if self.establish_deadline.is_some() && P::Data::established(&state.layer) {
            self.establish_deadline = None;
        }
        if let Some(deadline) = self.establish_deadline
            && now >= deadline
            && state.work.is_empty()
            && self.current.is_none()
        {
            drop(state);
            tracing::debug!(sid = %self.conn.sid, "not established within the connect timeout");
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
                drop(state);
                P::heartbeat(&self.conn, now);
                self.conn.driver_waker.wake();
                self.conn.poll_waker.wake();
                deadline
            }
            None => state.next_ping,
        };
        // A passed establish deadline with a call still queued (a CONNECT) waits for it instead.
        let establish = self.establish_deadline.filter(|deadline| *deadline > now);
        Some(establish.map_or(heartbeat, |establish| establish.min(heartbeat)))
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

    /// Ends the connection: unregisters it, finishes the queued calls, then lets the protocol
    /// report it gone ([`Protocol::closed`]).
    pub(crate) async fn finish(mut self, reason: DisconnectReason) {
        self.conn.close(reason);
        let reason = self.conn.closing().unwrap_or(reason);
        let engine = Arc::clone(&self.engine);
        let conn = Arc::clone(&self.conn);
        engine.remove_session(&conn.sid);
        if let Some(current) = self.current.take() {
            current.await;
        }
        while let Some(work) = conn.pop_work() {
            if P::runs_after_close(&work) {
                self.start(work).await;
            }
        }
        P::closed(&engine, &conn, reason).await;
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
pub(crate) async fn run_polling<P: Protocol>(mut driver: Driver<P>) {
    match poll_fn(|cx| driver.poll_polling(cx)).await {
        PollingOutcome::Closed(reason) => Box::pin(driver.finish(reason)).await,
        PollingOutcome::Handover(sender) => {
            let engine = Arc::clone(&driver.engine);
            let conn = Arc::clone(&driver.conn);
            if let Err(current) = sender.send(driver.into_current()) {
                Box::pin(
                    Driver::new(engine, conn, current).finish(DisconnectReason::TransportClose),
                )
                .await;
            }
        }
    }
}
