//! The steps of a schedule and how the generator picks them. A step names users by label
//! (`u0`, `u1`, … in order of creation) and nodes by slot, so a recorded schedule replays
//! as it is, and a shortened one still runs (steps whose user or node is not in the state
//! they need are skipped).

use std::fmt;

use super::knobs::{FaultKind, Faults};
use super::rng::Rng;

/// How many sessions a run creates at most.
pub const MAX_USERS: usize = 10;
/// Every this many steps the schedule lets the world go quiet (see [`Op::Quiesce`]).
pub const QUIESCE_EVERY: usize = 25;

/// One step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `POST /api/guest` through node `via`: a new session labelled `user`.
    Create { user: usize, via: usize },
    /// A socket of `user` (who has none) connects to node `node`.
    Connect { user: usize, node: usize },
    /// A second socket of the connected `user` opens on `node` and replaces the first.
    Takeover { user: usize, node: usize },
    /// `user`'s socket drops.
    Disconnect { user: usize },
    /// `match:search`.
    Search { user: usize },
    /// `match:cancel`.
    Cancel { user: usize },
    /// `match:next`.
    Next { user: usize },
    /// `chat:leave`.
    Leave { user: usize },
    /// `chat:message`.
    Send { user: usize },
    /// The client acknowledges one of the messages it holds a receipt for (`pick` chooses
    /// which): by the `chat:message` ack, or by `message:delivered` when `by_event`.
    Ack {
        user: usize,
        pick: u64,
        by_event: bool,
    },
    /// `chat:typing`.
    Typing { user: usize, on: bool },
    /// `DELETE /api/guest/me` through node `via`.
    Delete { user: usize, via: usize },
    /// The session's TTL runs out now.
    Expire { user: usize },
    /// Paused time moves on.
    Advance { millis: u64 },
    /// Node `node` crashes.
    Kill { node: usize },
    /// A fresh node takes the dead slot `node`, with the old id or a new one.
    Restart { node: usize, new_id: bool },
    /// The bus to and from `node` holds its messages.
    Pause { node: usize },
    /// The bus of `node` lets its messages through again.
    Resume { node: usize },
    /// Every paused bus resumes and time moves past every grace and node timeout, so the
    /// next check sees a quiet world.
    Quiesce,
}

impl Op {
    /// The fault kind the step belongs to, if it is a fault.
    pub fn fault(self) -> Option<&'static str> {
        match self {
            Op::Kill { .. } => Some("kill"),
            Op::Restart { .. } => Some("restart"),
            Op::Pause { .. } => Some("pause"),
            Op::Resume { .. } => Some("resume"),
            Op::Takeover { .. } => Some("takeover"),
            Op::Expire { .. } => Some("expire"),
            Op::Delete { .. } => Some("delete"),
            Op::Advance { .. } | Op::Quiesce => Some("time"),
            _ => None,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Create { user, via } => write!(formatter, "create u{user} via n{via}"),
            Op::Connect { user, node } => write!(formatter, "connect u{user} to n{node}"),
            Op::Takeover { user, node } => write!(formatter, "takeover u{user} on n{node}"),
            Op::Disconnect { user } => write!(formatter, "disconnect u{user}"),
            Op::Search { user } => write!(formatter, "search u{user}"),
            Op::Cancel { user } => write!(formatter, "cancel u{user}"),
            Op::Next { user } => write!(formatter, "next u{user}"),
            Op::Leave { user } => write!(formatter, "leave u{user}"),
            Op::Send { user } => write!(formatter, "send u{user}"),
            Op::Ack {
                user,
                pick,
                by_event,
            } => {
                let how = if by_event { "message:delivered" } else { "ack" };
                write!(formatter, "{how} u{user} #{pick}")
            }
            Op::Typing { user, on } => write!(formatter, "typing u{user} {on}"),
            Op::Delete { user, via } => write!(formatter, "delete u{user} via n{via}"),
            Op::Expire { user } => write!(formatter, "expire u{user}"),
            Op::Advance { millis } => {
                write!(formatter, "advance {}.{:03}s", millis / 1000, millis % 1000)
            }
            Op::Kill { node } => write!(formatter, "KILL n{node}"),
            Op::Restart { node, new_id } => {
                let id = if new_id { "new id" } else { "same id" };
                write!(formatter, "RESTART n{node} ({id})")
            }
            Op::Pause { node } => write!(formatter, "PAUSE bus n{node}"),
            Op::Resume { node } => write!(formatter, "RESUME bus n{node}"),
            Op::Quiesce => write!(formatter, "quiesce"),
        }
    }
}

/// What the generator may look at: the users and nodes as the world stands.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The next label a created user gets.
    pub next_user: usize,
    /// Users whose session is alive: `(label, node slot of their socket, in a room as
    /// they see it, receipts held)`.
    pub users: Vec<(usize, Option<usize>, bool, usize)>,
    /// `(label, slot)`: a node a user dropped from less than a grace ago.
    pub dropped_from: Vec<(usize, usize)>,
    /// Users whose session ended.
    pub ended: Vec<usize>,
    /// Per node slot: `(alive, paused)`.
    pub nodes: Vec<(bool, bool)>,
}

impl Snapshot {
    fn live_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&slot| self.nodes[slot].0)
            .collect()
    }
}

