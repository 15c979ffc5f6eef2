//! The two ways a WebSocket's frames reach the connection task: through actix-ws (a streamed
//! response of the HTTP/1 dispatcher) or straight on the TCP stream handed over by
//! [`takeover`](crate::takeover). The connection loop is written once against [`WsIo`].

use std::{
    collections::VecDeque,
    future::poll_fn,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame as WsFrame, Item, OpCode, Parser, ProtocolError};
use actix_web::rt::net::TcpStream;
use actix_ws::{
    AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Message, Session,
};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::{Sink, Stream};
use tokio::io::AsyncWrite;
use tokio_util::task::TaskTracker;

use crate::{engine::frame::Frame, takeover::Upgraded};

/// Why reading a WebSocket stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The peer went away without a close frame, or the stream failed.
    Io,
    /// A message over the size limit.
    Overflow,
    /// A frame that breaks RFC 6455 (unmasked, bad opcode, bad UTF-8, bad continuation).
    Protocol,
}

/// Frames in and out of one WebSocket.
pub(crate) trait WsIo: Unpin {
    /// The next complete message (continuations joined), `None` at the end of the stream.
    fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AggregatedMessage, ReadError>>>;

    /// Moves frames from `outbox` to the writer while it takes them; true if any moved.
    /// `Err` once the connection can no longer be written.
    fn take_frames(
        &mut self,
        outbox: &mut VecDeque<Frame>,
        cx: &mut Context<'_>,
    ) -> Result<bool, ()>;

    /// Writes what the writer holds; ready once all of it is written.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>>;

    /// Queues a close frame after everything already taken; a task that has to write it is
    /// spawned on `tasks`.
    fn start_close(&mut self, code: CloseCode, tasks: &TaskTracker);

    /// Ends the connection: what is still queued is written (within a bound) and the stream
    /// closed, without holding up the caller, by a task spawned on `tasks`.
    fn finish(self, tasks: &TaskTracker);
}

