//! Worker processes: each runs one share of a scenario's clients on a single-threaded
//! runtime and reports at the coordinator's checkpoints (see [`crate::control`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::{JoinHandle, spawn_local};
use tokio::time::{Instant, sleep_until};

use crate::args::{Args, share};
use crate::control::{Control, Order, instant_at, now_us, say};
use crate::hist::Latency;
use crate::http::{HttpConn, create_guest};
use crate::sio::{Kind, Socket, last_string_field, string_field};

/// How long one step of a client flow may wait for the server.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs worker `index` of `count`; prints `error …` and fails on any error.
pub fn main(index: u64, count: u64, raw: &[String]) -> anyhow::Result<()> {
    let args = Args::parse(raw)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&runtime, async move {
        let env = Env {
            servers: args.servers()?,
            concurrency: usize::try_from(args.number("setup-concurrency", 64)?.max(1))
                .unwrap_or(64),
            args,
            index,
            count,
        };
        let mut control = Control::start();
        match env.args.scenario.as_str() {
            "connect" | "broadcast" => hold_scenario(&env, &mut control).await,
            "relay" => relay_scenario(&env, &mut control).await,
            "match" => match_scenario(&env, &mut control).await,
            "sessions" => sessions_scenario(&env, &mut control).await,
            "churn" => churn_scenario(&env, &mut control).await,
            other => bail!("unknown scenario {other}"),
        }
    });
    if let Err(error) = &result {
        say(&format!(
            "error {}",
            format!("{error:#}").replace('\n', " ")
        ));
    }
    result
}

/// What every part of a worker needs.
struct Env {
    args: Args,
    /// The nodes of the service (one unless several `--url`s were given).
    servers: Vec<SocketAddr>,
    index: u64,
    count: u64,
    concurrency: usize,
}

impl Env {
    /// The node of global client (or connection) number `index`: round-robin, so that
    /// neighbours (a relay pair `2p`, `2p + 1`; churn loops `2k`, `2k + 1`) are on different
    /// nodes whenever there are several.
    fn node(&self, index: u64) -> usize {
        let nodes = self.servers.len().max(1);
        usize::try_from(index % nodes as u64).unwrap_or(0)
    }

    /// The server address of global client number `index`.
    fn server(&self, index: u64) -> SocketAddr {
        self.servers
            .get(self.node(index))
            .or_else(|| self.servers.first())
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }
}

/// A created guest: its global client index, token and user id.
struct Guest {
    index: u64,
    token: String,
    user: String,
}

/// Failures counted with the first message kept.
#[derive(Default)]
struct Failures {
    count: Cell<u64>,
    first: RefCell<Option<String>>,
}

impl Failures {
    fn note(&self, error: &anyhow::Error) {
        self.count.set(self.count.get() + 1);
        let mut first = self.first.borrow_mut();
        if first.is_none() {
            *first = Some(format!("{error:#}"));
        }
    }

    fn json(&self) -> Value {
        json!({"failures": self.count.get(), "firstError": *self.first.borrow()})
    }
}

fn bump(cell: &Cell<u64>) {
    cell.set(cell.get() + 1);
}

/// Creates one guest per global client index (profile from `profile`), a few in flight,
/// each on the node its socket will use.
async fn create_guests(
    env: &Env,
    indexes: Vec<u64>,
    profile: impl Fn(u64) -> Value,
    failures: &Failures,
) -> anyhow::Result<(Vec<Guest>, Latency)> {
    // Idle keep-alive connections, one pool per node.
    let pool: RefCell<Vec<Vec<HttpConn>>> =
        RefCell::new(env.servers.iter().map(|_| Vec::new()).collect());
    let latency = RefCell::new(Latency::new());
    let (pool, latency_ref, profile) = (&pool, &latency, &profile);
    let results: Vec<Option<Guest>> = stream::iter(indexes)
        .map(|index| async move {
            let source = env.args.source(index).ok().flatten();
            let node = env.node(index);
            let mut conn = pool
                .borrow_mut()
                .get_mut(node)
                .and_then(Vec::pop)
                .unwrap_or_else(|| HttpConn::new(env.server(index), source));
            let started = Instant::now();
            let result = create_guest(&mut conn, &profile(index)).await;
            latency_ref.borrow_mut().record(started.elapsed());
            if let Some(idle) = pool.borrow_mut().get_mut(node) {
                idle.push(conn);
            }
            match result {
                Ok((token, user)) => Some(Guest { index, token, user }),
                Err(error) => {
                    failures.note(&error);
                    None
                }
            }
        })
        .buffer_unordered(env.concurrency)
        .collect()
        .await;
    Ok((
        results.into_iter().flatten().collect(),
        latency.into_inner(),
    ))
}