/// Picks the next step from the state of the world.
pub fn generate(rng: &mut Rng, snapshot: &Snapshot, faults: &Faults, step: usize) -> Op {
    if step > 0 && step.is_multiple_of(QUIESCE_EVERY) {
        return Op::Quiesce;
    }
    let live = snapshot.live_nodes();
    let connected: Vec<usize> = snapshot
        .users
        .iter()
        .filter(|user| user.1.is_some())
        .map(|user| user.0)
        .collect();
    let offline: Vec<usize> = snapshot
        .users
        .iter()
        .filter(|user| user.1.is_none())
        .map(|user| user.0)
        .collect();
    let chatting: Vec<usize> = snapshot
        .users
        .iter()
        .filter(|user| user.1.is_some() && user.2)
        .map(|user| user.0)
        .collect();
    let holding: Vec<usize> = snapshot
        .users
        .iter()
        .filter(|user| user.1.is_some() && user.3 > 0)
        .map(|user| user.0)
        .collect();
    let alive: Vec<usize> = snapshot.users.iter().map(|user| user.0).collect();
    let dead: Vec<usize> = (0..snapshot.nodes.len())
        .filter(|&slot| !snapshot.nodes[slot].0)
        .collect();
    let paused: Vec<usize> = (0..snapshot.nodes.len())
        .filter(|&slot| snapshot.nodes[slot].1)
        .collect();
    let unpaused_live: Vec<usize> = live
        .iter()
        .copied()
        .filter(|slot| !snapshot.nodes[*slot].1)
        .collect();
    // Without `return`, a user who just dropped comes back to another node.
    let target = |rng: &mut Rng, user: usize| {
        let avoid: Vec<usize> = snapshot
            .dropped_from
            .iter()
            .filter(|(label, _)| *label == user && !faults.on(FaultKind::Return))
            .map(|(_, slot)| *slot)
            .collect();
        let nodes: Vec<usize> = live
            .iter()
            .copied()
            .filter(|slot| !avoid.contains(slot))
            .collect();
        rng.pick(&nodes)
    };
    loop {
        let roll = rng.below(1000);
        let any_node = rng.pick(&live);
        let op = match roll {
            0..40 if snapshot.next_user < MAX_USERS => any_node.map(|via| Op::Create {
                user: snapshot.next_user,
                via,
            }),
            40..130 => rng.pick(&offline).and_then(|user| {
                Some(Op::Connect {
                    user,
                    node: target(rng, user)?,
                })
            }),
            130..140 => rng
                .pick(&snapshot.ended)
                .zip(any_node)
                .map(|(user, node)| Op::Connect { user, node }),
            140..260 => rng.pick(&connected).map(|user| Op::Search { user }),
            260..290 => rng.pick(&connected).map(|user| Op::Cancel { user }),
            290..350 => rng.pick(&chatting).map(|user| Op::Next { user }),
            350..380 => rng.pick(&chatting).map(|user| Op::Leave { user }),
            380..500 => rng.pick(&chatting).map(|user| Op::Send { user }),
            500..580 => rng.pick(&holding).map(|user| Op::Ack {
                user,
                pick: rng.below(8),
                by_event: rng.chance(30),
            }),
            580..620 => rng.pick(&chatting).map(|user| Op::Typing {
                user,
                on: rng.chance(50),
            }),
            620..680 => rng.pick(&connected).map(|user| Op::Disconnect { user }),
            680..710 if faults.on(FaultKind::Takeover) => rng.pick(&connected).and_then(|user| {
                Some(Op::Takeover {
                    user,
                    node: target(rng, user)?,
                })
            }),
            710..730 => {
                // Deleted through the node holding the socket, unless any node may do it.
                let user = rng.pick(&alive);
                let own = user.and_then(|label| {
                    snapshot
                        .users
                        .iter()
                        .find(|entry| entry.0 == label)
                        .and_then(|entry| entry.1)
                });
                let via = if faults.on(FaultKind::RemoteEnd) {
                    any_node
                } else {
                    own.or(any_node)
                };
                user.zip(via).map(|(user, via)| Op::Delete { user, via })
            }
            730..745 if faults.on(FaultKind::Expire) => {
                rng.pick(&alive).map(|user| Op::Expire { user })
            }
            745..850 => Some(Op::Advance {
                millis: rng.between(50, 3_000),
            }),
            850..890 => Some(Op::Advance {
                millis: *[10_000, 30_000, 10_500, 9_500, 20_000]
                    .get(rng.below(5) as usize)
                    .unwrap_or(&10_000),
            }),
            890..910 if faults.on(FaultKind::Kill) && dead.is_empty() && live.len() > 1 => {
                rng.pick(&live).map(|node| Op::Kill { node })
            }
            910..960 => rng.pick(&dead).map(|node| Op::Restart {
                node,
                new_id: !faults.on(FaultKind::SameId) || rng.chance(50),
            }),
            960..980 if faults.on(FaultKind::Pause) && paused.is_empty() => {
                rng.pick(&unpaused_live).map(|node| Op::Pause { node })
            }
            980..1000 => rng.pick(&paused).map(|node| Op::Resume { node }),
            _ => None,
        };
        if let Some(op) = op {
            return op;
        }
    }
}
