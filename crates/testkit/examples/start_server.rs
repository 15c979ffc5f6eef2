//! Starts a `chat-server` binary the way another team's CI would: on a free port, on a
//! private `redis-server` when one is installed (in memory otherwise), checks `/readyz`, then
//! stops it with `SIGTERM` and reports its exit status.
//!
//! Run it with `cargo run -p chat-testkit --example start_server -- target/debug/chat-server`
//! (build the binary first: `cargo build -p chat-server`).

use chat_testkit::{ChatServer, RedisServer, redis_available};

fn main() -> std::io::Result<()> {
    let binary = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/debug/chat-server".into());
    let redis = if redis_available() {
        Some(RedisServer::start()?)
    } else {
        None
    };
    let redis_url = redis.as_ref().map(RedisServer::url).unwrap_or_default();
    // Short timeouts keep a client's tests fast; the secret lets tokens outlive one process.
    let variables = [
        ("REDIS_URL", redis_url.as_str()),
        ("JWT_SECRET", "start-server-example-secret-0123456789"),
        ("CHAT__WEBRTC__CALL_TIMEOUT_SECS", "1"),
        ("CHAT__CHAT__RECONNECT_GRACE_SECS", "1"),
    ];
    let server = ChatServer::start(&binary, &[], &variables)?;
    println!(
        "chat-server at {} (storage={})",
        server.url(),
        server.storage()
    );
    let (status, body) = server.get("/readyz")?;
    println!("GET /readyz -> {status} {body}");
    let exit = server.terminate()?;
    println!("stopped with SIGTERM: {exit}");
    Ok(())
}
