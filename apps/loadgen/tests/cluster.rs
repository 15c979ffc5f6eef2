//! Smoke tests of the multi-node path (`make bench`'s `cluster` and `rcluster` modes, tiny):
//! `chat-loadgen` given three URLs and three pids against three in-process nodes on one
//! private `redis-server`, or on a private three-master Redis Cluster, with `--redis` naming
//! the Redis servers to read `INFO commandstats` from. Skipped with a notice when
//! `redis-server` is missing, except under `CI=true`, where that fails (see
//! `chat_testkit::require_redis`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use chat_http_gateway::settings::Secret;
use chat_testkit::{require_redis, require_redis_cluster};
use common::{
    assert_churn_clean, assert_relay_complete, assert_sessions_created, bench_settings,
    latency_count, metric, report_page, run, spawn_server,
};
use serde_json::Value;

/// Three nodes on the Redis of `url`.
async fn three_nodes(url: &str) -> Vec<SocketAddr> {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let mut settings = bench_settings();
        settings.redis.url = Some(Secret::new(url.to_owned()));
        nodes.push(spawn_server(settings).await);
    }
    nodes
}

/// One round of 12 searchers (`extra` added to the command line), every one matched.
async fn match_round(nodes: &[SocketAddr], extra: &[&str]) -> Value {
    let mut arguments = vec!["match", "--clients", "12", "--rounds", "1"];
    arguments.extend_from_slice(extra);
    let matching = run(nodes, &arguments).await;
    assert_eq!(metric(&matching, "complete rounds"), 1, "{matching:#}");
    assert_eq!(latency_count(&matching, "match:search → match:found"), 12);
    matching
}

/// Every pair on a filter of its own: every pair is split across two nodes.
async fn split_round(nodes: &[SocketAddr], redis: &str) -> Value {
    let split = match_round(nodes, &["--pair-filters", "--redis", redis]).await;
    assert_eq!(
        metric(&split, "match:found with the partner on another node"),
        12,
        "{split:#}"
    );
    split
}

/// Three relay pairs, each pair's two clients on different nodes: every message crosses
/// Redis (at least its publication to the partner's node).
async fn relay_across(nodes: &[SocketAddr], redis: &str) -> Value {
    let relay = run(
        nodes,
        &[
            "relay",
            "--pairs",
            "3",
            "--rate",
            "30",
            "--duration",
            "1",
            "--redis",
            redis,
        ],
    )
    .await;
    assert_relay_complete(&relay, 3);
    let per_message = metric(&relay, "Redis commands per delivered message (shown run)");
    assert!(per_message.as_f64().unwrap() >= 1.0, "{relay:#}");
    relay
}

/// The Redis figures of a match run: a few commands per search, the search script among
/// them.
fn assert_redis_per_search(matching: &Value) {
    let per_search = metric(matching, "Redis commands per search");
    assert!(per_search.as_f64().unwrap() >= 1.0, "{matching:#}");
    let by_command = metric(matching, "Redis commands per search, by command");
    assert!(
        by_command.as_str().unwrap().contains("evalsha"),
        "{matching:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_spread_over_three_nodes_on_one_redis() {
    let Some(redis) = require_redis() else {
        return;
    };
    let nodes = three_nodes(&redis.url()).await;
    let redis_arg = format!("127.0.0.1:{}", redis.port());

    // Every client of a round searches at once, the clients round-robin over the nodes.
    let matching = match_round(&nodes, &["--redis", &redis_arg]).await;
    assert_eq!(metric(&matching, "server nodes"), 3, "{matching:#}");
    assert_eq!(
        metric(
            &matching,
            "server processes sampled (server RSS, CPU, open files: their sums)"
        ),
        3
    );
    let cross = metric(&matching, "match:found with the partner on another node");
    let same = metric(&matching, "match:found with the partner on the same node");
    // One worker knows every partner's node.
    assert_eq!(cross.as_u64().unwrap() + same.as_u64().unwrap(), 12);
    assert_redis_per_search(&matching);

    split_round(&nodes, &redis_arg).await;
    // The old name of --pair-filters still works.
    let old_name = match_round(&nodes, &["--cross-node-pairs"]).await;
    assert_eq!(
        metric(&old_name, "match:found with the partner on another node"),
        12,
        "{old_name:#}"
    );

    let relay = relay_across(&nodes, &redis_arg).await;

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

/// `rcluster`: three nodes on a three-master Redis Cluster; the Redis figures are summed over
/// every master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_spread_over_three_nodes_on_a_redis_cluster() {
    let Some(cluster) = require_redis_cluster(3) else {
        return;
    };
    let nodes = three_nodes(&cluster.url()).await;
    let masters = cluster
        .ports()
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");

    let split = split_round(&nodes, &masters).await;
    assert_eq!(
        metric(
            &split,
            "Redis servers read (INFO commandstats, calls summed)"
        ),
        3
    );
    assert_redis_per_search(&split);
    // One share per master.
    let shares = metric(&split, "Redis commands per server (share)");
    assert_eq!(
        shares.as_str().unwrap().split(" / ").count(),
        3,
        "{split:#}"
    );

    // Node-to-node messages go over sharded pub/sub.
    let relay = relay_across(&nodes, &masters).await;
    let by_command = metric(
        &relay,
        "Redis commands per delivered message (shown run), by command",
    );
    assert!(
        by_command.as_str().unwrap().contains("spublish"),
        "{relay:#}"
    );
}
