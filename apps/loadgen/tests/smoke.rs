//! Smoke test: every scenario once, at a tiny size, with the real `chat-loadgen` binary
//! against the server started in-process (memory mode, limits lifted like `make bench`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;

use chat_http_gateway::settings::Secret;
use chat_http_gateway::{Application, Settings};
use serde_json::Value;

async fn spawn_server() -> SocketAddr {
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.auth.jwt_secret = Some(Secret::new("loadgen-smoke-secret-loadgen-smoke-secret"));
    settings.rate.sessions_per_minute = 100_000_000;
    settings.rate.events_per_sec = 100_000;
    // Every simulated client comes from loopback: no handshake limit per address.
    settings.rate.handshakes_per_10s = 0;
    let application = Application::build(settings)
        .await
        .expect("application builds");
    let address = application.address();
    tokio::spawn(application.run_until_stopped(std::future::pending()));
    address
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "chat-loadgen-smoke-{}-{name}.json",
        std::process::id()
    ))
}

/// Runs one scenario through the binary and returns its JSON results.
async fn run(address: SocketAddr, arguments: &[&str]) -> Value {
    let out = scratch(arguments[0]);
    let url = format!("http://{address}");
    let pid = std::process::id().to_string();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-loadgen"))
        .args(arguments)
        .args([
            "--url",
            &url,
            "--server-pid",
            &pid,
            "--label",
            "smoke",
            "--json",
        ])
        .arg(&out)
        .output()
        .await
        .expect("chat-loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{arguments:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("== {} smoke ==", arguments[0])),
        "no table printed: {stdout}"
    );
    let text = std::fs::read_to_string(&out).expect("results written");
    let _ = std::fs::remove_file(&out);
    serde_json::from_str(&text).expect("results are JSON")
}

fn metric(report: &Value, name: &str) -> Value {
    report["metrics"]
        .as_array()
        .and_then(|metrics| metrics.iter().find(|metric| metric["name"] == name))
        .map(|metric| metric["value"].clone())
        .unwrap_or_else(|| panic!("no metric {name:?} in {report:#}"))
}

fn latency_count(report: &Value, name: &str) -> u64 {
    report["latencies"]
        .as_array()
        .and_then(|latencies| latencies.iter().find(|latency| latency["name"] == name))
        .and_then(|latency| latency["count"].as_u64())
        .unwrap_or_else(|| panic!("no latency {name:?} in {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_once_at_a_tiny_size() {
    let address = spawn_server().await;

    let connect = run(
        address,
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
        address,
        &["relay", "--pairs", "3", "--rate", "60", "--duration", "1"],
    )
    .await;
    assert_eq!(metric(&relay, "pairs"), 3, "{relay:#}");
    let sent = metric(&relay, "messages sent (shown run)")
        .as_u64()
        .unwrap();
    assert!(sent > 0);
    assert_eq!(
        metric(&relay, "message:delivered received (shown run)"),
        sent,
        "{relay:#}"
    );
    assert_eq!(latency_count(&relay, "send → message:delivered"), sent);

    let ramp = run(
        address,
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
        address,
        &["match", "--clients", "10", "--rounds", "2", "--procs", "2"],
    )
    .await;
    assert_eq!(metric(&matching, "complete rounds"), 2, "{matching:#}");
    assert_eq!(latency_count(&matching, "match:search → match:found"), 20);

    let sessions = run(
        address,
        &["sessions", "--concurrency", "2", "--duration", "0.5"],
    )
    .await;
    assert!(
        metric(&sessions, "sessions created").as_u64().unwrap() > 0,
        "{sessions:#}"
    );
    assert_eq!(metric(&sessions, "failures"), 0);

    let broadcast = run(address, &["broadcast", "--clients", "8", "--rounds", "1"]).await;
    assert_eq!(
        metric(&broadcast, "rounds reaching every socket"),
        1,
        "{broadcast:#}"
    );

    let churn = run(
        address,
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
    assert!(
        metric(&churn, "iterations (client lives)")
            .as_u64()
            .unwrap()
            > 0,
        "{churn:#}"
    );
    assert_eq!(metric(&churn, "failures"), 0, "{churn:#}");
    assert_eq!(metric(&churn, "left behind"), 0, "{churn:#}");

    // The page generator reads these results.
    let page = std::env::temp_dir().join(format!("chat-loadgen-smoke-{}.md", std::process::id()));
    let result_file = scratch("report-input");
    std::fs::write(&result_file, churn.to_string()).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_chat-loadgen"))
        .arg("report")
        .arg("--out")
        .arg(&page)
        .arg(&result_file)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&page).unwrap();
    assert!(text.contains("### churn (smoke)"), "{text}");
    let _ = std::fs::remove_file(page);
    let _ = std::fs::remove_file(result_file);
}