/// Opens an authenticated socket per guest, on the guest's node; `each` receives every
/// socket with its client index as soon as it is up (so it can be served while the others
/// connect).
async fn open_sockets(
    env: &Env,
    guests: Vec<Guest>,
    failures: &Failures,
    mut each: impl FnMut(u64, Socket),
) -> Latency {
    let latency = RefCell::new(Latency::new());
    let latency_ref = &latency;
    let mut opened = stream::iter(guests)
        .map(|Guest { index, token, .. }| async move {
            let source = env.args.source(index).ok().flatten();
            let started = Instant::now();
            let result = Socket::connect(env.server(index), source, &token).await;
            latency_ref.borrow_mut().record(started.elapsed());
            (index, result)
        })
        .buffer_unordered(env.concurrency);
    while let Some((index, result)) = opened.next().await {
        match result {
            Ok(mut socket) => {
                socket.set_client(index);
                each(index, socket);
            }
            Err(error) => failures.note(&error),
        }
    }
    drop(opened);
    latency.into_inner()
}

/// Sockets served in the background between phases: pings answered, events dropped.
struct Parked {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Option<Socket>>>,
}

fn park(sockets: Vec<Socket>) -> Parked {
    let (stop, receiver) = watch::channel(false);
    let tasks = sockets
        .into_iter()
        .map(|mut socket| {
            let mut receiver = receiver.clone();
            spawn_local(async move {
                loop {
                    tokio::select! {
                        packet = socket.recv() => match packet {
                            Ok(Some(_)) => {}
                            _ => return None,
                        },
                        _ = receiver.changed() => return Some(socket),
                    }
                }
            })
        })
        .collect();
    Parked { stop, tasks }
}

impl Parked {
    /// Takes the sockets back (those the server closed meanwhile are gone).
    async fn unpark(self) -> Vec<Socket> {
        let _ = self.stop.send(true);
        let mut sockets = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            if let Ok(Some(socket)) = task.await {
                sockets.push(socket);
            }
        }
        sockets
    }
}

async fn close_all(sockets: Vec<Socket>) {
    stream::iter(sockets)
        .for_each_concurrent(256, Socket::close)
        .await;
}

// ---------------------------------------------------------------------------------------
// connect, broadcast: idle sockets held open, realtime:stats arrivals timed.

/// Shared state of the held sockets of one worker.
#[derive(Default)]
struct Board {
    alive: Cell<u64>,
    stats_events: Cell<u64>,
    round: Cell<u64>,
    threshold_ms: Cell<u64>,
    reached: Cell<u64>,
    latency: RefCell<Latency>,
    first_us: Cell<u64>,
    last_us: Cell<u64>,
}

impl Board {
    fn on_stats(&self, payload: &str, my_round: &mut u64) {
        let now = now_us();
        bump(&self.stats_events);
        let round = self.round.get();
        if round == 0 || round == *my_round {
            return;
        }
        let Some(stamp_ms) = last_string_field(payload, "timestamp").and_then(parse_rfc3339_ms)
        else {
            return;
        };
        if stamp_ms < self.threshold_ms.get() {
            return;
        }
        *my_round = round;
        self.latency
            .borrow_mut()
            .record_us(now.saturating_sub(stamp_ms * 1000));
        bump(&self.reached);
        if self.first_us.get() == 0 || now < self.first_us.get() {
            self.first_us.set(now);
        }
        self.last_us.set(self.last_us.get().max(now));
    }
}

/// RFC 3339 → milliseconds since the epoch.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Serves one held socket (counted in `board.alive` by the caller) until `stop`.
async fn hold(mut socket: Socket, board: Rc<Board>, mut stop: watch::Receiver<bool>) {
    let mut my_round = 0;
    loop {
        tokio::select! {
            packet = socket.recv() => match packet {
                Ok(Some(packet)) => {
                    if let Kind::Event { name: "realtime:stats", payload, .. } = packet.kind() {
                        board.on_stats(payload, &mut my_round);
                    }
                }
                _ => break,
            },
            _ = stop.changed() => {
                socket.close().await;
                break;
            }
        }
    }
    board.alive.set(board.alive.get().saturating_sub(1));
}

