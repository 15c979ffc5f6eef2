//! WebSocket connections served without the HTTP/1 dispatcher underneath.
//!
//! Mounted the usual way (`SocketIo::configure` on an `App` run by `HttpServer`), a WebSocket
//! is a streamed response of actix-http's HTTP/1 dispatcher, which stays under the connection
//! for its whole life with an 8 KiB read buffer and a write buffer that grows to the largest
//! frame ever written (about 24 KiB per idle socket in practice), and writes each frame with
//! its own `send()`.
//!
//! [`upgrade_service`] removes that layer: given to
//! [`HttpServiceBuilder::upgrade`](actix_http::HttpServiceBuilder::upgrade), it receives every
//! HTTP/1 request that asks for an upgrade, runs it through the same `App` (routing,
//! middleware, the Engine.IO checks), and when the Engine.IO transport accepts the WebSocket
//! it writes the `101` answer and hands the TCP stream itself to the connection's task. That
//! task then reads into a buffer that is released whenever it is empty and writes every frame
//! queued in one turn with one `write()`. Any other answer (an error, or an upgrade request
//! for a route that is not the Engine.IO path) is written as is and the connection closed.
//!
//! Without this service everything works the same, only heavier.
//!
//! ```no_run
//! use actix_http::HttpService;
//! use actix_server::Server;
//! use actix_service::map_config;
//! use actix_web::{App, dev::AppConfig};
//! use actix_socketio::{SocketIo, takeover};
//! # #[derive(Clone)] struct Echo;
//! # impl actix_socketio::Handler for Echo {
//! #     type State = ();
//! #     async fn connect(&self, _: &str, _: &str, _: Option<serde_json::Value>, _: &actix_socketio::RequestInfo) -> Result<(), actix_socketio::ConnectError> { Ok(()) }
//! #     async fn connected(&self, _: &actix_socketio::Socket<()>) {}
//! #     async fn event(&self, _: &actix_socketio::Socket<()>, _: actix_socketio::Event) {}
//! #     async fn disconnected(&self, _: &actix_socketio::Socket<()>, _: actix_socketio::DisconnectReason) {}
//! # }
//!
//! # async fn run() -> std::io::Result<()> {
//! let io = SocketIo::new(actix_socketio::Config::default(), Echo);
//! let listener = std::net::TcpListener::bind("127.0.0.1:3000")?;
//! Server::build()
//!     .listen("chat", listener, move || {
//!         let routes = io.clone();
//!         let app = move || {
//!             let routes = routes.clone();
//!             map_config(
//!                 App::new().configure(move |config| routes.configure(config)),
//!                 |_| AppConfig::default(),
//!             )
//!         };
//!         HttpService::build()
//!             .tcp_nodelay(true)
//!             .upgrade(takeover::upgrade_service(app.clone()))
//!             .finish(app())
//!             .tcp()
//!     })?
//!     .run()
//!     .await
//! # }
//! ```

use std::{io, rc::Rc, time::Duration};

use actix_codec::Framed;
use actix_http::{
    ConnectionType, HttpMessage, Request, Response, StatusCode,
    body::{BodySize, BoxBody, MessageBody},
    error::ParseError,
    h1,
};
use actix_service::{Service, ServiceFactory, fn_factory, fn_service};
use actix_web::rt::net::TcpStream;
use bytes::BytesMut;
use futures_util::SinkExt;
use tokio::{io::AsyncWriteExt, sync::oneshot};

/// The largest body of a non-upgrade answer written on this path (errors are a few bytes).
const ANSWER_BODY_LIMIT: usize = 64 * 1024;

/// How long writing the answer to an upgrade request may take before the connection is cut.
const ANSWER_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Marks a request that came through [`upgrade_service`]: its connection can be taken over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offered;

/// Put in the extensions of a `101` answer by the WebSocket transport: where the connection
/// goes once the answer is written.
pub(crate) struct Slot(pub(crate) oneshot::Sender<Upgraded>);

/// A connection handed over after its `101` answer.
pub(crate) struct Upgraded {
    /// The TCP stream, with the `101` answer written and flushed.
    pub(crate) io: TcpStream,
    /// Bytes the client sent after its request head, already read (usually none).
    pub(crate) read_buf: BytesMut,
}

/// The upgrade service for [`HttpServiceBuilder::upgrade`](actix_http::HttpServiceBuilder::upgrade)
/// (see the [module documentation](self)).
///
/// `make_app` builds the same application service factory as the one given to `finish`
/// (called once per worker); upgrade requests are answered by it.
pub fn upgrade_service<F, S, B>(
    make_app: F,
) -> impl ServiceFactory<
    (Request, Framed<TcpStream, h1::Codec>),
    Config = (),
    Response = (),
    Error = actix_http::Error,
    InitError = (),
>
where
    F: Fn() -> S + 'static,
    S: ServiceFactory<Request, Config = ()> + 'static,
    S::Service: 'static,
    S::Response: Into<Response<B>>,
    S::Error: Into<Response<BoxBody>>,
    S::InitError: std::fmt::Debug,
    B: MessageBody + 'static,
{
    fn_factory(move || {
        let factory = make_app();
        async move {
            let app = factory.new_service(()).await.map_err(|error| {
                tracing::error!(?error, "the application service for upgrades did not start");
            })?;
            let app = Rc::new(app);
            Ok(fn_service(move |(request, framed)| {
                let app = Rc::clone(&app);
                async move {
                    answer(app, request, framed)
                        .await
                        .map_err(|error| actix_http::Error::from(ParseError::Io(error)))
                }
            }))
        }
    })
}

/// Answers one upgrade request through the application, then hands the connection over or
/// closes it.
async fn answer<S, B>(
    app: Rc<S>,
    request: Request,
    mut framed: Framed<TcpStream, h1::Codec>,
) -> io::Result<()>
where
    S: Service<Request>,
    S::Response: Into<Response<B>>,
    S::Error: Into<Response<BoxBody>>,
    B: MessageBody + 'static,
{
    request.extensions_mut().insert(Offered);
    let mut response = match app.call(request).await {
        Ok(response) => response.into().map_into_boxed_body(),
        Err(error) => error.into(),
    };
    let slot = response.extensions_mut().remove::<Slot>();
    let (mut head, body) = response.into_parts();
    if let Some(Slot(slot)) = slot
        && head.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        tokio::time::timeout(
            ANSWER_WRITE_TIMEOUT,
            framed.send(h1::Message::Item((head, BodySize::None))),
        )
        .await
        .map_err(|_| io::ErrorKind::TimedOut)??;
        let parts = framed.into_parts();
        // The connection's task may be gone already (its session was closed meanwhile);
        // then the stream is dropped here, which closes it.
        let _ = slot.send(Upgraded {
            io: parts.io,
            read_buf: parts.read_buf,
        });
        return Ok(());
    }
    // Not (or no longer) a WebSocket of ours: the answer as it is, then the connection closes.
    let body = actix_http::body::to_bytes_limited(body, ANSWER_BODY_LIMIT)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    head.head_mut().set_connection_type(ConnectionType::Close);
    let length = u64::try_from(body.len()).unwrap_or(u64::MAX);
    tokio::time::timeout(ANSWER_WRITE_TIMEOUT, async {
        framed
            .feed(h1::Message::Item((head, BodySize::Sized(length))))
            .await?;
        if !body.is_empty() {
            framed.feed(h1::Message::Chunk(Some(body))).await?;
        }
        framed.send(h1::Message::Chunk(None)).await?;
        framed.into_parts().io.shutdown().await
    })
    .await
    .map_err(|_| io::ErrorKind::TimedOut)?
}
