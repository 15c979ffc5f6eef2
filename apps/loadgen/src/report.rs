//! Results of one scenario run: metrics, latency summaries, steps; printed as a table and
//! written as JSON. Also the Markdown page built from several results (`report`).

use std::fmt::Write;

use anyhow::Context;
use serde_json::{Map, Value, json};

use crate::args::Args;
use crate::hist::Latency;

/// The results of one scenario run.
#[derive(Debug, Clone)]
pub struct Report {
    scenario: String,
    label: String,
    command: String,
    options: Map<String, Value>,
    metrics: Vec<Value>,
    latencies: Vec<Value>,
    step_columns: Vec<String>,
    step_rows: Vec<Value>,
}

impl Report {
    /// An empty report for `args`.
    pub fn new(args: &Args) -> Self {
        let options = args
            .options()
            .map(|(key, value)| (key.to_owned(), Value::String(value.to_owned())))
            .collect();
        Self {
            scenario: args.scenario.clone(),
            label: args.text("label").unwrap_or("").to_owned(),
            command: format!("chat-loadgen {}", args.raw.join(" ")),
            options,
            metrics: Vec::new(),
            latencies: Vec::new(),
            step_columns: Vec::new(),
            step_rows: Vec::new(),
        }
    }

    /// Adds a named figure.
    pub fn metric(&mut self, name: &str, value: impl Into<Value>, unit: &str) {
        self.metrics
            .push(json!({"name": name, "value": value.into(), "unit": unit}));
    }

    /// Adds a latency summary.
    pub fn latency(&mut self, name: &str, latency: &Latency) {
        self.latencies.push(latency.summary(name));
    }

    /// Adds one step (a round, a rate of a ramp) as named cells; the first step names the
    /// columns.
    pub fn step(&mut self, cells: &[(&str, Value)]) {
        if self.step_columns.is_empty() {
            self.step_columns = cells.iter().map(|(name, _)| (*name).to_owned()).collect();
        }
        self.step_rows.push(Value::Array(
            cells.iter().map(|(_, value)| value.clone()).collect(),
        ));
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "label": self.label,
            "command": self.command,
            "options": self.options,
            "metrics": self.metrics,
            "latencies": self.latencies,
            "steps": {"columns": self.step_columns, "rows": self.step_rows},
        })
    }

    /// As a plain-text table.
    pub fn table(&self) -> String {
        render_text(&self.to_json())
    }
}

fn number(value: &Value) -> String {
    match value {
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() => {
                if float.abs() >= 100.0 {
                    format!("{float:.0}")
                } else if float.abs() >= 10.0 {
                    format!("{float:.1}")
                } else {
                    format!("{float:.2}")
                }
            }
            _ => number.to_string(),
        },
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn render_text(report: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "== {} {} ==",
        report["scenario"].as_str().unwrap_or(""),
        report["label"].as_str().unwrap_or("")
    );
    for metric in report["metrics"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<44} {:>14} {}",
            metric["name"].as_str().unwrap_or(""),
            number(&metric["value"]),
            metric["unit"].as_str().unwrap_or("")
        );
    }
    let latencies = report["latencies"].as_array().cloned().unwrap_or_default();
    if !latencies.is_empty() {
        let _ = writeln!(
            out,
            "  {:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        for latency in &latencies {
            let _ = writeln!(
                out,
                "  {:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                latency["name"].as_str().unwrap_or(""),
                number(&latency["count"]),
                number(&latency["p50_ms"]),
                number(&latency["p90_ms"]),
                number(&latency["p99_ms"]),
                number(&latency["p999_ms"]),
                number(&latency["max_ms"]),
            );
        }
    }
    let (columns, rows) = steps(report);
    if !columns.is_empty() {
        let _ = writeln!(out, "  steps: {}", columns.join(" | "));
        for row in &rows {
            let _ = writeln!(
                out,
                "    {}",
                row.iter().map(number).collect::<Vec<_>>().join(" | ")
            );
        }
    }
    out
}

