//! The state of one Engine.IO connection, shared by its task, its HTTP requests and every
//! handle on it: the outbound frame queue, the queue of handler calls, the transport and
//! heartbeat flags, and what the layer on top keeps per connection ([`ConnData`]: the
//! Socket.IO sockets and parser, or nothing for a plain Engine.IO server). All behind one
//! short-held mutex.

use std::{
    collections::VecDeque,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
    time::Duration,
};

use engineioxide_core::Sid;
use futures_util::{FutureExt, task::AtomicWaker};
use tokio::{sync::oneshot, time::Instant};

use crate::{
    engine::{frame::Frame, reason::DisconnectReason, request::StoredRequest},
    error::EmitError,
    registry::lock,
};

/// The Engine.IO transport a socket currently uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket, directly or after an upgrade from polling.
    WebSocket,
}

/// What the layer on top of Engine.IO keeps in each connection.
///
/// The thread-safety bounds are on [`Protocol::Data`](crate::engine::server::Protocol::Data),
/// so that the public handles holding a connection ([`Socket`](crate::Socket)) need none.
pub(crate) trait ConnData: Sized {
    /// One handler call waiting its turn in the connection's queue.
    type Work;
    /// State kept under the connection's lock, beside the queues (the Socket.IO sockets).
    type Locked: Default;

    /// Whether the layer is established on this connection (a Socket.IO socket connected),
    /// which ends the wait of
    /// [`Protocol::establish_timeout`](crate::engine::server::Protocol::establish_timeout).
    fn established(locked: &Self::Locked) -> bool;
}

/// A handler call in flight, type-erased so it can move from the polling task to the
/// WebSocket task on upgrade.
pub(crate) type WorkFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Above this many queued handler calls the connection stops reading (WebSocket) or holds the
/// POST response (polling) until the handler catches up.
pub(crate) const WORK_QUEUE_LIMIT: usize = 64;

/// Keep at most this much spare outbox capacity (in frames) on an idle connection.
const IDLE_OUTBOX_CAPACITY: usize = 4;

/// Mutable state of a connection; see [`Conn::state`].
pub(crate) struct ConnState<D: ConnData> {
    pub(crate) outbox: VecDeque<Frame>,
    pub(crate) work: VecDeque<D::Work>,
    /// The layer's own state ([`ConnData::Locked`]).
    pub(crate) layer: D::Locked,
    pub(crate) transport: Transport,
    /// A WebSocket for this session was accepted and is being probed; others are refused.
    pub(crate) upgrade_pending: bool,
    /// The WebSocket probe succeeded; polling requests are answered at once until `5` arrives.
    pub(crate) upgrading: bool,
    pub(crate) closing: Option<DisconnectReason>,
    /// The queued packets and the close packet went out on a polling response.
    pub(crate) close_delivered: bool,
    pub(crate) get_active: bool,
    pub(crate) post_active: bool,
    /// When the next ping is due (while no pong is awaited).
    pub(crate) next_ping: Instant,
    /// When the awaited pong is overdue.
    pub(crate) pong_deadline: Option<Instant>,
    /// Set by the WebSocket task on upgrade: the polling task hands it the call in flight.
    pub(crate) handover: Option<oneshot::Sender<Option<WorkFuture>>>,
    /// A handler call asked the WebSocket task to let the writer run before it goes on.
    pub(crate) yield_requested: bool,
}

/// One Engine.IO connection.
pub(crate) struct Conn<D: ConnData> {
    pub(crate) sid: Sid,
    pub(crate) request: StoredRequest,
    /// What the layer on top keeps outside the lock.
    pub(crate) data: D,
    state: Mutex<ConnState<D>>,
    /// Wakes the connection's task: new work, new frames (WebSocket), close, handover, pong.
    pub(crate) driver_waker: AtomicWaker,
    /// Wakes the pending long-polling GET.
    pub(crate) poll_waker: AtomicWaker,
    /// Wakes a POST waiting for room in the work queue.
    pub(crate) post_waker: AtomicWaker,
    outbound_queue: usize,
}

impl<D: ConnData> Conn<D> {
    pub(crate) fn new(
        request: StoredRequest,
        transport: Transport,
        data: D,
        outbound_queue: usize,
        ping_interval: Duration,
    ) -> Self {
        Self {
            sid: Sid::new(),
            request,
            data,
            state: Mutex::new(ConnState {
                outbox: VecDeque::new(),
                work: VecDeque::new(),
                layer: D::Locked::default(),
                transport,
                upgrade_pending: false,
                upgrading: false,
                closing: None,
                close_delivered: false,
                get_active: false,
                post_active: false,
                next_ping: Instant::now() + ping_interval,
                pong_deadline: None,
                handover: None,
                yield_requested: false,
            }),
            driver_waker: AtomicWaker::new(),
            poll_waker: AtomicWaker::new(),
            post_waker: AtomicWaker::new(),
            outbound_queue: outbound_queue.max(1),
        }
    }

