//! Defects the fault simulation (`simulation.rs`, `sim/`) found, each pinned by the minimal
//! schedule it shrank to, replayed deterministically on three nodes with paused time and
//! judged by the same model. A schedule ends with `quiesce`, so that what must happen
//! within a grace or a node timeout is judged too.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

mod sim;

use sim::knobs::Faults;
use sim::ops::Op;
use sim::{Steps, run};

/// Replays `ops` (then `quiesce`) and fails with the schedule if an invariant broke.
async fn check(ops: &[Op]) {
    let mut ops = ops.to_vec();
    ops.push(Op::Quiesce);
    let faults = Faults::parse(None).unwrap();
    let outcome = run(Steps::Replayed(&ops), &faults).await;
    if let Some(failure) = outcome.failure {
        panic!(
            "broke \"{}\" at step {}: {}\n{}",
            failure.violation.invariant,
            failure.step,
            failure.violation.detail,
            outcome.schedule.join("\n")
        );
    }
}

use Op::{
    Advance, Connect, Create, Delete, Disconnect, Expire, Kill, Leave, Next, Pause, Resume, Search,
    Takeover,
};

/// The partner moves on while the user is away in grace; the user comes back to the node
/// they dropped from, which must not bring the closed room back.
#[tokio::test(start_paused = true)]
async fn a_user_back_on_the_node_they_left_keeps_no_closed_room() {
    check(&[
        Create { user: 5, via: 1 },
        Create { user: 7, via: 0 },
        Connect { user: 7, node: 1 },
        Connect { user: 5, node: 0 },
        Search { user: 5 },
        Search { user: 7 },
        Disconnect { user: 5 },
        Next { user: 7 },
        Connect { user: 5, node: 0 },
    ])
    .await;
}

/// As above, but the user comes back elsewhere first, then takes over on the old node.
#[tokio::test(start_paused = true)]
async fn a_takeover_on_the_node_left_keeps_no_closed_room() {
    check(&[
        Create { user: 5, via: 1 },
        Create { user: 7, via: 0 },
        Connect { user: 7, node: 1 },
        Connect { user: 5, node: 0 },
        Search { user: 5 },
        Search { user: 7 },
        Disconnect { user: 5 },
        Next { user: 7 },
        Connect { user: 5, node: 1 },
        Takeover { user: 5, node: 0 },
    ])
    .await;
}

/// A searcher on a crashed node is matched before the crash is noticed, then reconnects
/// elsewhere: they must never be in a room they were not told of.
#[tokio::test(start_paused = true)]
async fn a_ghost_match_is_never_a_room_its_user_did_not_hear_of() {
    check(&[
        Create { user: 1, via: 2 },
        Create { user: 5, via: 2 },
        Connect { user: 5, node: 2 },
        Connect { user: 1, node: 1 },
        Search { user: 1 },
        Kill { node: 1 },
        Search { user: 5 },
        Connect { user: 1, node: 2 },
    ])
    .await;
}

/// A searcher whose session ran out is not paired, even before the expiry sweep.
#[tokio::test(start_paused = true)]
async fn an_expired_searcher_is_never_paired() {
    check(&[
        Create { user: 5, via: 2 },
        Connect { user: 5, node: 2 },
        Create { user: 8, via: 2 },
        Connect { user: 8, node: 0 },
        Search { user: 8 },
        Expire { user: 8 },
        Search { user: 5 },
    ])
    .await;
}

/// A `replaced` notice that arrives late never closes a socket newer than the claim.
#[tokio::test(start_paused = true)]
async fn a_late_replace_never_closes_the_newest_socket() {
    check(&[
        Create { user: 5, via: 2 },
        Connect { user: 5, node: 0 },
        Pause { node: 0 },
        Takeover { user: 5, node: 1 },
        Disconnect { user: 5 },
        Connect { user: 5, node: 0 },
        Resume { node: 0 },
    ])
    .await;
}

/// A user who drops while their `match:found` is in flight gets the grace like any drop:
/// the partner hears `partner:disconnected`, then the room closes.
#[tokio::test(start_paused = true)]
async fn a_drop_while_the_match_is_in_flight_is_waited_for() {
    check(&[
        Create { user: 7, via: 0 },
        Connect { user: 7, node: 0 },
        Search { user: 7 },
        Create { user: 8, via: 0 },
        Connect { user: 8, node: 2 },
        Pause { node: 0 },
        Search { user: 8 },
        Search { user: 7 },
        Disconnect { user: 7 },
    ])
    .await;
}

