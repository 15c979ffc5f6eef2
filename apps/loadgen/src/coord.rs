//! The coordinator: starts the workers, paces the phases, samples the server, merges the
//! workers' figures into a [`Report`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::args::Args;
use crate::control::{Workers, now_us};
use crate::hist::{Latency, merge_from};
use crate::http::{HttpConn, create_guest, stats};
use crate::procfs::{Sample, maybe_sample};
use crate::redis::Counts;
use crate::report::Report;

/// How long a setup stage (guests, connects) may take.
const SETUP_LIMIT: Duration = Duration::from_secs(900);

/// Runs the scenario of `args` and returns its report.
pub async fn run(args: &Args) -> anyhow::Result<Report> {
    let servers = args.servers()?;
    // Scenario-wide questions (`GET /api/stats`, the broadcast trigger) go to the first node:
    // nodes on one Redis answer for the whole service.
    let server = *servers.first().context("no server")?;
    let server_pids = args.server_pids()?;
    let pids = server_pids.as_slice();
    let redis = args.redis_servers()?;
    let mut report = Report::new(args);
    if servers.len() > 1 {
        report.metric("server nodes", servers.len(), "");
    }
    if server_pids.len() > 1 {
        report.metric(
            "server processes sampled (server RSS, CPU, open files: their sums)",
            server_pids.len(),
            "",
        );
    }
    if !redis.is_empty() {
        report.metric(
            "Redis servers read (INFO commandstats, calls summed)",
            redis.len(),
            "",
        );
    }
    let mut workers = Workers::spawn(args)?;
    let result = match args.scenario.as_str() {
        "connect" => connect(args, server, pids, &mut workers, &mut report).await,
        "broadcast" => broadcast(args, server, pids, &mut workers, &mut report).await,
        "relay" => relay(args, pids, &redis, &mut workers, &mut report).await,
        "match" => matching(args, servers.len(), &redis, &mut workers, &mut report).await,
        "sessions" => sessions(args, pids, &mut workers, &mut report).await,
        "churn" => churn(args, server, pids, &mut workers, &mut report).await,
        other => Err(anyhow::anyhow!("unknown scenario {other}")),
    };
    workers.finish().await;
    result.map(|()| report)
}

fn sum(results: &[Value], key: &str) -> u64 {
    results
        .iter()
        .filter_map(|result| result[key].as_u64())
        .sum()
}

fn sum_at(results: &[Value], first: &str, second: &str) -> u64 {
    results
        .iter()
        .filter_map(|result| result[first][second].as_u64())
        .sum()
}

/// The workers' own CPU seconds so far (each stage carries `selfCpu`).
fn loadgen_cpu(results: &[Value]) -> f64 {
    results
        .iter()
        .filter_map(|result| result["selfCpu"].as_f64())
        .sum()
}

