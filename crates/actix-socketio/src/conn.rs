//! The state of one Engine.IO connection, shared by its task, its HTTP requests and every
//! [`Socket`] on it: the outbound frame queue, the queue of handler calls, the sockets per
//! namespace, and the transport and heartbeat flags. All behind one short-held mutex.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    task::{Context, Poll},
    time::Duration,
};

use engineioxide_core::{Sid, Str};
use futures_util::task::AtomicWaker;
use serde_json::Value;
use socketioxide_core::parser::ParserState;
use tokio::{sync::oneshot, time::Instant};

use crate::{
    engine::EngineMessage,
    error::EmitError,
    event::Event,
    handler::DisconnectReason,
    packet::{EncodedPacket, Frame},
    registry::{Registry, lock},
    request::StoredRequest,
    socket::{Socket, Transport},
};

/// A handler call in flight, type-erased so it can move from the polling task to the
/// WebSocket task on upgrade.
pub(crate) type WorkFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Above this many queued handler calls the connection stops reading (WebSocket) or holds the
/// POST response (polling) until the handler catches up.
pub(crate) const WORK_QUEUE_LIMIT: usize = 64;

/// Keep at most this much spare outbox capacity (in frames) on an idle connection.
const IDLE_OUTBOX_CAPACITY: usize = 4;

/// One handler call waiting its turn.
pub(crate) enum Work<S> {
    Connect {
        nsp: Str,
        auth: Option<Value>,
    },
    Event {
        socket: Socket<S>,
        event: Event,
    },
    Disconnected {
        socket: Socket<S>,
        reason: DisconnectReason,
    },
    /// Engine.IO only: the connection is open ([`EngineHandler::opened`](crate::EngineHandler::opened)).
    Opened,
    /// Engine.IO only: a message packet from the client.
    Message(EngineMessage),
}

/// What type-erased handles ([`AckSender`](crate::AckSender),
/// [`EngineSocket`](crate::EngineSocket)) need from a connection.
pub(crate) trait Outbound: Send + Sync {
    fn push_packet(&self, packet: &EncodedPacket) -> Result<(), EmitError>;
    /// Queues one application frame, within the bound.
    fn push_frame(&self, frame: Frame) -> Result<(), EmitError>;
    fn close_conn(&self, reason: DisconnectReason);
    fn current_transport(&self) -> Transport;
}

/// Mutable state of a connection; see [`Conn::state`].
pub(crate) struct ConnState<S> {
    pub(crate) outbox: VecDeque<Frame>,
    pub(crate) work: VecDeque<Work<S>>,
    pub(crate) sockets: Vec<Socket<S>>,
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
pub(crate) struct Conn<S> {
    pub(crate) sid: Sid,
    pub(crate) request: StoredRequest,
    /// Partial binary packets of the Socket.IO parser, allocated on the first binary packet.
    parser: OnceLock<Box<ParserState>>,
    /// The server-wide socket registry, so sockets can unregister themselves.
    pub(crate) registry: Arc<Registry<Socket<S>>>,
    state: Mutex<ConnState<S>>,
    /// Wakes the connection's task: new work, new frames (WebSocket), close, handover, pong.
    pub(crate) driver_waker: AtomicWaker,
    /// Wakes the pending long-polling GET.
    pub(crate) poll_waker: AtomicWaker,
    /// Wakes a POST waiting for room in the work queue.
    pub(crate) post_waker: AtomicWaker,
    outbound_queue: usize,
}

impl<S: Send + Sync + 'static> Conn<S> {
    pub(crate) fn new(
        request: StoredRequest,
        transport: Transport,
        registry: Arc<Registry<Socket<S>>>,
        outbound_queue: usize,
        ping_interval: Duration,
    ) -> Self {
        Self {
            sid: Sid::new(),
            request,
            parser: OnceLock::new(),
            registry,
            state: Mutex::new(ConnState {
                outbox: VecDeque::new(),
                work: VecDeque::new(),
                sockets: Vec::new(),
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
    pub(crate) fn state(&self) -> MutexGuard<'_, ConnState<S>> {
        lock(&self.state)
    }

    fn wake_writers(&self) {
        self.driver_waker.wake();
        self.poll_waker.wake();
    }

    /// Queues the frames of an application packet, closing the connection if the bounded queue
    /// would overflow.
    pub(crate) fn push_bounded(&self, packet: &EncodedPacket) -> Result<(), EmitError> {
        self.push_frames_bounded(packet.frames(), packet.frame_count())
    }

    /// Queues `count` frames as one unit within the bound (see [`Conn::push_bounded`]).
    fn push_frames_bounded(
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

    /// Queues protocol frames (CONNECT answers, DISCONNECT, pings) past the bound, unless the
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
    pub(crate) fn drain_frames(state: &mut ConnState<S>, max_bytes: usize) -> Vec<Frame> {
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
    pub(crate) fn shrink_idle(state: &mut ConnState<S>) {
        if state.outbox.is_empty() && state.outbox.capacity() > IDLE_OUTBOX_CAPACITY {
            state.outbox = VecDeque::new();
        }
    }

    /// Whether half of the outbound queue (or more) is waiting to be written.
    pub(crate) fn outbox_backlogged(&self) -> bool {
        self.state().outbox.len() >= self.outbound_queue.div_ceil(2)
    }

    pub(crate) fn push_work(&self, work: Work<S>) {
        self.state().work.push_back(work);
        self.driver_waker.wake();
    }

    pub(crate) fn pop_work(&self) -> Option<Work<S>> {
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

    pub(crate) fn socket_for(&self, nsp: &str) -> Option<Socket<S>> {
        self.state()
            .sockets
            .iter()
            .find(|socket| socket.namespace() == nsp)
            .cloned()
    }

    /// Removes `socket` from this connection; returns how many sockets remain.
    pub(crate) fn remove_socket(&self, socket: &Socket<S>) -> usize {
        let mut state = self.state();
        state.sockets.retain(|other| !other.same_as(socket));
        state.sockets.len()
    }

    pub(crate) fn transport(&self) -> Transport {
        self.state().transport
    }

    /// The parser state for binary packets, if one was ever needed.
    pub(crate) fn existing_parser(&self) -> Option<&ParserState> {
        self.parser.get().map(|state| &**state)
    }

    /// The parser state for binary packets, created on first use.
    pub(crate) fn parser(&self) -> &ParserState {
        self.parser.get_or_init(Box::default)
    }

    /// Pauses a handler call until the frames queued so far were handed to the transport and
    /// the connection's task yielded once, so they leave in their own write. Used after the
    /// CONNECT answer: clients that read one message per event loop turn (such as the
    /// protocol test suite) then see it apart from what `connected` emits.
    pub(crate) fn yield_to_transport(&self) -> YieldToTransport<'_, S> {
        YieldToTransport {
            conn: self,
            yielded: false,
        }
    }
}

/// See [`Conn::yield_to_transport`].
pub(crate) struct YieldToTransport<'a, S> {
    conn: &'a Conn<S>,
    yielded: bool,
}

impl<S: Send + Sync + 'static> Future for YieldToTransport<'_, S> {
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

impl<S: Send + Sync + 'static> Outbound for Conn<S> {
    fn push_packet(&self, packet: &EncodedPacket) -> Result<(), EmitError> {
        self.push_bounded(packet)
    }

    fn push_frame(&self, frame: Frame) -> Result<(), EmitError> {
        self.push_frames_bounded(std::iter::once(frame), 1)
    }

    fn close_conn(&self, reason: DisconnectReason) {
        self.close(reason);
    }

    fn current_transport(&self) -> Transport {
        self.transport()
    }
}
