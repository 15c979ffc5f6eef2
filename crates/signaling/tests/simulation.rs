//! Randomized fault injection over three chat nodes in one process (see `sim/mod.rs`):
//! seeded schedules of user operations and faults (crashes, restarts, paused buses,
//! expiries, time jumps), a model of what every client must see, invariants checked after
//! every step. Deterministic per seed with paused time.
//!
//! `SIM_SEED=<n> cargo test -p chat-signaling --test simulation -- --nocapture` replays one
//! seed; `SIM_SEEDS`, `SIM_STEPS`, `SIM_FAULTS`, `SOAK_SECS` and `SIM_SHRINK` are read by
//! `sim/knobs.rs`. `make soak` runs it long.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sim::knobs::Knobs;
use sim::world::Tally;
use sim::{Steps, run, shrink};

/// How many replays a shrink may take.
const SHRINK_BUDGET: usize = 300;

#[tokio::test(start_paused = true)]
async fn randomized_faults_against_the_model() {
    let knobs = Knobs::from_env().unwrap_or_else(|error| panic!("{error}"));
    let wall = std::time::Instant::now();
    let mut total = Tally::default();
    let mut failures: Vec<String> = Vec::new();
    let mut seeds = 0;
    for &seed in &knobs.seeds {
        if knobs.budget.is_some_and(|budget| wall.elapsed() >= budget) {
            break;
        }
        seeds += 1;
        let outcome = run(
            Steps::Generated {
                seed,
                count: knobs.steps,
            },
            &knobs.faults,
        )
        .await;
        total.add(&outcome.tally);
        let Some(failure) = outcome.failure else {
            continue;
        };
        let mut report = format!(
            "seed {seed} broke \"{}\" at step {}: {}\nfaults: {}\nschedule ({} steps):\n",
            failure.violation.invariant,
            failure.step,
            failure.violation.detail,
            knobs.faults,
            outcome.schedule.len()
        );
        for line in &outcome.schedule {
            let _ = writeln!(report, "  {line}");
        }
        if knobs.shrink {
            match shrink(
                &outcome.ops,
                failure.violation.invariant,
                &knobs.faults,
                SHRINK_BUDGET,
            )
            .await
            {
                Some(small) => {
                    let detail = small
                        .failure
                        .as_ref()
                        .map_or_else(String::new, |failure| failure.violation.detail.clone());
                    let _ = writeln!(
                        report,
                        "minimal schedule ({} steps): {detail}",
                        small.schedule.len()
                    );
                    for line in &small.schedule {
                        let _ = writeln!(report, "  {line}");
                    }
                }
                None => {
                    report.push_str("(the recorded schedule did not break it again on replay)\n")
                }
            }
        }
        eprintln!("{report}");
        failures.push(report);
    }
    let faults: BTreeMap<_, _> = total.faults.iter().collect();
    println!(
        "simulation: seeds {seeds}, steps/seed {}, operations {}, faults {faults:?} (on: {}), violations: {}, {:.1}s",
        knobs.steps,
        total.ops,
        knobs.faults,
        failures.len(),
        wall.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} seed(s) broke an invariant:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