fn first_error(results: &[Value]) -> Value {
    results
        .iter()
        .find_map(|result| {
            result["errors"]["firstError"]
                .as_str()
                .map(|text| Value::String(text.to_owned()))
        })
        .unwrap_or(Value::Null)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn record_server(report: &mut Report, name: &str, sample: Option<Sample>) {
    if let Some(sample) = sample {
        report.metric(&format!("server RSS {name}"), mib(sample.rss_kib), "MiB");
    }
}

/// A wall-clock start a little ahead, so every worker gets the word in time.
fn start_soon(ms: u64) -> u64 {
    now_us() + ms * 1000
}

async fn settle(secs: f64) {
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
}

async fn connect(
    args: &Args,
    server: SocketAddr,
    pids: &[u32],
    workers: &mut Workers,
    report: &mut Report,
) -> anyhow::Result<()> {
    let baseline = maybe_sample(pids);
    let guests = workers.stage("guests", SETUP_LIMIT).await?;
    settle(2.0).await;
    let after_guests = maybe_sample(pids);
    workers.send("continue").await?;
    let connected = workers.stage("connected", SETUP_LIMIT).await?;
    settle(3.0).await;
    let after_sockets = maybe_sample(pids);
    let server_stats = stats(server).await.ok();
    let hold = args.decimal("hold", 10.0)?;
    workers
        .send(&format!("go {} {hold}", start_soon(100)))
        .await?;
    let held = workers
        .stage("round", Duration::from_secs_f64(hold + 60.0))
        .await?;
    let after_hold = maybe_sample(pids);

    let clients = args.number("clients", 100)?;
    let alive = sum(&connected, "alive");
    let connect_secs = connected
        .iter()
        .filter_map(|result| result["secs"].as_f64())
        .fold(0.0, f64::max);
    report.metric("clients asked", clients, "");
    report.metric("guests created", sum(&guests, "guests"), "");
    report.metric("sockets connected", alive, "");
    report.metric(
        "setup failures",
        sum_at(&connected, "errors", "failures"),
        "",
    );
    report.metric("first setup error", first_error(&connected), "");
    report.metric("connect phase", connect_secs, "s");
    report.metric(
        "connects per second",
        if connect_secs > 0.0 {
            alive as f64 / connect_secs
        } else {
            0.0
        },
        "/s",
    );
    if let Some(stats) = &server_stats {
        report.metric(
            "server onlineUsers after connect",
            stats["onlineUsers"].clone(),
            "",
        );
    }
    report.metric("hold", hold, "s");
    report.metric("sockets alive after hold", sum(&held, "alive"), "");
    record_server(report, "idle baseline", baseline);
    record_server(report, "after guests", after_guests);
    record_server(report, "after sockets", after_sockets);
    record_server(report, "after hold", after_hold);
    if let (Some(base), Some(guests), Some(sockets)) = (baseline, after_guests, after_sockets)
        && alive > 0
    {
        report.metric(
            "RSS per socket incl. session",
            sockets.rss_kib.saturating_sub(base.rss_kib) as f64 / alive as f64,
            "KiB",
        );
        report.metric(
            "RSS per socket, socket only",
            sockets.rss_kib.saturating_sub(guests.rss_kib) as f64 / alive as f64,
            "KiB",
        );
        report.metric("server open files", sockets.fds, "");
    }
    report.latency("POST /api/guest", &merge_from(&guests, "latency")?);
    report.latency("socket connect + auth", &merge_from(&connected, "latency")?);
    Ok(())
}

async fn broadcast(
    args: &Args,
    server: SocketAddr,
    pids: &[u32],
    workers: &mut Workers,
    report: &mut Report,
) -> anyhow::Result<()> {
    workers.stage("guests", SETUP_LIMIT).await?;
    workers.send("continue").await?;
    let connected = workers.stage("connected", SETUP_LIMIT).await?;
    let alive = sum(&connected, "alive");
    report.metric("sockets", alive, "");
    report.metric(
        "setup failures",
        sum_at(&connected, "errors", "failures"),
        "",
    );
    // Let the broadcasts of the connect phase pass.
    settle(3.0).await;
    let rounds = args.number("rounds", 3)?.max(1);
    let mut trigger = HttpConn::new(server, None);
    let mut cpu_before = loadgen_cpu(&connected);
    let mut all = Latency::new();
    let mut worst: f64 = 0.0;
    let mut complete = 0;
    for round in 1..=rounds {
        let at = start_soon(300);
        workers.send(&format!("go {at} 0")).await?;
        tokio::time::sleep(Duration::from_micros(at.saturating_sub(now_us()))).await;
        let server_before = maybe_sample(pids);
        // A new session changes totalUsers: one realtime:stats follows.
        create_guest(&mut trigger, &json!({})).await?;
        let results = workers.stage("round", Duration::from_secs(60)).await?;
        let server_after = maybe_sample(pids);
        let cpu_after = loadgen_cpu(&results);
        let loadgen_ms = (cpu_after - cpu_before) * 1000.0;
        cpu_before = cpu_after;
        let server_ms = match (server_before, server_after) {
            (Some(before), Some(after)) => Value::from((after.cpu_secs - before.cpu_secs) * 1000.0),
            _ => Value::Null,
        };
        let latency = merge_from(&results, "latency")?;
        let reached = sum(&results, "reached");
        let alive = sum(&results, "alive");
        let first = results
            .iter()
            .filter_map(|result| result["firstUs"].as_u64())
            .filter(|value| *value > 0)
            .min()
            .unwrap_or(0);
        let last = results
            .iter()
            .filter_map(|result| result["lastUs"].as_u64())
            .max()
            .unwrap_or(0);
        if reached == alive && alive > 0 {
            complete += 1;
            worst = worst.max(latency.max_ms());
        }
        report.step(&[
            ("round", json!(round)),
            ("sockets", json!(alive)),
            ("reached", json!(reached)),
            ("p50_ms", json!(latency.quantile_ms(0.5))),
            ("p99_ms", json!(latency.quantile_ms(0.99))),
            ("last_socket_ms", json!(latency.max_ms())),
            (
                "first_to_last_ms",
                json!(last.saturating_sub(first) as f64 / 1000.0),
            ),
            ("server_cpu_ms", json!(server_ms)),
            ("loadgen_cpu_ms", json!(loadgen_ms)),
        ]);
        all.merge(&latency);
        settle(1.5).await;
    }
    report.metric("rounds", rounds, "");
    report.metric("rounds reaching every socket", complete, "");
    report.metric(
        "worst time to reach all",
        if complete > 0 {
            Value::from(worst)
        } else {
            Value::Null
        },
        "ms",
    );
    report.latency("snapshot timestamp → socket", &all);
    Ok(())
}

/// The Redis calls between two readings, when both were taken.
fn ran(before: Option<&Counts>, after: Option<&Counts>) -> Option<Counts> {
    Some(after?.since(before?))
}

/// `calls / per` as a JSON number, or null when not measured (or nothing to divide by).
fn per(calls: Option<&Counts>, per: u64) -> Value {
    match calls {
        Some(calls) if per > 0 => Value::from(calls.total() as f64 / per as f64),
        _ => Value::Null,
    }
}

/// The figures of the Redis calls `calls` made for `count` units (searches, messages).
fn record_redis(report: &mut Report, calls: Option<&Counts>, count: u64, unit: &str) {
    let Some(calls) = calls else { return };
    report.metric(
        &format!("Redis commands per {unit}"),
        per(Some(calls), count),
        "commands",
    );
    report.metric(
        &format!("Redis commands per {unit}, by command"),
        calls.top_per(count, 8),
        "",
    );
    if calls.servers() > 1 {
        report.metric("Redis commands per server (share)", calls.shares(), "");
    }
}

async fn relay(
    args: &Args,
    pids: &[u32],
    redis: &[SocketAddr],
    workers: &mut Workers,
    report: &mut Report,
) -> anyhow::Result<()> {
    let paired = workers.stage("paired", SETUP_LIMIT).await?;
    let pairs = sum(&paired, "pairs");
    report.metric("pairs", pairs, "");
    report.metric("setup failures", sum_at(&paired, "errors", "failures"), "");
    report.metric("first setup error", first_error(&paired), "");
    settle(1.0).await;
    let ramp = args.flag("ramp");
    let bound = args.decimal("p99-bound-ms", 10.0)?;
    let rates: Vec<f64> = if ramp {
        let start = args.decimal("start-rate", 5_000.0)?;
        let step = args.decimal("step", 5_000.0)?.max(1.0);
        let max = args.decimal("max-rate", 40_000.0)?;
        let mut rates = Vec::new();
        let mut rate = start;
        while rate <= max + 0.5 {
            rates.push(rate);
            rate += step;
        }
        rates
    } else {
        vec![args.decimal("rate", 1_000.0)?]
    };
    let seconds = if ramp {
        args.decimal("step-secs", 5.0)?
    } else {
        args.decimal("duration", 10.0)?
    };
    report.metric("p99 bound", bound, "ms");
    let mut best: Option<(f64, Vec<Value>, Option<Counts>)> = None;
    let mut last: Option<(Vec<Value>, Option<Counts>)> = None;
    let mut lowest: Option<(f64, f64)> = None;
    let mut cpu_before = loadgen_cpu(&paired);
    for rate in rates {
        let before = maybe_sample(pids);
        let calls_before = Counts::read(redis).await;
        let at = start_soon(200);
        workers.send(&format!("go {at} {rate}")).await?;
        let results = workers
            .stage("round", Duration::from_secs_f64(seconds + 60.0))
            .await?;
        // Until the last receipt (a lost receipt must not stretch the window to the drain).
        let last_delivered = results
            .iter()
            .filter_map(|result| result["lastDeliveredUs"].as_u64())
            .max()
            .unwrap_or(at);
        let elapsed = (last_delivered.saturating_sub(at)) as f64 / 1e6;
        let after = maybe_sample(pids);
        let calls = ran(calls_before.as_ref(), Counts::read(redis).await.as_ref());
        let delivered = sum(&results, "delivered");
        let achieved = delivered as f64 / elapsed.max(seconds);
        let receipt = merge_from(&results, "receipt")?;
        let relay = merge_from(&results, "relay")?;
        let lag = merge_from(&results, "lag")?;
        let failures = sum_at(&results, "errors", "failures");
        let cpu = match (before, after) {
            (Some(before), Some(after)) if delivered > 0 => {
                Value::from((after.cpu_secs - before.cpu_secs) / delivered as f64 * 1e6)
            }
            _ => Value::Null,
        };
        let within = receipt.quantile_ms(0.99) <= bound && achieved >= rate * 0.9 && failures == 0;
        lowest.get_or_insert((rate, receipt.quantile_ms(0.99)));
        let cpu_after = loadgen_cpu(&results);
        let loadgen = if delivered > 0 {
            Value::from((cpu_after - cpu_before) / delivered as f64 * 1e6)
        } else {
            Value::Null
        };
        cpu_before = cpu_after;
        report.step(&[
            ("target_rate", json!(rate)),
            ("achieved_rate", json!(achieved)),
            ("sent", json!(sum(&results, "sent"))),
            ("delivered", json!(delivered)),
            ("relay_p50_ms", json!(relay.quantile_ms(0.5))),
            ("relay_p99_ms", json!(relay.quantile_ms(0.99))),
            ("receipt_p50_ms", json!(receipt.quantile_ms(0.5))),
            ("receipt_p99_ms", json!(receipt.quantile_ms(0.99))),
            ("send_lag_p99_ms", json!(lag.quantile_ms(0.99))),
            ("failures", json!(failures)),
            (
                "receipts_missing",
                json!(sum(&results, "ackedOk").saturating_sub(delivered)),
            ),
            ("server_cpu_s_per_M", json!(cpu)),
            ("loadgen_cpu_s_per_M", json!(loadgen)),
            (
                "server_rss_MiB",
                json!(after.map(|sample| mib(sample.rss_kib))),
            ),
            ("redis_cmds_per_msg", per(calls.as_ref(), delivered)),
        ]);
        if within {
            best = Some((achieved, results.clone(), calls.clone()));
        }
        last = Some((results, calls));
        if ramp && !within {
            break;
        }
    }
    let (shown, shown_calls) = best
        .as_ref()
        .map(|(_, results, calls)| (results.clone(), calls.clone()))
        .or(last)
        .unwrap_or_default();
    let delivered = sum(&shown, "delivered");
    report.metric(
        "best rate within p99 bound",
        best.as_ref().map(|(rate, _, _)| *rate).unwrap_or(0.0),
        "msg/s",
    );
    if let Some((rate, p99)) = lowest {
        report.metric("first rate", rate, "msg/s");
        report.metric("p99 send → delivered at the first rate", p99, "ms");
    }
    report.metric("messages sent (shown run)", sum(&shown, "sent"), "");
    report.metric(
        "acks ok / refused (shown run)",
        format!("{} / {}", sum(&shown, "ackedOk"), sum(&shown, "ackedErr")),
        "",
    );
    report.metric(
        "message:sent received (shown run)",
        sum(&shown, "sentEvents"),
        "",
    );
    report.metric(
        "chat:message received + acked (shown run)",
        sum(&shown, "received"),
        "",
    );
    report.metric("message:delivered received (shown run)", delivered, "");
    record_redis(
        report,
        shown_calls.as_ref(),
        delivered,
        "delivered message (shown run)",
    );
    report.metric("first error", first_error(&shown), "");
    report.latency(
        "send → partner gets chat:message",
        &merge_from(&shown, "relay")?,
    );
    report.latency("send → message:delivered", &merge_from(&shown, "receipt")?);
    report.latency("send → ack", &merge_from(&shown, "ack")?);
    report.latency("loadgen send lag (schedule)", &merge_from(&shown, "lag")?);
    Ok(())
}

async fn matching(
    args: &Args,
    nodes: usize,
    redis: &[SocketAddr],
    workers: &mut Workers,
    report: &mut Report,
) -> anyhow::Result<()> {
    let connected = workers.stage("connected", SETUP_LIMIT).await?;
    report.metric(
        "setup failures",
        sum_at(&connected, "errors", "failures"),
        "",
    );
    settle(2.0).await;
    let rounds = args.number("rounds", 3)?.max(1);
    let mut all = Latency::new();
    let mut rates = Vec::new();
    let (mut cross_node, mut same_node, mut found_total) = (0, 0, 0);
    let mut searching_after_found = 0;
    // Redis calls over every round (search, match, room, leave, close, and what runs in the
    // background meanwhile), and the searches they served.
    let mut all_calls: Option<Counts> = None;
    let mut searches = 0;
    let mut measured_rounds = 0;
    let mut error = Value::Null;
    for round in 1..=rounds {
        let calls_before = Counts::read(redis).await;
        let at = start_soon(200);
        workers.send(&format!("go {at} 0")).await?;
        let results = workers.stage("round", Duration::from_secs(120)).await?;
        let calls = ran(calls_before.as_ref(), Counts::read(redis).await.as_ref());
        let clients = sum(&results, "clients");
        if error.is_null() {
            error = first_error(&results);
        }
        if let Some(calls) = &calls {
            measured_rounds += 1;
            searches += clients;
            all_calls = Some(match all_calls.take() {
                Some(total) => total.plus(calls),
                None => calls.clone(),
            });
        }
        let found = sum(&results, "found");
        found_total += found;
        cross_node += sum(&results, "crossNode");
        searching_after_found += sum(&results, "searchingAfterFound");
        same_node += sum(&results, "sameNode");
        let first = results
            .iter()
            .filter_map(|result| result["firstSendUs"].as_u64())
            .filter(|value| *value > 0)
            .min()
            .unwrap_or(at);
        let last = results
            .iter()
            .filter_map(|result| result["lastFoundUs"].as_u64())
            .max()
            .unwrap_or(first);
        let secs = (last.saturating_sub(first)) as f64 / 1e6;
        let pairs = found as f64 / 2.0;
        let rate = if secs > 0.0 { pairs / secs } else { 0.0 };
        if found == clients && clients > 0 {
            rates.push(rate);
        }
        let latency = merge_from(&results, "latency")?;
        report.step(&[
            ("round", json!(round)),
            ("clients", json!(clients)),
            ("found", json!(found)),
            ("first_search_to_last_found_ms", json!(secs * 1000.0)),
            ("pairs_per_s", json!(rate)),
            ("p50_ms", json!(latency.quantile_ms(0.5))),
            ("p99_ms", json!(latency.quantile_ms(0.99))),
            ("failures", json!(sum_at(&results, "errors", "failures"))),
            ("redis_cmds_per_search", per(calls.as_ref(), clients)),
        ]);
        all.merge(&latency);
        settle(1.0).await;
    }
    rates.sort_by(f64::total_cmp);
    report.metric("clients per round", args.number("clients", 100)?, "");
    report.metric("complete rounds", rates.len(), "");
    report.metric("first error", error, "");
    // The server finished queueing a search after it had been paired: see bench/notes.md.
    report.metric(
        "match:searching after match:found",
        searching_after_found,
        "",
    );
    report.metric(
        "best pairs/s",
        rates
            .last()
            .copied()
            .map(Value::from)
            .unwrap_or(Value::Null),
        "pairs/s",
    );
    report.metric(
        "median pairs/s",
        rates
            .get(rates.len() / 2)
            .copied()
            .map(Value::from)
            .unwrap_or(Value::Null),
        "pairs/s",
    );
    if measured_rounds == rounds {
        record_redis(report, all_calls.as_ref(), searches, "search");
    }
    if nodes > 1 {
        // Counted per client: each pair twice, once from either side.
        report.metric(
            "match:found with the partner on another node",
            cross_node,
            "",
        );
        report.metric(
            "match:found with the partner on the same node",
            same_node,
            "",
        );
        report.metric(
            "match:found with the partner in another worker (node unknown)",
            found_total.saturating_sub(cross_node + same_node),
            "",
        );
    }
    report.latency("match:search → match:found", &all);
    Ok(())
}

async fn sessions(
    args: &Args,
    pids: &[u32],
    workers: &mut Workers,
    report: &mut Report,
) -> anyhow::Result<()> {
    workers.stage("ready", SETUP_LIMIT).await?;
    let seconds = args.decimal("duration", 5.0)?;
    let before = maybe_sample(pids);
    let at = start_soon(200);
    workers.send(&format!("go {at} 0")).await?;
    let results = workers
        .stage("round", Duration::from_secs_f64(seconds + 60.0))
        .await?;
    let after = maybe_sample(pids);
    let created = sum(&results, "created");
    report.metric(
        "concurrent connections",
        args.number("concurrency", 16)?,
        "",
    );
    report.metric("duration", seconds, "s");
    report.metric("sessions created", created, "");
    report.metric("sessions/s", created as f64 / seconds, "/s");
    report.metric("failures", sum_at(&results, "errors", "failures"), "");
    report.metric("first error", first_error(&results), "");
    if let (Some(before), Some(after)) = (before, after)
        && created > 0
    {
        report.metric(
            "server CPU per million sessions",
            (after.cpu_secs - before.cpu_secs) / created as f64 * 1e6,
            "CPU-s",
        );
        report.metric(
            "server RSS growth per session",
            after.rss_kib.saturating_sub(before.rss_kib) as f64 * 1024.0 / created as f64,
            "bytes",
        );
    }
    record_server(report, "before", before);
    record_server(report, "after", after);
    report.latency("POST /api/guest", &merge_from(&results, "latency")?);
    Ok(())
}

async fn churn(
    args: &Args,
    server: SocketAddr,
    pids: &[u32],
    workers: &mut Workers,
    report: &mut Report,
) -> anyhow::Result<()> {
    workers.stage("ready", SETUP_LIMIT).await?;
    settle(1.0).await;
    let fresh = maybe_sample(pids);
    let warmup = args.decimal("warmup", 0.0)?;
    if warmup > 0.0 {
        // A first, uncounted round: allocator pools and maps reach their working size.
        workers
            .send(&format!("go {} {warmup}", start_soon(200)))
            .await?;
        workers
            .stage("round", Duration::from_secs_f64(warmup + 120.0))
            .await?;
        settle(3.0).await;
    }
    let stats_before = stats(server).await?;
    let before = maybe_sample(pids);
    let seconds = args.decimal("duration", 5.0)?;
    let started = Instant::now();
    workers
        .send(&format!("go {} {seconds}", start_soon(200)))
        .await?;
    let results = workers
        .stage("round", Duration::from_secs_f64(seconds + 120.0))
        .await?;
    let elapsed = started.elapsed().as_secs_f64();
    // Disconnects and deletions settle, the stats broadcaster catches up.
    settle(3.0).await;
    let after = maybe_sample(pids);
    let stats_after = stats(server).await?;
    let iterations = sum(&results, "iterations");
    report.metric(
        "concurrent client loops",
        args.number("concurrency", 8)?,
        "",
    );
    report.metric("iterations (client lives)", iterations, "");
    report.metric(
        "iterations/s",
        iterations as f64 / elapsed.max(seconds),
        "/s",
    );
    report.metric("messages with receipts", sum(&results, "messages"), "");
    report.metric("files uploaded", sum(&results, "files"), "");
    report.metric(
        "chat:message arriving before match:found",
        sum(&results, "early"),
        "",
    );
    report.metric("failures", sum_at(&results, "errors", "failures"), "");
    report.metric("first error", first_error(&results), "");
    let count = |stats: &Value, key: &str| stats[key].as_i64().unwrap_or(0);
    let mut left = 0;
    for key in [
        "totalUsers",
        "onlineUsers",
        "availableUsers",
        "usersInChat",
        "connectedUsers",
    ] {
        let change = count(&stats_after, key) - count(&stats_before, key);
        left += change.max(0);
        report.metric(
            &format!("{key} before → after"),
            format!(
                "{} → {}",
                count(&stats_before, key),
                count(&stats_after, key)
            ),
            "",
        );
    }
    report.metric("left behind", left, "");
    report.metric("warm-up round before measuring", warmup, "s");
    record_server(report, "fresh", fresh);
    record_server(report, "start", before);
    record_server(report, "end", after);
    if let (Some(before), Some(after)) = (before, after) {
        report.metric(
            "RSS change",
            (after.rss_kib as f64 / before.rss_kib as f64 - 1.0) * 100.0,
            "%",
        );
        report.metric(
            "server open files start → end",
            format!("{} → {}", before.fds, after.fds),
            "",
        );
    }
    report.latency("one client life", &merge_from(&results, "latency")?);
    Ok(())
}
