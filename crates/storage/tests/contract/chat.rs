//! The contract every [`ChatStore`] keeps: the shared search queue and rooms (the user → node
//! directory is the [`chat_storage::Cluster`]'s, in `cluster.rs`).

use std::collections::BTreeSet;
use std::time::Duration;

use chat_domain::{ProfileField, RoomId, SearchFilters, Searcher, Timestamp, UserId};
use chat_storage::{ChatStore, RoomRecord, SessionPatch, SessionStore};
use futures_util::future::join_all;

use crate::common::{TTL, eventually, user_seen};

macro_rules! chat_suite {
    ($backend:ident, $open:path, [$($check:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $check() {
                    if let Some(store) = $open().await {
                        super::$check(&store).await;
                    }
                }
            )*
        }
    };
}

/// Every check, for each store.
macro_rules! every_check {
    ($backend:ident, $open:path) => {
        chat_suite!(
            $backend,
            $open,
            [
                search_pairs_the_oldest_compatible_searcher,
                concurrent_searches_pair_each_searcher_once,
                filters_hold_both_ways,
                the_avoided_partner_is_never_paired,
                blocked_users_are_never_paired,
                cancel_takes_a_searcher_out_once,
                rooms_open_and_close_exactly_once,
                a_new_room_survives_closing_the_old_one,
                a_searcher_whose_session_ran_out_is_never_paired,
            ]
        );
    };
}

every_check!(memory, crate::common::memory_store);
#[cfg(feature = "redis")]
every_check!(redis, crate::common::redis_store);
#[cfg(feature = "redis")]
every_check!(failover, crate::common::failover_store);
#[cfg(feature = "redis")]
every_check!(redis_cluster, crate::common::cluster_store);
#[cfg(feature = "redis")]
every_check!(redis_tls, crate::common::tls_store);

/// A searcher with `gender` on its profile asking for `wanted`.
fn searcher(gender: &str, wanted: Option<&str>) -> Searcher {
    let mut user = user_seen(Duration::ZERO).public();
    user.gender = ProfileField::parse("gender", gender).ok();
    Searcher {
        user,
        filters: SearchFilters {
            gender: wanted.and_then(|wanted| ProfileField::parse("gender", wanted).ok()),
            ..SearchFilters::default()
        },
        avoid: None,
        blocked: Vec::new(),
    }
}

/// The partner `store.search(searcher)` returned, by id.
async fn search<S: ChatStore>(store: &S, searcher: &Searcher) -> Option<UserId> {
    store
        .search(searcher)
        .await
        .unwrap()
        .map(|partner| partner.user.id)
}

fn room_of(first: &Searcher, second: &Searcher) -> RoomRecord {
    let member = |searcher: &Searcher| (searcher.user.id.clone(), searcher.user.username.clone());
    RoomRecord {
        room_id: RoomId::generate(),
        members: [member(first), member(second)],
    }
}

async fn search_pairs_the_oldest_compatible_searcher<S: ChatStore>(store: &S) {
    let (first, second, third) = (
        searcher("f", None),
        searcher("m", None),
        searcher("x", None),
    );
    assert_eq!(search(store, &first).await, None, "nobody waits: queued");
    // A repeated search replaces the entry instead of pairing the user with themselves.
    assert_eq!(search(store, &first).await, None);
    assert_eq!(search(store, &second).await, Some(first.user.id.clone()));
    assert_eq!(
        search(store, &third).await,
        None,
        "the queue is empty again"
    );
    let fourth = searcher("m", None);
    let returned = store.search(&fourth).await.unwrap();
    assert_eq!(
        returned,
        Some(third),
        "the partner comes back as it searched"
    );
}

async fn concurrent_searches_pair_each_searcher_once<S: ChatStore>(store: &S) {
    let searchers: Vec<Searcher> = (0..60)
        .map(|index| searcher(["f", "m"][index % 2], None))
        .collect();
    let outcomes =
        join_all(searchers.iter().map(|searcher| async move {
            (searcher.user.id.clone(), search(store, searcher).await)
        }))
        .await;
    let mut paired = BTreeSet::new();
    let mut queued = Vec::new();
    for (me, partner) in outcomes {
        match partner {
            Some(partner) => {
                assert_ne!(partner, me, "paired with themselves");
                assert!(paired.insert(me), "paired twice");
                assert!(paired.insert(partner), "paired twice");
            }
            None => queued.push(me),
        }
    }
    let mut still_queued = 0;
    for user in &queued {
        if store.cancel_search(user).await.unwrap() {
            still_queued += 1;
        }
    }
    assert_eq!(paired.len() + still_queued, searchers.len());
    assert_eq!(
        still_queued, 0,
        "an even number of searchers without filters all pair"
    );
}

