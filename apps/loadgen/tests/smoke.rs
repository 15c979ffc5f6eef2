//! Smoke test: every scenario once, at a tiny size, with the real `chat-loadgen` binary
//! against the server started in-process (memory mode, limits lifted like `make bench`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    assert_churn_clean, assert_relay_complete, assert_sessions_created, bench_settings,
    latency_count, metric, report_page, run, spawn_server,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_once_at_a_tiny_size() {
    let address = [spawn_server(bench_settings()).await];

    let connect = run(
        &address,
        &[
            "connect",
            "--clients",
            "12",
            "--hold",
            "1",
            "--procs",
            "2",
            "--sources",
            "3",
        ],
    )
    .await;
    assert_eq!(metric(&connect, "sockets connected"), 12, "{connect:#}");
    assert_eq!(metric(&connect, "sockets alive after hold"), 12);
    assert!(metric(&connect, "RSS per socket incl. session").is_number());

    let relay = run(
        &address,
        &["relay", "--pairs", "3", "--rate", "60", "--duration", "1"],
    )
    .await;
    assert_relay_complete(&relay, 3);

    let ramp = run(
        &address,
        &[
            "relay",
            "--pairs",
            "2",
            "--ramp",
            "--start-rate",
            "20",
            "--step",
            "20",
            "--max-rate",
            "40",
            "--step-secs",
            "1",
            "--p99-bound-ms",
            "1000",
        ],
    )
    .await;
    assert_eq!(
        ramp["steps"]["rows"].as_array().map(Vec::len),
        Some(2),
        "{ramp:#}"
    );

    let matching = run(
        &address,
        &["match", "--clients", "10", "--rounds", "2", "--procs", "2"],
    )
    .await;
    assert_eq!(metric(&matching, "complete rounds"), 2, "{matching:#}");
    assert_eq!(latency_count(&matching, "match:search → match:found"), 20);

    let sessions = run(
        &address,
        &["sessions", "--concurrency", "2", "--duration", "0.5"],
    )
    .await;
    assert_sessions_created(&sessions);

    let broadcast = run(&address, &["broadcast", "--clients", "8", "--rounds", "1"]).await;
    assert_eq!(
        metric(&broadcast, "rounds reaching every socket"),
        1,
        "{broadcast:#}"
    );

    let churn = run(
        &address,
        &[
            "churn",
            "--concurrency",
            "4",
            "--duration",
            "1",
            "--messages",
            "2",
        ],
    )
    .await;
    assert_churn_clean(&churn);

    // The page generator reads these results.
    let text = report_page(&[&churn]);
    assert!(text.contains("### churn (smoke)"), "{text}");
}
