//! Another actix-web service that mounts the whole chat gateway under `/chat`, next to its
//! own routes: REST at `/chat/api/...`, Socket.IO at `/chat/socket.io/` (clients connect with
//! `io(origin, {path: "/chat/socket.io/", auth: {token}})`), the OpenAPI document at
//! `/chat/api/openapi.json`, and signed file URLs starting with `/chat`.
//!
//! Run it with `cargo run -p chat-http-gateway --example embed` (PORT picks the port, 8090 by
//! default), then for instance `curl -X POST localhost:8090/chat/api/guest`; Ctrl-C stops it,
//! telling connected clients `server:shutdown` first.

use actix_web::{App, HttpResponse, HttpServer, web};
use chat_http_gateway::settings::Secret;
use chat_http_gateway::{Gateway, Settings};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(8090);
    let mut settings = Settings::default();
    settings.auth.jwt_secret = Some(Secret::new("embed-example-secret-embed-example-secret"));
    let gateway = Gateway::build_under(settings, "/chat")
        .await
        .map_err(std::io::Error::other)?;

    let mounted = gateway.clone();
    let server = HttpServer::new(move || {
        App::new()
            .route(
                "/",
                web::get().to(|| async {
                    HttpResponse::Ok().body("the host app; the chat is under /chat\n")
                }),
            )
            .service(mounted.scope())
    })
    .disable_signals()
    .bind(("127.0.0.1", port))?
    .run();
    println!(
        "listening on http://127.0.0.1:{port} (chat under /chat, storage={})",
        gateway.storage_mode().as_str()
    );

    // On Ctrl-C: tell the chat's clients and close their sockets while the listener still
    // accepts (a long-polling client needs one more request to hear it), then stop.
    let handle = server.handle();
    let serving = actix_web::rt::spawn(server);
    tokio::signal::ctrl_c().await?;
    gateway.shutdown().await;
    handle.stop(true).await;
    serving.await.map_err(std::io::Error::other)?
}