async fn filters_hold_both_ways<S: ChatStore>(store: &S) {
    let wants_m = searcher("f", Some("m"));
    let female = searcher("f", None);
    let male_wants_m = searcher("m", Some("m"));
    let male = searcher("m", None);
    assert_eq!(search(store, &wants_m).await, None);
    assert_eq!(
        search(store, &female).await,
        None,
        "wants_m does not accept her"
    );
    assert_eq!(
        search(store, &male_wants_m).await,
        None,
        "he does not accept either woman"
    );
    // Filters match whatever the case.
    let shouting = searcher("M", None);
    assert_eq!(
        search(store, &shouting).await,
        Some(wants_m.user.id.clone())
    );
    assert_eq!(search(store, &male).await, Some(female.user.id.clone()));
    assert!(store.cancel_search(&male_wants_m.user.id).await.unwrap());
}

/// A user reported (or reporting) is blocked both ways, whichever waits, and alongside a
/// `match:next` avoidance.
async fn blocked_users_are_never_paired<S: ChatStore>(store: &S) {
    // Two women who want a man wait, the reported one first.
    let (reported, other) = (searcher("f", Some("m")), searcher("f", Some("m")));
    let mut reporter = searcher("m", None);
    reporter.blocked = vec![UserId::generate(), reported.user.id.clone()];
    assert_eq!(search(store, &reported).await, None);
    assert_eq!(search(store, &other).await, None);
    assert_eq!(
        search(store, &reporter).await,
        Some(other.user.id.clone()),
        "the newcomer's block skips the older searcher"
    );
    assert_eq!(
        search(store, &reporter).await,
        None,
        "he waits rather than meet her"
    );
    assert!(store.cancel_search(&reporter.user.id).await.unwrap());
    // From the waiting side: her own list blocks the newcomer.
    let mut waiting = searcher("f", Some("m"));
    let newcomer = searcher("m", None);
    waiting.blocked = vec![newcomer.user.id.clone()];
    assert!(store.cancel_search(&reported.user.id).await.unwrap());
    assert_eq!(search(store, &waiting).await, None);
    assert_eq!(search(store, &newcomer).await, None, "her block holds");
    let free = searcher("f", None);
    assert_eq!(search(store, &free).await, Some(newcomer.user.id.clone()));
    assert!(store.cancel_search(&waiting.user.id).await.unwrap());
}

async fn the_avoided_partner_is_never_paired<S: ChatStore>(store: &S) {
    // Two women who want a man wait, the one just left first.
    let (left, other) = (searcher("f", Some("m")), searcher("f", Some("m")));
    assert_eq!(search(store, &left).await, None);
    assert_eq!(search(store, &other).await, None);
    let mut leaving = searcher("m", None);
    leaving.avoid = Some(left.user.id.clone());
    assert_eq!(
        search(store, &leaving).await,
        Some(other.user.id.clone()),
        "skips the avoided"
    );
    assert_eq!(
        search(store, &leaving).await,
        None,
        "only she fits, and he waits rather than meet her again"
    );
    // Whoever else fits takes him; she still waits.
    let newcomer = searcher("f", None);
    assert_eq!(
        search(store, &newcomer).await,
        Some(leaving.user.id.clone())
    );
    assert!(store.cancel_search(&left.user.id).await.unwrap());

    // Avoidance holds from the waiting side too, even when nobody else fits.
    let y = searcher("m", None);
    let mut quitter = searcher("f", Some("m"));
    quitter.avoid = Some(y.user.id.clone());
    let z = searcher("f", Some("m"));
    assert_eq!(search(store, &quitter).await, None);
    assert_eq!(search(store, &z).await, None);
    assert_eq!(search(store, &y).await, Some(z.user.id.clone()));
    assert_eq!(
        search(store, &y).await,
        None,
        "the quitter avoids him: he waits"
    );
    assert!(store.cancel_search(&quitter.user.id).await.unwrap());
    assert!(store.cancel_search(&y.user.id).await.unwrap());

    // The two of a `match:next`, each avoiding the other, both wait.
    let (mut first, mut second) = (searcher("f", None), searcher("m", None));
    first.avoid = Some(second.user.id.clone());
    second.avoid = Some(first.user.id.clone());
    assert_eq!(search(store, &first).await, None);
    assert_eq!(search(store, &second).await, None);
    assert!(store.cancel_search(&first.user.id).await.unwrap());
    assert!(store.cancel_search(&second.user.id).await.unwrap());
}