/// A searcher on a node that crashes reconnects elsewhere before the crash is noticed: the
/// dead socket's search ends (nothing replaced it there, and the dead node's claim no longer
/// lists the user).
#[tokio::test(start_paused = true)]
async fn a_dead_sockets_search_ends_when_its_user_is_back_elsewhere() {
    check(&[
        Create { user: 4, via: 1 },
        Connect { user: 4, node: 1 },
        Search { user: 4 },
        Kill { node: 1 },
        Connect { user: 4, node: 0 },
    ])
    .await;
}

/// As above, with the user moving on once more before the check: the node they are on
/// now ends the search.
#[tokio::test(start_paused = true)]
async fn a_dead_sockets_search_ends_after_a_second_move() {
    check(&[
        Create { user: 0, via: 0 },
        Connect { user: 0, node: 2 },
        Search { user: 0 },
        Kill { node: 2 },
        Connect { user: 0, node: 1 },
        Takeover { user: 0, node: 0 },
    ])
    .await;
}

/// A search survives a takeover from a live node even when that node dies afterwards.
#[tokio::test(start_paused = true)]
async fn a_search_handed_over_by_a_takeover_outlives_the_old_node() {
    check(&[
        Create { user: 2, via: 1 },
        Connect { user: 2, node: 2 },
        Search { user: 2 },
        Takeover { user: 2, node: 1 },
        Kill { node: 2 },
    ])
    .await;
}

/// A user back elsewhere after their node died hears their open room again, even with the
/// partner away: a repeated announcement, no new match.
#[tokio::test(start_paused = true)]
async fn a_room_announced_again_on_reconnect_is_no_ghost_match() {
    check(&[
        Create { user: 2, via: 2 },
        Create { user: 9, via: 2 },
        Connect { user: 2, node: 0 },
        Next { user: 2 },
        Connect { user: 9, node: 0 },
        Search { user: 9 },
        Kill { node: 0 },
        Advance { millis: 2_896 },
        Advance { millis: 9_500 },
        Connect { user: 2, node: 1 },
    ])
    .await;
}

/// A session deleted through the node of a replaced socket (its replace held on a paused
/// bus) ends the newer socket on the claiming node too.
#[tokio::test(start_paused = true)]
async fn a_delete_through_the_old_node_ends_the_newer_socket() {
    check(&[
        Create { user: 1, via: 1 },
        Pause { node: 1 },
        Connect { user: 1, node: 1 },
        Takeover { user: 1, node: 2 },
        Delete { user: 1, via: 1 },
    ])
    .await;
}

/// A match made on the old node of a user who moved (its replace held on a paused bus)
/// follows the user to their new node.
#[tokio::test(start_paused = true)]
async fn a_room_opened_on_the_old_node_follows_the_moved_user() {
    check(&[
        Create { user: 1, via: 1 },
        Create { user: 3, via: 1 },
        Connect { user: 3, node: 1 },
        Pause { node: 1 },
        Takeover { user: 3, node: 0 },
        Connect { user: 1, node: 1 },
        Search { user: 3 },
        Search { user: 1 },
    ])
    .await;
}

/// A search handed over by a late replace does not make a user who is in a room since
/// "being matched" (their `match:next` works).
#[tokio::test(start_paused = true)]
async fn a_handed_search_never_outlives_the_match() {
    check(&[
        Create { user: 3, via: 1 },
        Create { user: 7, via: 2 },
        Connect { user: 3, node: 1 },
        Pause { node: 1 },
        Search { user: 3 },
        Takeover { user: 3, node: 0 },
        Connect { user: 7, node: 0 },
        Search { user: 7 },
        Op::Quiesce,
        Next { user: 3 },
    ])
    .await;
}

/// A node that missed events for a user it still took as connected (their replace held on
/// a paused bus) does not bring back a room that closed meanwhile.
#[tokio::test(start_paused = true)]
async fn a_socket_back_on_a_node_that_missed_events_keeps_no_closed_room() {
    check(&[
        Create { user: 7, via: 0 },
        Create { user: 9, via: 1 },
        Pause { node: 0 },
        Connect { user: 9, node: 0 },
        Connect { user: 7, node: 0 },
        Search { user: 7 },
        Search { user: 9 },
        Disconnect { user: 9 },
        Takeover { user: 7, node: 1 },
        Disconnect { user: 7 },
        Connect { user: 9, node: 1 },
        Leave { user: 9 },
        Connect { user: 7, node: 0 },
    ])
    .await;
}
