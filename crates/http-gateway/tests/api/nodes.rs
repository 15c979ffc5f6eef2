//! Several gateways over one Redis behave as one service: what is counted per client
//! address is counted across all of them. Skipped with a notice when `redis-server` is
//! missing, except under `CI=true` (see `chat_testkit::require_redis`).

use chat_testkit::require_redis;

use crate::helpers::{TestApp, spawn_nodes_with};

const HANDSHAKE: &str = "/socket.io/?EIO=4&transport=polling";
const REFUSAL: &str = r#"{"code":4,"message":"Too many handshakes"}"#;

async fn handshake(app: &TestApp) -> (u16, String) {
    let response = app.raw("GET", HANDSHAKE, &[], b"").await;
    (
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}

#[tokio::test]
async fn the_handshake_limit_holds_across_gateways_on_one_redis() {
    let Some(redis) = require_redis() else {
        return;
    };
    let nodes = spawn_nodes_with(&redis.url(), 2, |settings| {
        settings.rate.handshakes_per_10s = 4;
    })
    .await;
    // Four handshakes from 127.0.0.1, alternating between the nodes, are the whole allowance.
    for round in 0..4 {
        let (status, body) = handshake(&nodes[round % 2]).await;
        assert_eq!(status, 200, "handshake {round}: {body}");
        assert!(body.starts_with("0{"), "{body}");
    }
    // Past it, either node refuses, with the same answer as a single node.
    for node in &nodes {
        assert_eq!(handshake(node).await, (429, REFUSAL.to_owned()));
    }
    // REST is not counted.
    assert_eq!(nodes[1].get("/healthz", None).await.status, 200);
}
