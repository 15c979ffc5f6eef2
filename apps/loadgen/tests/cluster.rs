//! Smoke test of the multi-node path (`make bench`'s `cluster` mode, tiny): `chat-loadgen`
//! given three URLs and three pids against three in-process nodes on one private
//! `redis-server`. Skipped with a notice when `redis-server` is missing, except under
//! `CI=true`, where that fails (see `chat_testkit::require_redis`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chat_http_gateway::settings::Secret;
use chat_testkit::require_redis;
use common::{
    assert_churn_clean, assert_relay_complete, assert_sessions_created, bench_settings,
    latency_count, metric, report_page, run, spawn_server,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_spread_over_three_nodes_on_one_redis() {
    let Some(redis) = require_redis() else {
        return;
    };
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let mut settings = bench_settings();
        settings.redis.url = Some(Secret::new(redis.url()));
        nodes.push(spawn_server(settings).await);
    }

    // Every client of a round searches at once, the clients round-robin over the nodes.
    let matching = run(&nodes, &["match", "--clients", "12", "--rounds", "1"]).await;
    assert_eq!(metric(&matching, "server nodes"), 3, "{matching:#}");
    assert_eq!(
        metric(
            &matching,
            "server processes sampled (server RSS, CPU, open files: their sums)"
        ),
        3
    );
    assert_eq!(metric(&matching, "complete rounds"), 1, "{matching:#}");
    assert_eq!(latency_count(&matching, "match:search → match:found"), 12);
    let cross = metric(&matching, "match:found with the partner on another node");
    let same = metric(&matching, "match:found with the partner on the same node");
    // One worker knows every partner's node.
    assert_eq!(cross.as_u64().unwrap() + same.as_u64().unwrap(), 12);

    // With --cross-node-pairs every pair is split across two nodes.
    let split = run(
        &nodes,
        &[
            "match",
            "--clients",
            "12",
            "--rounds",
            "1",
            "--cross-node-pairs",
        ],
    )
    .await;
    assert_eq!(metric(&split, "complete rounds"), 1, "{split:#}");
    assert_eq!(
        metric(&split, "match:found with the partner on another node"),
        12,
        "{split:#}"
    );

    // Each pair's two clients are on different nodes: every message crosses Redis.
    let relay = run(
        &nodes,
        &["relay", "--pairs", "3", "--rate", "30", "--duration", "1"],
    )
    .await;
    assert_relay_complete(&relay, 3);

    let sessions = run(
        &nodes,
        &["sessions", "--concurrency", "3", "--duration", "0.5"],
    )
    .await;
    assert_sessions_created(&sessions);

    // Whole client lives, each couple on two nodes.
    let churn = run(
        &nodes,
        &[
            "churn",
            "--concurrency",
            "2",
            "--duration",
            "1",
            "--messages",
            "1",
        ],
    )
    .await;
    // Nothing left behind in the counters every node shares.
    assert_churn_clean(&churn);

    // Labelled `smoke`, so the page has no cluster rows; it must still take the results.
    let text = report_page(&[&matching, &relay, &sessions]);
    assert!(text.contains("### match (smoke)"), "{text}");
    assert!(text.contains("| server nodes | 3 |"), "{text}");
}