async fn cancel_takes_a_searcher_out_once<S: ChatStore>(store: &S) {
    let (first, second) = (searcher("f", None), searcher("m", None));
    assert_eq!(search(store, &first).await, None);
    assert!(store.cancel_search(&first.user.id).await.unwrap());
    assert!(
        !store.cancel_search(&first.user.id).await.unwrap(),
        "cancelled once"
    );
    assert!(!store.cancel_search(&UserId::generate()).await.unwrap());
    assert_eq!(
        search(store, &second).await,
        None,
        "the cancelled searcher is gone"
    );
    assert!(store.cancel_search(&second.user.id).await.unwrap());
}

async fn rooms_open_and_close_exactly_once<S: ChatStore>(store: &S) {
    let (first, second) = (searcher("f", None), searcher("m", None));
    let room = room_of(&first, &second);
    assert_eq!(store.room(&room.room_id).await.unwrap(), None);
    store.open_room(&room).await.unwrap();
    assert_eq!(store.room(&room.room_id).await.unwrap(), Some(room.clone()));
    for member in [&first, &second] {
        assert_eq!(
            store.room_of(&member.user.id).await.unwrap(),
            Some(room.clone())
        );
    }
    assert_eq!(store.room_of(&UserId::generate()).await.unwrap(), None);
    let partner = room.partner_of(&first.user.id).map(|(id, _)| id.clone());
    assert_eq!(partner, Some(second.user.id.clone()));

    let closes = join_all((0..8).map(|_| store.close_room(&room))).await;
    let closed: Vec<bool> = closes.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        closed.iter().filter(|closed| **closed).count(),
        1,
        "{closed:?}"
    );
    assert!(!store.close_room(&room).await.unwrap());
    assert_eq!(store.room(&room.room_id).await.unwrap(), None);
    for member in [&first, &second] {
        assert_eq!(store.room_of(&member.user.id).await.unwrap(), None);
    }
}

async fn a_new_room_survives_closing_the_old_one<S: ChatStore>(store: &S) {
    let (first, second, third) = (
        searcher("f", None),
        searcher("m", None),
        searcher("x", None),
    );
    let old = room_of(&first, &second);
    store.open_room(&old).await.unwrap();
    let new = room_of(&first, &third);
    store.open_room(&new).await.unwrap();
    assert!(store.close_room(&old).await.unwrap());
    assert_eq!(
        store.room_of(&first.user.id).await.unwrap(),
        Some(new.clone())
    );
    assert_eq!(
        store.room_of(&third.user.id).await.unwrap(),
        Some(new.clone())
    );
    assert_eq!(store.room_of(&second.user.id).await.unwrap(), None);
    assert!(new.has_member(&third.user.id) && !new.has_member(&second.user.id));
    assert!(store.close_room(&new).await.unwrap());
}

/// A searcher whose session's TTL ran out before any sweep ended it is skipped (and leaves
/// the queue); one active since its search is paired as usual.
async fn a_searcher_whose_session_ran_out_is_never_paired<S: ChatStore + SessionStore>(store: &S) {
    // Both searched with 1.5 s of their session left.
    let almost = TTL - Duration::from_millis(1500);
    let (gone, active, newcomer, later) = (
        user_seen(almost),
        user_seen(almost),
        user_seen(Duration::ZERO),
        user_seen(Duration::ZERO),
    );
    for user in [&gone, &active, &newcomer, &later] {
        store.create(user).await.unwrap();
    }
    let as_searcher = |user: &chat_domain::GuestUser| Searcher {
        user: user.public(),
        filters: SearchFilters::default(),
        avoid: None,
        blocked: Vec::new(),
    };
    let avoiding = |user: &chat_domain::GuestUser, avoid: &chat_domain::GuestUser| Searcher {
        avoid: Some(avoid.id.clone()),
        blocked: Vec::new(),
        ..as_searcher(user)
    };
    assert_eq!(search(store, &as_searcher(&gone)).await, None);
    assert_eq!(search(store, &avoiding(&active, &gone)).await, None);
    // `active` is active again; `gone` is not, and its TTL runs out.
    let touch = SessionPatch {
        touch: Some(Timestamp::now()),
        ..SessionPatch::default()
    };
    store.update(&active.id, touch).await.unwrap();
    eventually("gone's session to run out", || async {
        store.get(&gone.id).await.unwrap().is_none()
    })
    .await;
    assert_eq!(
        search(store, &avoiding(&newcomer, &active)).await,
        None,
        "the only other one queued ran out: not paired, the newcomer waits"
    );
    assert!(
        !store.cancel_search(&gone.id).await.unwrap(),
        "the search took the one that ran out out of the queue"
    );
    assert_eq!(
        search(store, &as_searcher(&later)).await,
        Some(active.id.clone()),
        "the oldest live searcher is paired, though its search was older than its TTL"
    );
}