/// The step columns and rows of a report.
fn steps(report: &Value) -> (Vec<String>, Vec<Vec<Value>>) {
    let columns = report["steps"]["columns"]
        .as_array()
        .map(|columns| {
            columns
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let rows = report["steps"]["rows"]
        .as_array()
        .map(|rows| rows.iter().filter_map(Value::as_array).cloned().collect())
        .unwrap_or_default();
    (columns, rows)
}

/// The value of `column` in the first step whose `key` column equals `value`.
fn step_value(report: &Value, key: &str, value: f64, column: &str) -> Option<f64> {
    let (columns, rows) = steps(report);
    let key_index = columns.iter().position(|name| name == key)?;
    let column_index = columns.iter().position(|name| name == column)?;
    rows.iter()
        .find(|row| row.get(key_index).and_then(Value::as_f64) == Some(value))?
        .get(column_index)?
        .as_f64()
}

/// A figure of a report by name.
fn figure(report: &Value, name: &str) -> Option<f64> {
    report["metrics"]
        .as_array()?
        .iter()
        .find(|metric| metric["name"] == name)?["value"]
        .as_f64()
}

/// One target of the benchmark issue, judged on the results.
struct Target {
    what: String,
    goal: String,
    measured: String,
    verdict: String,
}

fn judge(
    what: &str,
    goal: &str,
    measured: Option<f64>,
    unit: &str,
    bound: f64,
    higher_is_better: bool,
) -> Target {
    let (measured_text, verdict) = match measured {
        None => ("not measured".to_owned(), "—".to_owned()),
        Some(value) => {
            let met = if higher_is_better {
                value >= bound
            } else {
                value <= bound
            };
            let ratio = if higher_is_better {
                value / bound
            } else {
                bound / value.max(f64::MIN_POSITIVE)
            };
            let verdict = if !met {
                if higher_is_better {
                    format!("missed: {:.0}% of the goal", ratio * 100.0)
                } else {
                    format!("missed: {:.1}× the limit", value / bound)
                }
            } else if bound == 0.0 {
                "met".to_owned()
            } else if higher_is_better {
                format!("met ({:+.0}%)", (ratio - 1.0) * 100.0)
            } else {
                format!("met ({:.0}% of the limit)", value / bound * 100.0)
            };
            let shown = if value.fract() == 0.0 && value.abs() < 1e15 {
                format!("{}", value as i64)
            } else {
                number(&json!(value))
            };
            (format!("{shown} {unit}").trim_end().to_owned(), verdict)
        }
    };
    Target {
        what: what.to_owned(),
        goal: goal.to_owned(),
        measured: measured_text,
        verdict,
    }
}

/// What a relay ramp measured when not even its first rate stayed within the bound.
/// The highest offered rate (`target_rate`) of a ramp step that passed the ramp's own checks
/// (p99 send → delivered under `bound_ms`, no failures or missing receipts, at least 90% of the
/// offered rate achieved), with the rate it achieved. Judged on the offered load: a step's
/// achieved rate is its messages over its own clock, a little under the offered rate even
/// when every message left on schedule.
fn best_offered_within_bound(report: &Value, bound_ms: f64) -> Option<(f64, f64)> {
    let (columns, rows) = steps(report);
    let column = |name: &str| columns.iter().position(|column| column == name);
    let (offered, achieved, p99, failures, missing) = (
        column("target_rate")?,
        column("achieved_rate")?,
        column("receipt_p99_ms")?,
        column("failures")?,
        column("receipts_missing")?,
    );
    let cell = |row: &[Value], index: usize| row.get(index).and_then(Value::as_f64);
    rows.iter()
        .filter_map(|row| {
            let (offered, achieved) = (cell(row, offered)?, cell(row, achieved)?);
            let passed = cell(row, p99)? < bound_ms
                && cell(row, failures)? == 0.0
                && cell(row, missing)? == 0.0
                && achieved >= 0.9 * offered;
            passed.then_some((offered, achieved))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

fn no_rate_within_bound(report: &Value) -> Option<String> {
    if figure(report, "best rate within p99 bound") != Some(0.0) {
        return None;
    }
    let rate = figure(report, "first rate")?;
    let p99 = figure(report, "p99 send → delivered at the first rate")?;
    Some(format!(
        "none: p99 {} ms already at {} msg/s",
        number(&json!(p99)),
        number(&json!(rate))
    ))
}

/// A figure shown beside the targets without a goal of its own.
fn informational(what: &str, measured: Option<f64>, unit: &str) -> Target {
    Target {
        what: what.to_owned(),
        goal: "none (informational)".to_owned(),
        measured: measured.map_or_else(
            || "not measured".to_owned(),
            |value| format!("{} {unit}", number(&json!(value))),
        ),
        verdict: "—".to_owned(),
    }
}

/// "three nodes" (or "N nodes") from a report's `server nodes` figure.
fn nodes_text(report: &Value) -> String {
    match figure(report, "server nodes") {
        Some(3.0) => "three nodes".to_owned(),
        Some(nodes) => format!("{} nodes", number(&json!(nodes))),
        None => "one node".to_owned(),
    }
}

fn targets(reports: &[Value]) -> Vec<Target> {
    let find = |scenario: &str, label: &str| {
        reports
            .iter()
            .find(|report| report["scenario"] == scenario && report["label"] == label)
    };
    let mut out = Vec::new();
    if let Some(report) = find("connect", "memory") {
        out.push(judge(
            "idle sockets held (memory)",
            "19,000",
            figure(report, "sockets alive after hold"),
            "sockets",
            19_000.0,
            true,
        ));
        out.push(judge(
            "server RSS per socket above idle baseline, session included (memory)",
            "≤ 10 KiB",
            figure(report, "RSS per socket incl. session"),
            "KiB",
            10.0,
            false,
        ));
    }
    // "Half in Redis mode": half the rate (15,000 msg/s), the same p99 bound.
    for (label, goal) in [("memory", 30_000.0), ("redis", 15_000.0)] {
        if let Some(report) = find("relay", label) {
            let goal_text = number(&json!(goal));
            let best = best_offered_within_bound(report, 10.0);
            let mut target = judge(
                &format!(
                    "relayed messages/s with full receipts, p99 send → delivered < 10 ms ({label})"
                ),
                &format!("≥ {goal_text} /s"),
                best.map(|(offered, _)| offered),
                "msg/s",
                goal,
                true,
            );
            if let Some((offered, achieved)) = best {
                target.measured = format!(
                    "{} msg/s offered ({} achieved)",
                    number(&json!(offered)),
                    number(&json!(achieved))
                );
            }
            if let Some(measured) = no_rate_within_bound(report) {
                target.measured = measured;
            }
            out.push(target);
            let at_goal = step_value(report, "target_rate", goal, "receipt_p99_ms");
            if at_goal.is_some() {
                out.push(judge(
                    &format!("p99 send → message:delivered at {goal_text} msg/s ({label})"),
                    "< 10 ms",
                    at_goal,
                    "ms",
                    10.0,
                    false,
                ));
            }
        }
    }
    if let Some(report) = find("match", "memory") {
        out.push(judge(
            "matching (memory)",
            "≥ 10,000 pairs/s",
            figure(report, "best pairs/s"),
            "pairs/s",
            10_000.0,
            true,
        ));
    }
    // Several chat-server processes on one Redis (bench/run.sh mode `cluster`).
    if let Some(report) = find("match", "cluster") {
        out.push(judge(
            &format!(
                "matching across {} on one Redis (cluster)",
                nodes_text(report)
            ),
            "≥ 2,000 pairs/s",
            figure(report, "best pairs/s"),
            "pairs/s",
            2_000.0,
            true,
        ));
    }
    // The same scenarios on a three-master Redis Cluster (mode `rcluster`): beside the
    // single-Redis rows, without targets of their own.
    if let Some(report) = find("match", "rcluster") {
        out.push(informational(
            &format!(
                "matching across {} on a Redis Cluster (rcluster)",
                nodes_text(report)
            ),
            figure(report, "best pairs/s"),
            "pairs/s",
        ));
    }
    // Filtered matching: every pair on a filter value of its own (`match --pair-filters`).
    for (label, place) in [
        ("memory-filtered", "one node in memory".to_owned()),
        ("redis-filtered", "one node on Redis".to_owned()),
        ("cluster-cross", String::new()),
        ("rcluster-cross", String::new()),
    ] {
        let Some(report) = find("match", label) else {
            continue;
        };
        let place = if place.is_empty() {
            let redis = if label == "rcluster-cross" {
                "a Redis Cluster"
            } else {
                "one Redis"
            };
            format!(
                "every pair split across two of {} on {redis}",
                nodes_text(report)
            )
        } else {
            place
        };
        let mut target = informational(
            &format!("filtered matching (a filter value of its own per pair), {place} ({label})"),
            figure(report, "best pairs/s"),
            "pairs/s",
        );
        if let (Some(complete), Some(steps)) = (
            figure(report, "complete rounds"),
            Some(steps(report).1.len()).filter(|rounds| *rounds > 0),
        ) {
            target.measured = format!(
                "{} ({} of {steps} rounds complete, {} searchers each)",
                target.measured,
                complete as u64,
                figure(report, "clients per round").unwrap_or(0.0) as u64
            );
        }
        out.push(target);
    }
    for (label, redis) in [("cluster", "one Redis"), ("rcluster", "a Redis Cluster")] {
        if let Some(report) = find("relay", label) {
            let mut target = informational(
                &format!(
                    "relayed messages/s with full receipts, p99 send → delivered < 10 ms, pairs split across {} on {redis} ({label})",
                    nodes_text(report)
                ),
                figure(report, "best rate within p99 bound"),
                "msg/s",
            );
            if let Some(measured) = no_rate_within_bound(report) {
                target.measured = measured;
            }
            out.push(target);
        }
    }
    for (label, redis) in [("cluster", "one Redis"), ("rcluster", "a Redis Cluster")] {
        if let Some(report) = find("sessions", label) {
            out.push(informational(
                &format!(
                    "POST /api/guest spread over {} on {redis} ({label})",
                    nodes_text(report)
                ),
                figure(report, "sessions/s"),
                "/s",
            ));
        }
    }
    for (label, bound) in [("memory", 20_000.0), ("redis", 8_000.0)] {
        if let Some(report) = find("sessions", label) {
            out.push(judge(
                &format!("POST /api/guest ({label})"),
                &format!("≥ {} /s", number(&json!(bound))),
                figure(report, "sessions/s"),
                "/s",
                bound,
                true,
            ));
        }
    }
    if let Some(report) = find("broadcast", "memory") {
        out.push(judge(
            "one realtime:stats reaches every socket (memory)",
            "≤ 50 ms to 19,000 sockets",
            figure(report, "worst time to reach all"),
            "ms",
            50.0,
            false,
        ));
        out.push(judge(
            "sockets in the broadcast run (memory)",
            "19,000",
            figure(report, "sockets"),
            "sockets",
            19_000.0,
            true,
        ));
    }
    for label in ["memory", "redis", "cluster", "rcluster"] {
        if let Some(report) = find("churn", label) {
            out.push(judge(
                &format!("churn: RSS end vs start ({label})"),
                "within 10%",
                figure(report, "RSS change").map(f64::abs),
                "%",
                10.0,
                false,
            ));
            out.push(judge(
                &format!("churn: sessions/rooms left behind ({label})"),
                "0",
                figure(report, "left behind"),
                "",
                0.0,
                false,
            ));
        }
    }
    out
}

/// The storage modes side by side: matching (plain and filtered), relay, and the Redis
/// commands each search and each delivered message cost. `None` without any such result.
fn modes_table(reports: &[Value]) -> Option<String> {
    let find = |scenario: &str, label: &str| {
        reports
            .iter()
            .find(|report| report["scenario"] == scenario && report["label"] == label)
    };
    let pairs = |report: Option<&Value>| match report {
        None => "—".to_owned(),
        Some(report) => {
            let shown = |name: &str| {
                figure(report, name).map_or_else(|| "-".to_owned(), |value| number(&json!(value)))
            };
            let mut text = format!("{} / {}", shown("best pairs/s"), shown("median pairs/s"));
            let rounds = steps(report).1.len();
            let complete = figure(report, "complete rounds").unwrap_or(0.0);
            if complete < rounds as f64 {
                text.push_str(&format!(
                    " ({} of {rounds} rounds complete)",
                    complete as u64
                ));
            }
            text
        }
    };
    let commands = |report: Option<&Value>, name: &str| {
        report
            .and_then(|report| figure(report, name))
            .map_or_else(|| "—".to_owned(), |value| format!("{value:.2}"))
    };
    let mut rows = String::new();
    for (mode, filtered, storage) in [
        ("memory", "memory-filtered", "one node, in memory"),
        ("redis", "redis-filtered", "one node, one Redis"),
        ("cluster", "cluster-cross", "three nodes, one Redis"),
        (
            "rcluster",
            "rcluster-cross",
            "three nodes, Redis Cluster of three masters",
        ),
    ] {
        let (matching, filtered, relay) = (
            find("match", mode),
            find("match", filtered),
            find("relay", mode),
        );
        if matching.is_none() && filtered.is_none() && relay.is_none() {
            continue;
        }
        let relayed = relay.map_or_else(
            || "—".to_owned(),
            |report| {
                best_offered_within_bound(report, 10.0).map_or_else(
                    || no_rate_within_bound(report).unwrap_or_else(|| "none".to_owned()),
                    |(offered, _)| number(&json!(offered)),
                )
            },
        );
        let _ = writeln!(
            rows,
            "| {mode} ({storage}) | {} | {} | {} | {} | {relayed} | {} |",
            pairs(matching),
            commands(matching, "Redis commands per search"),
            pairs(filtered),
            commands(filtered, "Redis commands per search"),
            commands(relay, "Redis commands per delivered message (shown run)"),
        );
    }
    if rows.is_empty() {
        return None;
    }
    Some(format!(
        "| mode | match pairs/s, best / median | Redis commands per search | filtered match pairs/s, best / median | Redis commands per filtered search | relay msg/s within p99 10 ms (offered) | Redis commands per delivered message |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n{rows}"
    ))
}

fn markdown_report(out: &mut String, report: &Value) {
    let _ = writeln!(
        out,
        "### {} ({})\n",
        report["scenario"].as_str().unwrap_or(""),
        report["label"].as_str().unwrap_or("")
    );
    let _ = writeln!(out, "`{}`\n", report["command"].as_str().unwrap_or(""));
    let _ = writeln!(out, "| figure | value | unit |\n| --- | ---: | --- |");
    for metric in report["metrics"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            metric["name"].as_str().unwrap_or(""),
            number(&metric["value"]),
            metric["unit"].as_str().unwrap_or("")
        );
    }
    let latencies = report["latencies"].as_array().cloned().unwrap_or_default();
    if !latencies.is_empty() {
        let _ = writeln!(
            out,
            "\n| latency (ms) | count | p50 | p90 | p99 | p99.9 | max |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for latency in &latencies {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                latency["name"].as_str().unwrap_or(""),
                number(&latency["count"]),
                number(&latency["p50_ms"]),
                number(&latency["p90_ms"]),
                number(&latency["p99_ms"]),
                number(&latency["p999_ms"]),
                number(&latency["max_ms"]),
            );
        }
    }
    let (columns, rows) = steps(report);
    if !columns.is_empty() {
        let _ = writeln!(out, "\n| {} |", columns.join(" | "));
        let _ = writeln!(out, "|{}", " ---: |".repeat(columns.len()));
        for row in &rows {
            let _ = writeln!(
                out,
                "| {} |",
                row.iter().map(number).collect::<Vec<_>>().join(" | ")
            );
        }
    }
    let _ = writeln!(out);
}

/// `chat-loadgen report --out FILE [--machine FILE] [--commands FILE] [--notes FILE] RESULTS...`:
/// writes the benchmark page.
pub fn write_markdown(raw: &[String]) -> anyhow::Result<()> {
    let mut out_path = None;
    let mut machine = None;
    let mut commands = None;
    let mut notes = None;
    let mut files = Vec::new();
    let mut index = 0;
    while let Some(argument) = raw.get(index) {
        let slot = match argument.as_str() {
            "--out" => &mut out_path,
            "--machine" => &mut machine,
            "--commands" => &mut commands,
            "--notes" => &mut notes,
            _ => {
                files.push(argument.clone());
                index += 1;
                continue;
            }
        };
        *slot = Some(
            raw.get(index + 1)
                .with_context(|| format!("{argument} needs a value"))?
                .clone(),
        );
        index += 2;
    }
    let out_path = out_path.context("report needs --out FILE")?;
    let mut reports = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).with_context(|| format!("read {file}"))?;
        reports
            .push(serde_json::from_str::<Value>(&text).with_context(|| format!("parse {file}"))?);
    }
    let read = |path: &Option<String>| path.as_ref().map(std::fs::read_to_string).transpose();
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str("Written by `make bench` (`bench/run.sh`): release build, the real `chat-server` binary, and\n");
    out.push_str("`chat-loadgen` (apps/loadgen) speaking REST + Socket.IO over WebSocket like the web client.\n");
    out.push_str("Server and load share the machine below; every figure is from that one run.\n\n");
    if let Some(machine) = read(&machine)? {
        out.push_str("## Machine\n\n```\n");
        out.push_str(machine.trim_end());
        out.push_str("\n```\n\n");
    }
    out.push_str(
        "## Targets\n\n| target | goal | measured | verdict |\n| --- | --- | --- | --- |\n",
    );
    for target in targets(&reports) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            target.what, target.goal, target.measured, target.verdict
        );
    }
    out.push('\n');
    if let Some(table) = modes_table(&reports) {
        out.push_str("## Storage modes side by side\n\n");
        out.push_str("Matching (plain searches, and with every pair on a filter value of its own: `*-filtered`,\n");
        out.push_str("`cluster-cross`, `rcluster-cross`), relay, and what Redis ran for them (`INFO commandstats`:\n");
        out.push_str("calls of every command, those inside Lua scripts included, summed over all masters) per\n");
        out.push_str(
            "searcher and per delivered message; see \"Redis commands\" in the notes below.\n\n",
        );
        out.push_str(&table);
        out.push('\n');
    }
    if let Some(notes) = read(&notes)? {
        out.push_str(notes.trim_end());
        out.push_str("\n\n");
    }
    out.push_str("## Results\n\n");
    for report in &reports {
        markdown_report(&mut out, report);
    }
    if let Some(commands) = read(&commands)? {
        out.push_str("## Exact commands\n\n```sh\n");
        out.push_str(commands.trim_end());
        out.push_str("\n```\n");
    }
    std::fs::write(&out_path, out).with_context(|| format!("write {out_path}"))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn judges_both_directions() {
        assert!(
            judge("x", "g", Some(12.0), "", 10.0, true)
                .verdict
                .starts_with("met")
        );
        assert!(
            judge("x", "g", Some(8.0), "", 10.0, true)
                .verdict
                .starts_with("missed")
        );
        assert!(
            judge("x", "g", Some(8.0), "", 10.0, false)
                .verdict
                .starts_with("met")
        );
        assert!(
            judge("x", "g", Some(0.0), "", 0.0, false)
                .verdict
                .starts_with("met")
        );
        assert_eq!(
            judge("x", "g", None, "", 1.0, true).measured,
            "not measured"
        );
    }

    fn result(scenario: &str, metrics: &[(&str, f64)]) -> Value {
        json!({
            "scenario": scenario,
            "label": "cluster",
            "metrics": metrics
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value, "unit": ""}))
                .collect::<Vec<_>>(),
        })
    }

    #[test]
    fn relay_is_judged_on_the_best_offered_rate_that_passed() {
        let columns = [
            "target_rate",
            "achieved_rate",
            "receipt_p99_ms",
            "failures",
            "receipts_missing",
        ];
        let relay = |rows: Value| {
            json!({
                "scenario": "relay",
                "label": "memory",
                "metrics": [{"name": "best rate within p99 bound", "value": 29_981.0, "unit": ""}],
                "steps": {"columns": columns, "rows": rows},
            })
        };
        let passed = relay(json!([
            [25_000, 24_993, 5.5, 0, 0],
            [30_000, 29_981, 7.3, 0, 0],
            [35_000, 34_988, 11.4, 0, 0],
        ]));
        let row = |report: Value| {
            targets(&[report])
                .into_iter()
                .find(|row| row.what.ends_with("< 10 ms (memory)"))
                .unwrap()
        };
        let judged = row(passed);
        assert_eq!(judged.measured, "30000 msg/s offered (29981 achieved)");
        assert!(judged.verdict.starts_with("met"), "{}", judged.verdict);
        // A step with a lost receipt, or one that fell behind its schedule, does not count.
        let failed = relay(json!([
            [25_000, 24_993, 5.5, 0, 0],
            [30_000, 29_981, 7.3, 0, 1],
            [35_000, 30_000, 8.0, 0, 0],
        ]));
        let judged = row(failed);
        assert_eq!(judged.measured, "25000 msg/s offered (24993 achieved)");
        assert!(judged.verdict.starts_with("missed"), "{}", judged.verdict);
    }

    #[test]
    fn three_node_rows_join_the_targets() {
        let reports = [
            result("match", &[("server nodes", 3.0), ("best pairs/s", 2_500.0)]),
            result(
                "relay",
                &[
                    ("server nodes", 3.0),
                    ("best rate within p99 bound", 0.0),
                    ("first rate", 1_000.0),
                    ("p99 send → delivered at the first rate", 12.5),
                ],
            ),
            result(
                "sessions",
                &[("server nodes", 3.0), ("sessions/s", 4_321.0)],
            ),
            json!({
                "scenario": "match",
                "label": "cluster-cross",
                "metrics": [
                    {"name": "server nodes", "value": 3, "unit": ""},
                    {"name": "best pairs/s", "value": 1_500.5, "unit": "pairs/s"},
                ],
            }),
        ];
        let rows = targets(&reports);
        let matching = rows
            .iter()
            .find(|row| {
                row.what
                    .starts_with("matching across three nodes on one Redis")
            })
            .unwrap();
        assert_eq!(matching.goal, "≥ 2,000 pairs/s");
        assert!(matching.verdict.starts_with("met"), "{}", matching.verdict);
        let relay = rows
            .iter()
            .find(|row| row.what.contains("pairs split across three nodes"))
            .unwrap();
        assert_eq!(relay.measured, "none: p99 12.5 ms already at 1000 msg/s");
        assert_eq!(relay.goal, "none (informational)");
        let sessions = rows
            .iter()
            .find(|row| row.what.contains("spread over three nodes"))
            .unwrap();
        assert_eq!(sessions.measured, "4321 /s");
        let split = rows
            .iter()
            .find(|row| {
                row.what
                    .contains("every pair split across two of three nodes")
            })
            .unwrap();
        assert_eq!(split.measured, "1500 pairs/s");
    }

    /// A two-round match result labelled `label`.
    fn two_rounds(label: &str, metrics: &[(&str, Value)]) -> Value {
        json!({
            "scenario": "match",
            "label": label,
            "metrics": metrics
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value, "unit": ""}))
                .collect::<Vec<_>>(),
            "steps": {"columns": ["round"], "rows": [[1], [2]]},
        })
    }

    #[test]
    fn redis_cluster_and_filtered_rows_sit_beside_the_others() {
        let (best, median) = ("best pairs/s", "median pairs/s");
        let (complete, clients) = ("complete rounds", "clients per round");
        let reports = [
            two_rounds(
                "rcluster",
                &[
                    ("server nodes", json!(3)),
                    (complete, json!(2)),
                    (best, json!(4_000.4)),
                    (median, json!(3_000.0)),
                    ("Redis commands per search", json!(21.456)),
                ],
            ),
            two_rounds(
                "rcluster-cross",
                &[
                    ("server nodes", json!(3)),
                    (clients, json!(10_000)),
                    (complete, json!(1)),
                    (best, json!(900.0)),
                    (median, json!(800.0)),
                ],
            ),
            two_rounds(
                "memory-filtered",
                &[
                    (clients, json!(10_000)),
                    (complete, json!(2)),
                    (best, json!(9_000.0)),
                    (median, json!(8_000.0)),
                ],
            ),
        ];
        let rows = targets(&reports);
        let plain = rows
            .iter()
            .find(|row| row.what.ends_with("on a Redis Cluster (rcluster)"))
            .unwrap();
        assert_eq!(plain.measured, "4000 pairs/s");
        let split = rows
            .iter()
            .find(|row| row.what.ends_with("(rcluster-cross)"))
            .unwrap();
        assert!(split.what.contains("on a Redis Cluster"), "{}", split.what);
        assert_eq!(
            split.measured,
            "900 pairs/s (1 of 2 rounds complete, 10000 searchers each)"
        );
        assert!(
            rows.iter()
                .any(|row| row.what.ends_with("(memory-filtered)"))
        );
        let table = modes_table(&reports).unwrap();
        assert!(
            table.contains("| rcluster (three nodes, Redis Cluster of three masters) | 4000 / 3000 | 21.46 | 900 / 800 (1 of 2 rounds complete) | — | — | — |"),
            "{table}"
        );
        assert!(
            table.contains("| memory (one node, in memory) | — | — | 9000 / 8000 |"),
            "{table}"
        );
        assert!(!table.contains("| redis "), "{table}");
        assert!(modes_table(&[]).is_none());
    }
}