/// Sends one frame and waits until it is written.
pub(crate) async fn send_now(io: &mut impl WsIo, frame: Frame) -> Result<(), ()> {
    let mut queue = VecDeque::from([frame]);
    poll_fn(|cx| {
        loop {
            io.take_frames(&mut queue, cx)?;
            match io.poll_flush(cx) {
                Poll::Ready(Err(())) => return Poll::Ready(Err(())),
                Poll::Ready(Ok(())) if queue.is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

/// A WebSocket served by actix-ws under the HTTP/1 dispatcher.
pub(crate) struct ActixWs {
    pub(crate) session: Session,
    pub(crate) stream: AggregatedMessageStream,
}

impl WsIo for ActixWs {
    fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AggregatedMessage, ReadError>>> {
        Pin::new(&mut self.stream).poll_next(cx).map(|message| {
            message.map(|message| {
                message.map_err(|error| {
                    tracing::debug!(%error, "websocket read failed");
                    match error {
                        ProtocolError::Io(_) => ReadError::Io,
                        ProtocolError::Overflow => ReadError::Overflow,
                        _ => ReadError::Protocol,
                    }
                })
            })
        })
    }

    fn take_frames(
        &mut self,
        outbox: &mut VecDeque<Frame>,
        cx: &mut Context<'_>,
    ) -> Result<bool, ()> {
        let mut moved = false;
        while !outbox.is_empty() {
            match Pin::new(&mut self.session).poll_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(_)) => return Err(()),
                Poll::Ready(Ok(())) => {}
            }
            let Some(frame) = outbox.pop_front() else {
                break;
            };
            let message = match frame {
                Frame::Text(text) => Message::Text(text),
                Frame::Binary(data) => Message::Binary(data),
                Frame::WsPong(data) => Message::Pong(data),
            };
            moved = true;
            Pin::new(&mut self.session)
                .start_send(message)
                .map_err(|_| ())?;
        }
        Ok(moved)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        Pin::new(&mut self.session).poll_flush(cx).map_err(|_| ())
    }

    fn start_close(&mut self, code: CloseCode, tasks: &TaskTracker) {
        // After the frames already queued (the channel keeps order), without waiting here.
        let session = self.session.clone();
        actix_web::rt::spawn(tasks.track_future(session.close(Some(CloseReason {
            code,
            description: None,
        }))));
    }

    fn finish(self, _tasks: &TaskTracker) {
        // Dropping both ends lets the HTTP dispatcher write what is queued and close.
    }
}

/// The most bytes gathered into one write; more frames wait for the next.
const WRITE_BATCH: usize = 64 * 1024;

/// How much room a read asks for.
const READ_CHUNK: usize = 4 * 1024;

/// How long a closing connection may take to write its last frames.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// A WebSocket on a TCP stream taken over from the HTTP/1 dispatcher: frames are decoded by
/// actix-http's WebSocket codec, every frame taken in one turn is encoded into one buffer and
/// written with one `write()`, and both buffers are released whenever they are empty.
pub(crate) struct RawWs {
    io: TcpStream,
    codec: Codec,
    max_payload: usize,
    read_buf: BytesMut,
    read_done: bool,
    /// A fragmented message being joined: whether it is text, and its bytes so far.
    partial: Option<(bool, BytesMut)>,
    write_buf: BytesMut,
    written: usize,
}

impl RawWs {
    pub(crate) fn new(upgraded: Upgraded, max_payload: usize) -> Self {
        Self {
            io: upgraded.io,
            codec: Codec::new().max_size(max_payload),
            max_payload,
            read_buf: upgraded.read_buf,
            read_done: false,
            partial: None,
            write_buf: BytesMut::new(),
            written: 0,
        }
    }

    /// One decoded frame turned into a complete message, if it completes one.
    fn join(&mut self, frame: WsFrame) -> Result<Option<AggregatedMessage>, ReadError> {
        let (text, data) = match frame {
            WsFrame::Text(data) if self.partial.is_none() => (true, data),
            WsFrame::Binary(data) if self.partial.is_none() => (false, data),
            WsFrame::Ping(data) => return Ok(Some(AggregatedMessage::Ping(data))),
            WsFrame::Pong(data) => return Ok(Some(AggregatedMessage::Pong(data))),
            WsFrame::Close(reason) => return Ok(Some(AggregatedMessage::Close(reason))),
            WsFrame::Continuation(Item::FirstText(data)) if self.partial.is_none() => {
                self.partial = Some((true, BytesMut::from(&data[..])));
                return Ok(None);
            }
            WsFrame::Continuation(Item::FirstBinary(data)) if self.partial.is_none() => {
                self.partial = Some((false, BytesMut::from(&data[..])));
                return Ok(None);
            }
            WsFrame::Continuation(Item::Continue(data)) => {
                self.extend(&data)?;
                return Ok(None);
            }
            WsFrame::Continuation(Item::Last(data)) => {
                self.extend(&data)?;
                match self.partial.take() {
                    Some((text, joined)) => (text, joined.freeze()),
                    None => return Err(ReadError::Protocol),
                }
            }
            // A new message while a fragmented one is unfinished.
            _ => return Err(ReadError::Protocol),
        };
        message(text, data).map(Some)
    }

    /// Adds a continuation frame to the message being joined.
    fn extend(&mut self, data: &[u8]) -> Result<(), ReadError> {
        let Some((_, joined)) = self.partial.as_mut() else {
            return Err(ReadError::Protocol);
        };
        if joined.len() + data.len() > self.max_payload {
            return Err(ReadError::Overflow);
        }
        joined.extend_from_slice(data);
        Ok(())
    }

    /// Encodes one outgoing frame at the end of the write buffer.
    fn encode(&mut self, frame: &Frame) {
        let (payload, op): (&[u8], OpCode) = match frame {
            Frame::Text(text) => (text.as_bytes(), OpCode::Text),
            Frame::Binary(data) => (data, OpCode::Binary),
            Frame::WsPong(data) => (data, OpCode::Pong),
        };
        Parser::write_message(&mut self.write_buf, payload, op, true, false);
    }
}

impl WsIo for RawWs {
    fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AggregatedMessage, ReadError>>> {
        loop {
            if !self.read_buf.is_empty() {
                match self.codec.decode(&mut self.read_buf) {
                    Ok(Some(frame)) => match self.join(frame) {
                        Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                        Ok(None) => continue,
                        Err(error) => return Poll::Ready(Some(Err(error))),
                    },
                    Ok(None) => {}
                    Err(error) => {
                        tracing::debug!(%error, "websocket read failed");
                        return Poll::Ready(Some(Err(match error {
                            ProtocolError::Overflow => ReadError::Overflow,
                            ProtocolError::Io(_) => ReadError::Io,
                            _ => ReadError::Protocol,
                        })));
                    }
                }
            }
            if self.read_done {
                return Poll::Ready(None);
            }
            match self.io.poll_read_ready(cx) {
                Poll::Pending => {
                    if self.read_buf.is_empty() {
                        // An idle connection keeps no read buffer (a decoded frame's bytes
                        // live on in the frame until it is handled); a busy one keeps its
                        // room between reads.
                        self.read_buf = BytesMut::new();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Some(Err(ReadError::Io))),
                Poll::Ready(Ok(())) => {}
            }
            if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 4 {
                self.read_buf.reserve(READ_CHUNK);
            }
            match self.io.try_read_buf(&mut self.read_buf) {
                Ok(0) => self.read_done = true,
                Ok(_) => {}
                // A spurious readiness: `try_read_buf` cleared it, so polling again
                // registers the waker.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Poll::Ready(Some(Err(ReadError::Io))),
            }
        }
    }

    fn take_frames(
        &mut self,
        outbox: &mut VecDeque<Frame>,
        _cx: &mut Context<'_>,
    ) -> Result<bool, ()> {
        // Frames wait in the outbox (bounded) while the previous batch is being written.
        if self.written < self.write_buf.len() {
            return Ok(false);
        }
        let mut moved = false;
        while self.write_buf.len() < WRITE_BATCH {
            let Some(frame) = outbox.pop_front() else {
                break;
            };
            self.encode(&frame);
            moved = true;
        }
        Ok(moved)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        while self.written < self.write_buf.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.write_buf[self.written..]) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Err(())),
                Poll::Ready(Ok(written)) => self.written += written,
            }
        }
        if self.write_buf.capacity() > 0 {
            // Released: an idle connection keeps no write buffer.
            self.write_buf = BytesMut::new();
            self.written = 0;
        }
        Poll::Ready(Ok(()))
    }

    fn start_close(&mut self, code: CloseCode, _tasks: &TaskTracker) {
        let close = CloseReason {
            code,
            description: None,
        };
        Parser::write_close(&mut self.write_buf, Some(close), false);
    }

    fn finish(mut self, tasks: &TaskTracker) {
        actix_web::rt::spawn(tasks.track_future(async move {
            let _ = tokio::time::timeout(FINISH_TIMEOUT, async {
                if poll_fn(|cx| self.poll_flush(cx)).await.is_ok() {
                    let _ = poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await;
                }
            })
            .await;
        }));
    }
}

/// A complete data message.
fn message(text: bool, data: Bytes) -> Result<AggregatedMessage, ReadError> {
    if text {
        ByteString::try_from(data)
            .map(AggregatedMessage::Text)
            .map_err(|_| ReadError::Protocol)
    } else {
        Ok(AggregatedMessage::Binary(data))
    }
}
