//! What a run is told through the environment: which seeds, how many steps, which fault
//! kinds.
//!
//! - `SIM_SEED=<n>`: exactly that seed (replays a failure).
//! - `SIM_SEEDS=<k>`: `k` seeds from [`BASE_SEED`] on (default [`DEFAULT_SEEDS`]).
//! - `SIM_STEPS=<n>`: steps per seed (default [`DEFAULT_STEPS`]).
//! - `SIM_FAULTS=<list>`: the fault kinds, comma-separated names of [`FaultKind`], or `all`,
//!   or `none` (default [`DEFAULT_FAULTS`]); `+name` / `-name` items add to or take from
//!   the default set.
//! - `SOAK_SECS=<n>`: stop starting new seeds once `n` seconds of wall time have passed.
//! - `SIM_SHRINK=0`: report a failing schedule as it is, without minimising it.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// The first seed of `SIM_SEEDS`.
pub const BASE_SEED: u64 = 0x5EED_0000;
/// Seeds run by default (CI).
pub const DEFAULT_SEEDS: u64 = 24;
/// Steps per seed by default (CI).
pub const DEFAULT_STEPS: usize = 400;
/// The fault kinds on by default: the ones that pass on today's code (200 seeds of 400
/// steps clean). Off: `pause` (a bus held for seconds still breaks rooms, stats and ended
/// sockets; see `tests/regressions.rs` for the cases fixed so far) and `same-id` (a node
/// restarted under its dead predecessor's id inherits its registry record and held set, so
/// the crash goes unnoticed; `chat-server` picks a fresh random id per process, so only
/// embedders that choose ids meet it, and it needs a registry that tells a node's lives
/// apart, such as its `startedAt` checked at the first beat).
pub const DEFAULT_FAULTS: &[FaultKind] = &[
    FaultKind::Kill,
    FaultKind::RemoteEnd,
    FaultKind::Expire,
    FaultKind::Takeover,
    FaultKind::Return,
];

/// A kind of fault (or of risky operation) the schedule may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A node crashes (no disconnect rules run, its bus membership is gone) and later
    /// restarts with a new id.
    Kill,
    /// With `kill`: a restarted node may take the dead node's id again (a pod of a
    /// stateful set coming back under its name).
    SameId,
    /// The bus to and from a node holds every message until it is resumed.
    Pause,
    /// A session is deleted through any node (`DELETE /api/guest/me` behind a load
    /// balancer), not only the one holding its socket.
    RemoteEnd,
    /// A session's TTL runs out; whichever node's expiry sweep sees it first ends it.
    Expire,
    /// A second socket of a connected user opens on any node and replaces the first.
    Takeover,
    /// A user who dropped comes back (connects or takes over) to the node they dropped from
    /// within the grace; without it they come back elsewhere (or later).
    Return,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Kill,
        FaultKind::SameId,
        FaultKind::Pause,
        FaultKind::RemoteEnd,
        FaultKind::Expire,
        FaultKind::Takeover,
        FaultKind::Return,
    ];

    /// The name `SIM_FAULTS` uses.
    pub const fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::SameId => "same-id",
            FaultKind::Pause => "pause",
            FaultKind::RemoteEnd => "remote-end",
            FaultKind::Expire => "expire",
            FaultKind::Takeover => "takeover",
            FaultKind::Return => "return",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// The set of fault kinds of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faults(BTreeSet<FaultKind>);

impl Faults {
    /// Whether `kind` is on.
    pub fn on(&self, kind: FaultKind) -> bool {
        self.0.contains(&kind)
    }

    /// Parses `SIM_FAULTS`; `None` keeps the default set.
    pub fn parse(spec: Option<&str>) -> Result<Self, String> {
        let mut set: BTreeSet<FaultKind> = DEFAULT_FAULTS.iter().copied().collect();
        let Some(spec) = spec.map(str::trim).filter(|spec| !spec.is_empty()) else {
            return Ok(Self(set));
        };
        let items: Vec<&str> = spec.split(',').map(str::trim).collect();
        if !items.iter().all(|item| item.starts_with(['+', '-'])) {
            set.clear();
        }
        for item in items {
            let (add, name) = match item.as_bytes().first() {
                Some(b'+') => (true, &item[1..]),
                Some(b'-') => (false, &item[1..]),
                _ => (true, item),
            };
            let kinds: Vec<FaultKind> = match name {
                "all" => FaultKind::ALL.to_vec(),
                "none" => Vec::new(),
                _ => vec![FaultKind::parse(name).ok_or_else(|| {
                    format!("SIM_FAULTS: unknown fault kind {name:?} (known: all, none, kill, same-id, pause, remote-end, expire, takeover, return)")
                })?],
            };
            for kind in kinds {
                if add {
                    set.insert(kind);
                } else {
                    set.remove(&kind);
                }
            }
        }
        Ok(Self(set))
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return formatter.write_str("none");
        }
        let names: Vec<&str> = self.0.iter().map(|kind| kind.name()).collect();
        formatter.write_str(&names.join(","))
    }
}

/// Everything a run of the simulator is told.
#[derive(Debug, Clone)]
pub struct Knobs {
    /// The seeds to run, in order.
    pub seeds: Vec<u64>,
    /// Steps per seed.
    pub steps: usize,
    /// The fault kinds that are on.
    pub faults: Faults,
    /// Stop starting seeds after this much wall time.
    pub budget: Option<Duration>,
    /// Minimise a failing schedule.
    pub shrink: bool,
}

impl Knobs {
    /// Reads the knobs from the environment; a malformed value is an error naming it.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok();
        let number = |name: &str| -> Result<Option<u64>, String> {
            var(name)
                .map(|value| {
                    value
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| format!("{name}={value:?} is not a number"))
                })
                .transpose()
        };
        let seeds = match number("SIM_SEED")? {
            Some(seed) => vec![seed],
            None => {
                let count = number("SIM_SEEDS")?.unwrap_or(DEFAULT_SEEDS);
                (0..count).map(|index| BASE_SEED + index).collect()
            }
        };
        let steps = number("SIM_STEPS")?.map_or(DEFAULT_STEPS, |steps| steps as usize);
        Ok(Self {
            seeds,
            steps,
            faults: Faults::parse(var("SIM_FAULTS").as_deref())?,
            budget: number("SOAK_SECS")?.map(Duration::from_secs),
            shrink: var("SIM_SHRINK").is_none_or(|value| value.trim() != "0"),
        })
    }
}
