//! A deterministic simulation of three chat nodes under faults, in the spirit of
//! FoundationDB's simulation testing and Jepsen's checkers.
//!
//! One run is one seed: a [`Rng`](rng::Rng) drives a schedule of steps ([`ops`]) interleaving
//! user operations (create a session, connect to any node, search, cancel, next, leave,
//! send, acknowledge, type, disconnect, take over from another node, delete) with faults
//! (a node crashes and restarts with the same id or a new one, a node's bus is paused and
//! resumed, sessions expire, time jumps past graces, call and node timeouts). Each step is
//! applied to the [`world`] (nodes in one process over one `MemoryStore` and the
//! in-process cluster, behind the fault [`gate`], with the gateway's own order of calls in
//! [`node`]), the runtime settles with paused time, and the [`model`] absorbs what every
//! socket was handed (`events.rs`) and judges the invariants (`model.rs`, `checks.rs`).
//!
//! A failing run returns the seed, the step, the invariant and the schedule so far; with
//! shrinking on, [`shrink`] replays shorter schedules to find a small one that still breaks
//! the same invariant.

pub mod checks;
pub mod events;
pub mod gate;
pub mod knobs;
pub mod model;
pub mod node;
pub mod ops;
pub mod rng;
pub mod store;
pub mod world;

use knobs::Faults;
use model::Violation;
use ops::Op;
use rng::Rng;
use tokio::time::Instant;
use world::{Tally, World};

/// A run that broke an invariant.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The step that broke it (0-based, counting executed and skipped steps).
    pub step: usize,
    /// The invariant and what was seen.
    pub violation: Violation,
}

/// What one run did.
#[derive(Debug)]
pub struct Run {
    /// Counts of operations and faults.
    pub tally: Tally,
    /// One line per executed step, up to the failure if any.
    pub schedule: Vec<String>,
    /// The steps as data, for replaying.
    pub ops: Vec<Op>,
    /// The failure, if an invariant broke.
    pub failure: Option<Failure>,
}

/// Where the steps of a run come from.
pub enum Steps<'a> {
    /// Generated from a seed: this many.
    Generated { seed: u64, count: usize },
    /// Replayed as recorded.
    Replayed(&'a [Op]),
}

/// Runs one schedule on a fresh world; stops at the first violation.
pub async fn run(steps: Steps<'_>, faults: &Faults) -> Run {
    let mut world = World::new();
    let started = Instant::now();
    let (mut rng, count, replayed) = match steps {
        Steps::Generated { seed, count } => (Rng::new(seed), count, None),
        Steps::Replayed(ops) => (Rng::new(0), ops.len(), Some(ops)),
    };
    let mut run = Run {
        tally: Tally::default(),
        schedule: Vec::new(),
        ops: Vec::new(),
        failure: None,
    };
    for step in 0..count {
        let op = match replayed {
            Some(ops) => ops[step],
            None => ops::generate(&mut rng, &world.snapshot(), faults, step),
        };
        let at = started.elapsed().as_secs_f64();
        let result = world.step(op).await;
        let (line, violation) = match result {
            Ok(None) => continue,
            Ok(Some(line)) => (line, None),
            Err((line, violation)) => (line, Some(violation)),
        };
        run.ops.push(op);
        run.schedule
            .push(format!("#{step:<4} t={at:>9.3}s  {line}"));
        if let Some(violation) = violation {
            run.failure = Some(Failure { step, violation });
            break;
        }
    }
    world.shutdown().await;
    run.tally = world.tally.clone();
    run
}

/// Looks for a shorter schedule than `ops` that still breaks `invariant`, replaying at most
/// `budget` candidates (delta debugging: drop chunks, halving their size). Returns the
/// smallest failing run found.
pub async fn shrink(ops: &[Op], invariant: &str, faults: &Faults, budget: usize) -> Option<Run> {
    let breaks = |run: &Run| {
        run.failure
            .as_ref()
            .is_some_and(|failure| failure.violation.invariant == invariant)
    };
    let first = run(Steps::Replayed(ops), faults).await;
    if !breaks(&first) {
        return None;
    }
    let mut best = first;
    let mut tries = 0;
    let mut chunks = 2;
    while tries < budget && best.ops.len() > 1 {
        let current = best.ops.clone();
        let size = current.len().div_ceil(chunks);
        let mut improved = false;
        for start in (0..current.len()).step_by(size.max(1)) {
            if tries >= budget {
                break;
            }
            tries += 1;
            let candidate: Vec<Op> = current[..start]
                .iter()
                .chain(current[(start + size).min(current.len())..].iter())
                .copied()
                .collect();
            let attempt = run(Steps::Replayed(&candidate), faults).await;
            if breaks(&attempt) && attempt.ops.len() < best.ops.len() {
                best = attempt;
                improved = true;
                break;
            }
        }
        if improved {
            chunks = (chunks - 1).max(2);
        } else if size <= 1 {
            break;
        } else {
            chunks = (chunks * 2).min(current.len());
        }
    }
    Some(best)
}