    /// Locks the state. Callers never hold the guard across an `.await`.
    pub(crate) fn state(&self) -> MutexGuard<'_, ConnState<D>> {
        lock(&self.state)
    }

    fn wake_writers(&self) {
        self.driver_waker.wake();
        self.poll_waker.wake();
    }

    /// Queues `count` frames of an application packet as one unit, closing the connection if
    /// the bounded queue would overflow.
    pub(crate) fn push_frames_bounded(
        &self,
        frames: impl Iterator<Item = Frame>,
        count: usize,
    ) -> Result<(), EmitError> {
        {
            let mut state = self.state();
            if state.closing.is_some() {
                return Err(EmitError::Disconnected);
            }
            if state.outbox.len() + count > self.outbound_queue {
                state.closing = Some(DisconnectReason::QueueFull);
                state.outbox = VecDeque::new();
                drop(state);
                tracing::debug!(sid = %self.sid, "outbound queue full, closing");
                self.wake_all();
                return Err(EmitError::QueueFull);
            }
            state.outbox.extend(frames);
        }
        self.wake_writers();
        Ok(())
    }

    /// Queues protocol frames (pings, CONNECT answers, DISCONNECT) past the bound, unless the
    /// connection is closing without flushing.
    pub(crate) fn push_control(&self, frames: impl IntoIterator<Item = Frame>) {
        {
            let mut state = self.state();
            if state.closing.is_some_and(|reason| !reason.flushes()) {
                return;
            }
            state.outbox.extend(frames);
        }
        self.wake_writers();
    }

    /// Takes up to `max_bytes` of queued frames (at least one), for a polling response.
    pub(crate) fn drain_frames(state: &mut ConnState<D>, max_bytes: usize) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut size = 0;
        while let Some(frame) = state.outbox.front() {
            let len = match frame {
                Frame::Text(text) => text.len() + 1,
                Frame::Binary(data) => data.len().div_ceil(3) * 4 + 2,
                Frame::WsPong(_) => 0,
            };
            if !frames.is_empty() && size + len > max_bytes {
                break;
            }
            size += len;
            if let Some(frame) = state.outbox.pop_front() {
                frames.push(frame);
            }
        }
        Self::shrink_idle(state);
        frames
    }

    /// Releases the outbox buffer of a connection that went idle after a burst.
    pub(crate) fn shrink_idle(state: &mut ConnState<D>) {
        if state.outbox.is_empty() && state.outbox.capacity() > IDLE_OUTBOX_CAPACITY {
            state.outbox = VecDeque::new();
        }
    }

    /// Whether half of the outbound queue (or more) is waiting to be written.
    pub(crate) fn outbox_backlogged(&self) -> bool {
        self.state().outbox.len() >= self.outbound_queue.div_ceil(2)
    }

    pub(crate) fn push_work(&self, work: D::Work) {
        self.state().work.push_back(work);
        self.driver_waker.wake();
    }

    pub(crate) fn pop_work(&self) -> Option<D::Work> {
        let work = {
            let mut state = self.state();
            let work = state.work.pop_front();
            if state.work.is_empty() && state.work.capacity() > 0 {
                // Idle connections keep no queue buffer.
                state.work = VecDeque::new();
            }
            work
        };
        if work.is_some() {
            self.post_waker.wake();
        }
        work
    }

    /// Starts closing the connection for `reason`; the first reason wins.
    pub(crate) fn close(&self, reason: DisconnectReason) {
        {
            let mut state = self.state();
            if state.closing.is_some() {
                return;
            }
            state.closing = Some(reason);
            if !reason.flushes() {
                state.outbox = VecDeque::new();
            }
        }
        tracing::debug!(sid = %self.sid, %reason, "closing connection");
        self.wake_all();
    }

    pub(crate) fn closing(&self) -> Option<DisconnectReason> {
        self.state().closing
    }

    pub(crate) fn wake_all(&self) {
        self.driver_waker.wake();
        self.poll_waker.wake();
        self.post_waker.wake();
    }

    /// Records a pong: the next ping is due one interval from now.
    pub(crate) fn pong(&self, ping_interval: Duration) {
        {
            let mut state = self.state();
            state.pong_deadline = None;
            state.next_ping = Instant::now() + ping_interval;
        }
        self.driver_waker.wake();
    }

    /// Closes the connection if its pong is overdue; true when it is (or was already) closing.
    /// Deadlines follow the schedule, not the moment the connection's task ran: a ping due at
    /// `t` must be answered by `t + ping_timeout` even if the task sent it late (or not yet).
    pub(crate) fn check_pong_overdue(&self, ping_timeout: Duration) -> bool {
        let overdue = {
            let state = self.state();
            if state.closing.is_some() {
                return true;
            }
            let deadline = state
                .pong_deadline
                .unwrap_or(state.next_ping + ping_timeout);
            Instant::now() >= deadline
        };
        if overdue {
            self.close(DisconnectReason::PingTimeout);
        }
        overdue
    }

    pub(crate) fn transport(&self) -> Transport {
        self.state().transport
    }

    /// Pauses a handler call until the frames queued so far were handed to the transport and
    /// the connection's task yielded once, so they leave in their own write. Used after the
    /// CONNECT answer: clients that read one message per event loop turn (such as the
    /// protocol test suite) then see it apart from what `connected` emits.
    pub(crate) fn yield_to_transport(&self) -> YieldToTransport<'_, D> {
        YieldToTransport {
            conn: self,
            yielded: false,
        }
    }
}

/// See [`Conn::yield_to_transport`].
pub(crate) struct YieldToTransport<'a, D: ConnData> {
    conn: &'a Conn<D>,
    yielded: bool,
}

impl<D: ConnData> Future for YieldToTransport<'_, D> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        self.conn.state().yield_requested = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Runs a handler call; a panic in it is logged and closes the connection instead of killing
/// the connection's task with its sockets still registered.
pub(crate) async fn guarded<D: ConnData>(conn: Arc<Conn<D>>, call: impl Future<Output = ()>) {
    if AssertUnwindSafe(call).catch_unwind().await.is_err() {
        tracing::error!(sid = %conn.sid, "a handler call panicked, closing the connection");
        conn.close(DisconnectReason::TransportError);
    }
}