async fn hold_scenario(env: &Env, control: &mut Control) -> anyhow::Result<()> {
    let total = env.args.number("clients", 100)?;
    let indexes: Vec<u64> = share(total, env.index, env.count).collect();
    let failures = Failures::default();
    let setup_started = Instant::now();
    let (tokens, guest_latency) = create_guests(env, indexes, |_| json!({}), &failures).await?;
    let guests_secs = setup_started.elapsed().as_secs_f64();
    let order = control.stage("guests", &json!({"guests": tokens.len(), "latency": guest_latency.to_json(), "secs": guests_secs, "errors": failures.json()})).await?;
    if order == Order::Exit {
        return Ok(());
    }
    let board = Rc::new(Board::default());
    let (stop, stop_receiver) = watch::channel(false);
    let mut holders = Vec::new();
    let connect_started = Instant::now();
    let connect_latency = open_sockets(env, tokens, &failures, |_, socket| {
        bump(&board.alive);
        holders.push(spawn_local(hold(
            socket,
            board.clone(),
            stop_receiver.clone(),
        )));
    })
    .await;
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let mut order = control
        .stage("connected", &json!({"alive": board.alive.get(), "latency": connect_latency.to_json(), "secs": connect_secs, "errors": failures.json()}))
        .await?;
    let mut round = 0;
    while let Order::Go { at_us, param } = order {
        round += 1;
        let data = if env.args.scenario == "connect" {
            // Hold for `param` seconds, then count the survivors.
            sleep_until(instant_at(at_us) + Duration::from_secs_f64(param.max(0.0))).await;
            json!({"alive": board.alive.get(), "statsEvents": board.stats_events.get()})
        } else {
            // One broadcast round: the coordinator triggers a change at `at_us`.
            board.threshold_ms.set(at_us / 1000);
            board.reached.set(0);
            board.first_us.set(0);
            board.last_us.set(0);
            *board.latency.borrow_mut() = Latency::new();
            board.round.set(round);
            let deadline = instant_at(at_us) + Duration::from_secs(5);
            while board.reached.get() < board.alive.get() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            json!({
                "alive": board.alive.get(),
                "reached": board.reached.get(),
                "latency": board.latency.borrow().to_json(),
                "firstUs": board.first_us.get(),
                "lastUs": board.last_us.get(),
            })
        };
        order = control.stage("round", &data).await?;
    }
    let _ = stop.send(true);
    for holder in holders {
        let _ = holder.await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// relay: pairs exchanging chat:message with full receipts.

#[derive(Default)]
struct RelayStats {
    sent: Cell<u64>,
    acked_ok: Cell<u64>,
    acked_err: Cell<u64>,
    sent_events: Cell<u64>,
    received: Cell<u64>,
    delivered: Cell<u64>,
    last_delivered_us: Cell<u64>,
    outstanding: Cell<i64>,
    relay: RefCell<Latency>,
    receipt: RefCell<Latency>,
    ack: RefCell<Latency>,
    lag: RefCell<Latency>,
    failures: Failures,
}

impl RelayStats {
    fn json(&self) -> Value {
        json!({
            "sent": self.sent.get(),
            "ackedOk": self.acked_ok.get(),
            "ackedErr": self.acked_err.get(),
            "sentEvents": self.sent_events.get(),
            "received": self.received.get(),
            "delivered": self.delivered.get(),
            "lastDeliveredUs": self.last_delivered_us.get(),
            "relay": self.relay.borrow().to_json(),
            "receipt": self.receipt.borrow().to_json(),
            "ack": self.ack.borrow().to_json(),
            "lag": self.lag.borrow().to_json(),
            "errors": self.failures.json(),
        })
    }
}

/// Pairs two sockets by a search filter only they match.
async fn pair_up(
    mut first: Socket,
    mut second: Socket,
    tag: String,
) -> anyhow::Result<(Socket, Socket)> {
    let search = json!({"filters": {"language": tag}}).to_string();
    first.emit("match:search", &search, false).await?;
    first.wait_event("match:searching", STEP_TIMEOUT).await?;
    second.emit("match:search", &search, false).await?;
    let (found_first, found_second) = tokio::join!(
        first.wait_event("match:found", STEP_TIMEOUT),
        second.wait_event("match:found", STEP_TIMEOUT)
    );
    found_first?;
    found_second?;
    Ok((first, second))
}

async fn relay_scenario(env: &Env, control: &mut Control) -> anyhow::Result<()> {
    let total_pairs = env.args.number("pairs", 10)?.max(1);
    let pairs: Vec<u64> = share(total_pairs, env.index, env.count).collect();
    let failures = Failures::default();
    let indexes: Vec<u64> = pairs
        .iter()
        .flat_map(|pair| [pair * 2, pair * 2 + 1])
        .collect();
    let (tokens, guest_latency) = create_guests(
        env,
        indexes,
        |index| json!({"language": format!("relay-{}", index / 2)}),
        &failures,
    )
    .await?;
    let mut by_index = HashMap::new();
    let connect_latency = open_sockets(env, tokens, &failures, |index, socket| {
        by_index.insert(index, socket);
    })
    .await;
    let pairing_started = Instant::now();
    let mut couples = Vec::new();
    for pair in &pairs {
        if let (Some(first), Some(second)) = (
            by_index.remove(&(pair * 2)),
            by_index.remove(&(pair * 2 + 1)),
        ) {
            couples.push((first, second, format!("relay-{pair}")));
        }
    }
    let paired: Vec<_> = stream::iter(couples)
        .map(|(first, second, tag)| pair_up(first, second, tag))
        .buffer_unordered(env.concurrency)
        .collect()
        .await;
    let mut sockets = Vec::new();
    for result in paired {
        match result {
            Ok((first, second)) => sockets.extend([first, second]),
            Err(error) => failures.note(&error),
        }
    }
    let paired_count = sockets.len() / 2;
    let pairing_secs = pairing_started.elapsed().as_secs_f64();
    let mut parked = park(sockets);
    let mut order = control
        .stage(
            "paired",
            &json!({"pairs": paired_count, "guestLatency": guest_latency.to_json(), "connectLatency": connect_latency.to_json(), "pairingSecs": pairing_secs, "errors": failures.json()}),
        )
        .await?;
    let seconds = if env.args.flag("ramp") {
        env.args.decimal("step-secs", 5.0)?
    } else {
        env.args.decimal("duration", 10.0)?
    };
    let duration = Duration::from_secs_f64(seconds.max(0.1));
    let pad: Rc<str> = Rc::from("x".repeat(
        usize::try_from(env.args.number("message-bytes", 64)?.clamp(1, 1900)).unwrap_or(64),
    ));
    while let Order::Go { at_us, param } = order {
        let sockets = parked.unpark().await;
        let stats = Rc::new(RelayStats::default());
        // Every client sends at rate / (2 × pairs), the first sends spread over one period.
        let per_client = (param / (2.0 * total_pairs as f64)).max(0.001);
        let period = Duration::from_secs_f64(1.0 / per_client);
        let start = instant_at(at_us);
        let end = start + duration;
        let hard_end = end + Duration::from_secs(3);
        let count = sockets.len().max(1) as f64;
        let tasks: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(position, socket)| {
                let offset = period.mul_f64(position as f64 / count);
                spawn_local(relay_socket(
                    socket,
                    RelayPlan {
                        first: start + offset,
                        period,
                        end,
                        hard_end,
                        pad: pad.clone(),
                    },
                    stats.clone(),
                ))
            })
            .collect();
        let mut sockets = Vec::new();
        for task in tasks {
            if let Ok(Some(socket)) = task.await {
                sockets.push(socket);
            }
        }
        parked = park(sockets);
        order = control.stage("round", &stats.json()).await?;
    }
    close_all(parked.unpark().await).await;
    Ok(())
}

struct RelayPlan {
    first: Instant,
    period: Duration,
    end: Instant,
    hard_end: Instant,
    pad: Rc<str>,
}

/// One client of a relay round: sends on schedule, acks what it receives, times receipts.
async fn relay_socket(
    mut socket: Socket,
    plan: RelayPlan,
    stats: Rc<RelayStats>,
) -> Option<Socket> {
    let mut next = plan.first;
    let mut pending: HashMap<u64, Instant> = HashMap::new();
    let mut by_id: HashMap<String, Instant> = HashMap::new();
    loop {
        let now = Instant::now();
        if now >= plan.end && (stats.outstanding.get() <= 0 || now >= plan.hard_end) {
            return Some(socket);
        }
        let wake = if next < plan.end {
            next
        } else {
            now + Duration::from_millis(10)
        };
        tokio::select! {
            _ = sleep_until(wake) => {
                while next < plan.end && next <= Instant::now() {
                    let now = Instant::now();
                    stats.lag.borrow_mut().record(now - next);
                    let id = socket.next_ack_id();
                    let payload = format!("{{\"type\":\"text\",\"content\":\"t{} {}\",\"clientId\":\"{id}\"}}", now_us(), plan.pad);
                    if let Err(error) = socket.emit("chat:message", &payload, true).await {
                        stats.failures.note(&error);
                        return None;
                    }
                    pending.insert(id, now);
                    bump(&stats.sent);
                    stats.outstanding.set(stats.outstanding.get() + 1);
                    next += plan.period;
                }
            }
            packet = socket.recv() => {
                let packet = match packet {
                    Ok(Some(packet)) => packet,
                    Ok(None) => {
                        stats.failures.note(&anyhow::anyhow!("socket closed during the relay"));
                        return None;
                    }
                    Err(error) => {
                        stats.failures.note(&error);
                        return None;
                    }
                };
                match packet.kind() {
                    Kind::Ack { id, args } => {
                        if let Some(sent_at) = pending.remove(&id) {
                            stats.ack.borrow_mut().record(sent_at.elapsed());
                            if args.contains("\"ok\":true") {
                                bump(&stats.acked_ok);
                                if let Some(message_id) = string_field(args, "id") {
                                    by_id.insert(message_id.to_owned(), sent_at);
                                }
                            } else {
                                bump(&stats.acked_err);
                                stats.outstanding.set(stats.outstanding.get() - 1);
                                stats.failures.note(&anyhow::anyhow!("chat:message refused: {args}"));
                            }
                        }
                    }
                    Kind::Event { name: "chat:message", ack, payload } => {
                        let now = now_us();
                        if let Some(stamp) = string_field(payload, "content").and_then(|content| content.strip_prefix('t')).and_then(|content| content.split(' ').next()).and_then(|stamp| stamp.parse::<u64>().ok()) {
                            stats.relay.borrow_mut().record_us(now.saturating_sub(stamp));
                        }
                        bump(&stats.received);
                        if let Some(ack) = ack
                            && let Err(error) = socket.ack(ack).await
                        {
                            stats.failures.note(&error);
                            return None;
                        }
                    }
                    Kind::Event { name: "message:sent", .. } => bump(&stats.sent_events),
                    Kind::Event { name: "message:delivered", payload, .. } => {
                        if let Some(sent_at) = string_field(payload, "id").and_then(|id| by_id.remove(id)) {
                            stats.receipt.borrow_mut().record(sent_at.elapsed());
                        }
                        bump(&stats.delivered);
                        stats.last_delivered_us.set(now_us());
                        stats.outstanding.set(stats.outstanding.get() - 1);
                    }
                    Kind::Event { name: "error", payload, .. } => stats.failures.note(&anyhow::anyhow!("error event: {payload}")),
                    _ => {}
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// match: every client searches at once.

#[derive(Default)]
struct MatchStats {
    found: Cell<u64>,
    /// `match:found`s whose partner is on another node / on the same node (counted when the
    /// partner is a client of this worker; with several workers some partners are unknown).
    cross_node: Cell<u64>,
    same_node: Cell<u64>,
    initiators: Cell<u64>,
    closed: Cell<u64>,
    /// `match:searching` after the client's `match:found` (the server finished queueing a
    /// search that had been paired meanwhile).
    searching_after_found: Cell<u64>,
    latency: RefCell<Latency>,
    first_send_us: Cell<u64>,
    last_found_us: Cell<u64>,
    failures: Failures,
}

async fn match_scenario(env: &Env, control: &mut Control) -> anyhow::Result<()> {
    let total = env.args.number("clients", 100)?;
    let indexes: Vec<u64> = share(total, env.index, env.count).collect();
    let failures = Failures::default();
    // --pair-filters: clients 2p and 2p + 1 (on two nodes when there are several) have a
    // language and search with a filter on it only they match, so every search is filtered
    // and every pair crosses nodes; else everyone searches without filters.
    let pair_filters = env.args.pair_filters();
    let profile = |index: u64| {
        if pair_filters {
            json!({"language": format!("match-{}", index / 2)})
        } else {
            json!({})
        }
    };
    let (guests, guest_latency) = create_guests(env, indexes, profile, &failures).await?;
    // Which node each of this worker's users is on, to tell cross-node pairs.
    // Each client's user id, to name a client that failed.
    let users: Rc<HashMap<u64, String>> = Rc::new(
        guests
            .iter()
            .map(|guest| (guest.index, guest.user.clone()))
            .collect(),
    );
    let nodes: Rc<HashMap<String, SocketAddr>> = Rc::new(
        guests
            .iter()
            .map(|guest| (guest.user.clone(), env.server(guest.index)))
            .collect(),
    );
    let mut sockets = Vec::new();
    let connect_latency =
        open_sockets(env, guests, &failures, |_, socket| sockets.push(socket)).await;
    let mut parked = park(sockets);
    let mut order = control
        .stage("connected", &json!({"guestLatency": guest_latency.to_json(), "connectLatency": connect_latency.to_json(), "errors": failures.json()}))
        .await?;
    while let Order::Go { at_us, .. } = order {
        let sockets = parked.unpark().await;
        let stats = Rc::new(MatchStats::default());
        let (leave, leave_receiver) = watch::channel(false);
        let expected = sockets.len() as u64;
        let start = instant_at(at_us);
        let tasks: Vec<_> = sockets
            .into_iter()
            .map(|socket| {
                let search = if pair_filters {
                    json!({"filters": {"language": format!("match-{}", socket.client() / 2)}})
                        .to_string()
                } else {
                    "{}".to_owned()
                };
                spawn_local(match_socket(
                    socket,
                    search,
                    start,
                    stats.clone(),
                    nodes.clone(),
                    users.clone(),
                    leave_receiver.clone(),
                ))
            })
            .collect();
        let deadline = start + Duration::from_secs(30);
        while stats.found.get() + stats.failures.count.get() < expected && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let _ = leave.send(true);
        let mut sockets = Vec::new();
        for task in tasks {
            if let Ok(Some(socket)) = task.await {
                sockets.push(socket);
            }
        }
        parked = park(sockets);
        let data = json!({
            "clients": expected,
            "found": stats.found.get(),
            "crossNode": stats.cross_node.get(),
            "sameNode": stats.same_node.get(),
            "initiators": stats.initiators.get(),
            "closed": stats.closed.get(),
            "searchingAfterFound": stats.searching_after_found.get(),
            "latency": stats.latency.borrow().to_json(),
            "firstSendUs": stats.first_send_us.get(),
            "lastFoundUs": stats.last_found_us.get(),
            "errors": stats.failures.json(),
        });
        order = control.stage("round", &data).await?;
    }
    close_all(parked.unpark().await).await;
    Ok(())
}

/// Sends `match:search` with `search` at `start`, waits for `match:found` (and notes whether
/// the partner is on another node); then (on `leave`) the initiator leaves and
/// both wait for `room:closed`.
async fn match_socket(
    mut socket: Socket,
    search: String,
    start: Instant,
    stats: Rc<MatchStats>,
    nodes: Rc<HashMap<String, SocketAddr>>,
    users: Rc<HashMap<u64, String>>,
    mut leave: watch::Receiver<bool>,
) -> Option<Socket> {
    let result = async {
        sleep_until(start).await;
        let sent = Instant::now();
        let sent_us = now_us();
        if stats.first_send_us.get() == 0 || sent_us < stats.first_send_us.get() {
            stats.first_send_us.set(sent_us);
        }
        socket.emit("match:search", &search, false).await?;
        let found = socket
            .wait_event("match:found", Duration::from_secs(30))
            .await?;
        stats.latency.borrow_mut().record(sent.elapsed());
        stats
            .last_found_us
            .set(stats.last_found_us.get().max(now_us()));
        bump(&stats.found);
        let partner = found
            .split_once("\"partner\":")
            .and_then(|(_, rest)| string_field(rest, "id"))
            .and_then(|id| nodes.get(id));
        match partner {
            Some(node) if *node == socket.server() => bump(&stats.same_node),
            Some(_) => bump(&stats.cross_node),
            None => {}
        }
        let initiator = found.contains("\"initiator\":true");
        let mut closed = false;
        // Serve the socket until told to leave; the partner may leave first.
        while !*leave.borrow() {
            tokio::select! {
                packet = socket.recv() => {
                    let packet = packet?.context("closed while matched")?;
                    match packet.kind() {
                        Kind::Event { name: "room:closed", .. } => closed = true,
                        Kind::Event { name: "match:searching", .. } => {
                            bump(&stats.searching_after_found);
                            let client = socket.client();
                            let user = users.get(&client).map_or("?", String::as_str);
                            eprintln!("match: client {client} ({user}) got match:searching after match:found");
                        }
                        _ => {}
                    }
                }
                _ = leave.changed() => {}
            }
        }
        if initiator {
            bump(&stats.initiators);
            if !closed {
                socket.emit("chat:leave", "", false).await?;
            }
        }
        if !closed {
            socket.wait_event("room:closed", STEP_TIMEOUT).await?;
        }
        bump(&stats.closed);
        anyhow::Ok(())
    }
    .await;
    match result {
        Ok(()) => Some(socket),
        Err(error) => {
            let client = socket.client();
            let user = users.get(&client).map_or("?", String::as_str);
            eprintln!("match: client {client} ({user}) failed: {error:#}");
            stats.failures.note(&error);
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// sessions: POST /api/guest over keep-alive connections.

async fn sessions_scenario(env: &Env, control: &mut Control) -> anyhow::Result<()> {
    let concurrency = share(env.args.number("concurrency", 16)?, env.index, env.count);
    let duration = Duration::from_secs_f64(env.args.decimal("duration", 5.0)?.max(0.1));
    let mut order = control.stage("ready", &json!({})).await?;
    while let Order::Go { at_us, .. } = order {
        let created = Rc::new(Cell::new(0_u64));
        let latency = Rc::new(RefCell::new(Latency::new()));
        let failures = Rc::new(Failures::default());
        let start = instant_at(at_us);
        let end = start + duration;
        let tasks: Vec<_> = concurrency
            .clone()
            .map(|index| {
                let (created, latency, failures) =
                    (created.clone(), latency.clone(), failures.clone());
                let mut conn =
                    HttpConn::new(env.server(index), env.args.source(index).ok().flatten());
                spawn_local(async move {
                    sleep_until(start).await;
                    let body = json!({});
                    while Instant::now() < end {
                        let started = Instant::now();
                        match create_guest(&mut conn, &body).await {
                            Ok(_) => {
                                latency.borrow_mut().record(started.elapsed());
                                bump(&created);
                            }
                            Err(error) => failures.note(&error),
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        let data = json!({"created": created.get(), "latency": latency.borrow().to_json(), "errors": failures.json()});
        order = control.stage("round", &data).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// churn: whole client lives in a loop.

#[derive(Default)]
struct ChurnStats {
    iterations: Cell<u64>,
    messages: Cell<u64>,
    files: Cell<u64>,
    early: Cell<u64>,
    latency: RefCell<Latency>,
    failures: Failures,
}

async fn churn_scenario(env: &Env, control: &mut Control) -> anyhow::Result<()> {
    let loops = share(env.args.number("concurrency", 8)?, env.index, env.count);
    let duration = Duration::from_secs_f64(env.args.decimal("duration", 5.0)?.max(0.1));
    let messages = env.args.number("messages", 3)?;
    let mut order = control.stage("ready", &json!({})).await?;
    while let Order::Go { at_us, param } = order {
        let stats = Rc::new(ChurnStats::default());
        let start = instant_at(at_us);
        let end = start
            + if param > 0.0 {
                Duration::from_secs_f64(param)
            } else {
                duration
            };
        let tasks: Vec<_> = loops
            .clone()
            .map(|index| {
                // Loops 2k and 2k+1 meet through a filter only they use.
                let tag = format!("churn-{}", index / 2);
                let (server, source, stats) = (
                    env.server(index),
                    env.args.source(index).ok().flatten(),
                    stats.clone(),
                );
                spawn_local(async move {
                    sleep_until(start).await;
                    let mut conn = HttpConn::new(server, source);
                    while Instant::now() < end {
                        let started = Instant::now();
                        match churn_once(server, source, &mut conn, &tag, messages, end, &stats)
                            .await
                        {
                            Ok(true) => {
                                stats.latency.borrow_mut().record(started.elapsed());
                                bump(&stats.iterations);
                            }
                            Ok(false) => {}
                            Err(error) => stats.failures.note(&error),
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        let data = json!({
            "iterations": stats.iterations.get(),
            "messages": stats.messages.get(),
            "files": stats.files.get(),
            "early": stats.early.get(),
            "latency": stats.latency.borrow().to_json(),
            "errors": stats.failures.json(),
        });
        order = control.stage("round", &data).await?;
    }
    Ok(())
}

/// One client life. `Ok(false)` when the time was up before a partner came.
async fn churn_once(
    server: SocketAddr,
    source: Option<std::net::Ipv4Addr>,
    conn: &mut HttpConn,
    tag: &str,
    messages: u64,
    end: Instant,
    stats: &ChurnStats,
) -> anyhow::Result<bool> {
    let (token, _) = create_guest(conn, &json!({"language": tag})).await?;
    let result = async {
        let mut socket = Socket::connect(server, source, &token).await?;
        let outcome = churn_chat(&mut socket, conn, &token, tag, messages, end, stats).await;
        socket.close().await;
        outcome
    }
    .await;
    // The session goes in every case, so nothing is left behind.
    let response = conn
        .request("DELETE", "/api/guest/me", Some(&token), None, b"")
        .await?;
    if response.status != 204 {
        bail!("DELETE /api/guest/me answered {}", response.status);
    }
    result
}

async fn churn_chat(
    socket: &mut Socket,
    conn: &mut HttpConn,
    token: &str,
    tag: &str,
    messages: u64,
    end: Instant,
    stats: &ChurnStats,
) -> anyhow::Result<bool> {
    socket
        .emit(
            "match:search",
            &json!({"filters": {"language": tag}}).to_string(),
            false,
        )
        .await?;
    // Wait for the partner; give up shortly after the end (the partner may have stopped).
    // A chat:message may come before match:found: confirm it like a client would.
    let mut early = 0;
    let limit = if Instant::now() >= end {
        Duration::from_secs(1)
    } else {
        (end - Instant::now()) + Duration::from_secs(2)
    };
    let wait = async {
        loop {
            let packet = socket.recv().await?.context("closed while searching")?;
            match packet.kind() {
                Kind::Event {
                    name: "match:found",
                    payload,
                    ..
                } => return anyhow::Ok(payload.to_owned()),
                Kind::Event {
                    name: "chat:message",
                    ack: Some(ack),
                    ..
                } => {
                    early += 1;
                    socket.ack(ack).await?;
                }
                _ => {}
            }
        }
    };
    let found = match tokio::time::timeout(limit, wait).await {
        Ok(found) => found?,
        Err(_) if Instant::now() >= end => {
            socket.emit("match:cancel", "", false).await?;
            return Ok(false);
        }
        Err(_) => bail!("no match:found within {limit:?}"),
    };
    stats.early.set(stats.early.get() + early);
    if found.contains("\"initiator\":true") {
        for number in 0..messages {
            let payload = json!({"type": "text", "content": format!("churn message {number}"), "clientId": number.to_string()}).to_string();
            let ack = socket.emit("chat:message", &payload, true).await?;
            let seen = RefCell::new(Vec::new());
            let wait = async {
                loop {
                    let packet = socket
                        .recv()
                        .await?
                        .context("closed while waiting for a receipt")?;
                    seen.borrow_mut()
                        .push(packet.text().chars().take(60).collect::<String>());
                    match packet.kind() {
                        Kind::Ack { id, args }
                            if Some(id) == ack && !args.contains("\"ok\":true") =>
                        {
                            bail!("chat:message refused: {args}")
                        }
                        Kind::Event {
                            name: "message:delivered",
                            ..
                        } => return anyhow::Ok(()),
                        Kind::Event {
                            name: "room:closed",
                            payload,
                            ..
                        } => bail!("room closed while chatting: {payload}"),
                        _ => {}
                    }
                }
            };
            tokio::time::timeout(STEP_TIMEOUT, wait)
                .await
                .with_context(|| {
                    format!(
                        "no message:delivered in time (ack {ack:?}, saw {:?})",
                        seen.borrow()
                    )
                })??;
            bump(&stats.messages);
        }
        upload_file(conn, token).await?;
        bump(&stats.files);
        socket.emit("chat:leave", "", false).await?;
        socket.wait_event("room:closed", STEP_TIMEOUT).await?;
    } else {
        // Confirm every message until the initiator closes the room.
        let seen = RefCell::new(Vec::new());
        let wait = async {
            loop {
                let packet = socket.recv().await?.context("closed during the chat")?;
                seen.borrow_mut()
                    .push(packet.text().chars().take(60).collect::<String>());
                match packet.kind() {
                    Kind::Event {
                        name: "chat:message",
                        ack: Some(ack),
                        ..
                    } => socket.ack(ack).await?,
                    Kind::Event {
                        name: "chat:message",
                        ack: None,
                        ..
                    } => bail!("chat:message without ack id: {}", packet.text()),
                    Kind::Event {
                        name: "room:closed",
                        ..
                    } => return anyhow::Ok(()),
                    _ => {}
                }
            }
        };
        tokio::time::timeout(STEP_TIMEOUT * 2, wait)
            .await
            .with_context(|| format!("room not closed in time (saw {:?})", seen.borrow()))??;
    }
    Ok(true)
}

/// Uploads a 1 KiB text file to the current room.
async fn upload_file(conn: &mut HttpConn, token: &str) -> anyhow::Result<()> {
    const BOUNDARY: &str = "chatloadgenboundary7MA4YWxkTrZu0gW";
    let mut body = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"note.txt\"\r\nContent-Type: text/plain\r\n\r\n").into_bytes();
    body.extend(std::iter::repeat_n(b'a', 1024));
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let response = conn
        .request(
            "POST",
            "/api/files",
            Some(token),
            Some(&content_type),
            &body,
        )
        .await?;
    if response.status != 201 {
        bail!(
            "POST /api/files answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_timestamps() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.250Z"), Some(1250));
        assert_eq!(parse_rfc3339_ms("nonsense"), None);
    }
}
