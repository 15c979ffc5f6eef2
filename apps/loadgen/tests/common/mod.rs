//! Shared by the smoke tests: the server settings of `make bench` (limits lifted), running
//! the real `chat-loadgen` binary, and reading its JSON results.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;

use chat_http_gateway::settings::Secret;
use chat_http_gateway::{Application, Settings};
use serde_json::Value;

/// Settings like `make bench` gives the server: a fixed secret (shared by every node), one
/// worker, no rate limits in the way of one machine's simulated clients.
pub fn bench_settings() -> Settings {
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.auth.jwt_secret = Some(Secret::new("loadgen-smoke-secret-loadgen-smoke-secret"));
    settings.rate.sessions_per_minute = 100_000_000;
    settings.rate.events_per_sec = 100_000;
    // Every simulated client comes from loopback: no handshake limit per address.
    settings.rate.handshakes_per_10s = 0;
    settings
}

/// Starts the server in-process with `settings`; returns its address.
pub async fn spawn_server(settings: Settings) -> SocketAddr {
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

/// Runs one scenario through the binary against `servers` (their RSS and CPU read from this
/// process, once per server) and returns its JSON results.
pub async fn run(servers: &[SocketAddr], arguments: &[&str]) -> Value {
    let out = scratch(arguments[0]);
    let urls = servers
        .iter()
        .map(|server| format!("http://{server}"))
        .collect::<Vec<_>>()
        .join(",");
    let pids = vec![std::process::id().to_string(); servers.len()].join(",");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-loadgen"))
        .args(arguments)
        .args([
            "--url",
            &urls,
            "--server-pid",
            &pids,
            "--label",
            "smoke",
            "--json",
        ])
        .arg(&out)
        .kill_on_drop(true)
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

/// The entry called `name` in the list `section` (`metrics`, `latencies`) of the results.
fn named<'a>(report: &'a Value, section: &str, name: &str) -> &'a Value {
    report[section]
        .as_array()
        .and_then(|entries| entries.iter().find(|entry| entry["name"] == name))
        .unwrap_or_else(|| panic!("no {section} entry {name:?} in {report:#}"))
}

/// A figure of the results by name.
pub fn metric(report: &Value, name: &str) -> Value {
    named(report, "metrics", name)["value"].clone()
}

/// How many samples a latency summary of the results holds.
pub fn latency_count(report: &Value, name: &str) -> u64 {
    named(report, "latencies", name)["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("latency {name:?} has no count in {report:#}"))
}

/// A fixed-rate relay run: every pair formed, every message sent got its receipt.
pub fn assert_relay_complete(relay: &Value, pairs: u64) {
    assert_eq!(metric(relay, "pairs"), pairs, "{relay:#}");
    let sent = metric(relay, "messages sent (shown run)").as_u64().unwrap();
    assert!(sent > 0, "{relay:#}");
    assert_eq!(
        metric(relay, "message:delivered received (shown run)"),
        sent,
        "{relay:#}"
    );
    assert_eq!(latency_count(relay, "send → message:delivered"), sent);
}

/// A sessions run: some guests created, none refused.
pub fn assert_sessions_created(sessions: &Value) {
    assert!(
        metric(sessions, "sessions created").as_u64().unwrap() > 0,
        "{sessions:#}"
    );
    assert_eq!(metric(sessions, "failures"), 0, "{sessions:#}");
}

/// A churn run: some client lives, no failure, nothing left behind.
pub fn assert_churn_clean(churn: &Value) {
    assert!(
        metric(churn, "iterations (client lives)").as_u64().unwrap() > 0,
        "{churn:#}"
    );
    assert_eq!(metric(churn, "failures"), 0, "{churn:#}");
    assert_eq!(metric(churn, "left behind"), 0, "{churn:#}");
}

/// Writes `results` to a file and runs `chat-loadgen report` on it; returns the page.
pub fn report_page(results: &[&Value]) -> String {
    let page = std::env::temp_dir().join(format!("chat-loadgen-smoke-{}.md", std::process::id()));
    let files: Vec<PathBuf> = results
        .iter()
        .enumerate()
        .map(|(number, result)| {
            let file = scratch(&format!("report-input-{number}"));
            std::fs::write(&file, result.to_string()).unwrap();
            file
        })
        .collect();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_chat-loadgen"))
        .arg("report")
        .arg("--out")
        .arg(&page)
        .args(&files)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&page).unwrap();
    let _ = std::fs::remove_file(page);
    for file in files {
        let _ = std::fs::remove_file(file);
    }
    text
}
