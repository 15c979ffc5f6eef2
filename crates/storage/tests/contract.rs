//! The contract every [`SessionStore`] keeps, run against each implementation; the
//! [`ChatStore`](chat_storage::ChatStore) contract (`contract/chat.rs`) against the same three
//! stores, and the [`Cluster`](chat_storage::Cluster) contract (`contract/cluster.rs`) against
//! the in-process and the Redis driver.
//!
//! Each check is a generic async function; `contract_suite!` turns the list of checks into one
//! `#[tokio::test]` per backend. Redis-backed stores share one private `redis-server` per test
//! binary (and one three-master Redis Cluster, and one TLS-only server), each test under its
//! own key prefix, so the tests run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "contract/chat.rs"]
mod chat;
#[path = "contract/cluster.rs"]
mod cluster;
#[path = "contract/moderation.rs"]
mod moderation;

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use chat_domain::{FileId, FileType, ProfileField, RoomId, Stats, Timestamp, UserId, Username};
use chat_storage::{
    FileMeta, FileRefusal, SessionPatch, SessionStore, StorageError, StorageMode, StoredFile,
};

use common::{FILE_LIMITS, TTL, eventually, user_seen};

macro_rules! contract_suite {
    ($backend:ident, $open:path) => {
        contract_suite!(@tests $backend, $open, [
            create_get_update_delete,
            touch_slides_expiry,
            expired_sessions_are_invisible_and_swept_once,
            concurrent_sweeps_split_the_expired,
            stats_follow_updates_and_deletes,
            online_users_pages_without_gaps_or_duplicates,
            rate_limits_in_fixed_windows,
            files_live_in_their_room_until_expiry,
            a_room_holds_at_most_its_bound_of_live_files,
            concurrent_uploads_never_pass_the_room_bound,
            memory_holds_at_most_its_bound_of_files,
            a_patch_for_another_socket_changes_nothing,
            searching_is_never_marked_over_a_chat,
        ]);
    };
    (@tests $backend:ident, $open:path, [$($check:ident),* $(,)?]) => {
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

contract_suite!(memory, crate::common::memory_store);
#[cfg(feature = "redis")]
contract_suite!(redis, crate::common::redis_store);
#[cfg(feature = "redis")]
contract_suite!(failover, crate::common::failover_store);
#[cfg(feature = "redis")]
contract_suite!(redis_cluster, crate::common::cluster_store);
#[cfg(feature = "redis")]
contract_suite!(redis_tls, crate::common::tls_store);

async fn create_get_update_delete<S: SessionStore>(store: &S) {
    let user = user_seen(Duration::ZERO);
    store.create(&user).await.unwrap();
    assert_eq!(store.get(&user.id).await.unwrap(), Some(user.clone()));

    let patch = SessionPatch {
        username: Some(Username::parse("Renamed_1").unwrap()),
        gender: Some(Some(ProfileField::parse("gender", "female").unwrap())),
        is_online: Some(true),
        socket: Some(Some(("socket-1".into(), Timestamp::now()))),
        ..SessionPatch::default()
    };
    let mut expected = user.clone();
    patch.apply(&mut expected);
    let updated = store.update(&user.id, patch).await.unwrap();
    assert_eq!(updated, Some(expected.clone()));
    assert_eq!(store.get(&user.id).await.unwrap(), Some(expected.clone()));

    let clear = SessionPatch {
        gender: Some(None),
        socket: Some(None),
        ..SessionPatch::default()
    };
    let cleared = store.update(&user.id, clear).await.unwrap().unwrap();
    assert_eq!(
        (cleared.gender, cleared.socket_id, cleared.connected_at),
        (None, None, None)
    );

    let stranger = UserId::generate();
    assert_eq!(store.get(&stranger).await.unwrap(), None);
    assert_eq!(
        store
            .update(&stranger, SessionPatch::default())
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.delete(&stranger).await.unwrap(), None);

    let deleted = store.delete(&user.id).await.unwrap();
    assert_eq!(deleted.map(|deleted| deleted.id), Some(user.id.clone()));
    assert_eq!(store.get(&user.id).await.unwrap(), None);
    assert_eq!(
        store
            .update(&user.id, SessionPatch::default())
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.delete(&user.id).await.unwrap(), None);
}

async fn touch_slides_expiry<S: SessionStore>(store: &S) {
    // Both would expire in 2 s; touching one moves its expiry a whole TTL ahead.
    let touched = user_seen(TTL - Duration::from_secs(2));
    let untouched = user_seen(TTL - Duration::from_secs(2));
    store.create(&touched).await.unwrap();
    store.create(&untouched).await.unwrap();
    let now = Timestamp::now();
    let patch = SessionPatch {
        touch: Some(now),
        ..SessionPatch::default()
    };
    let updated = store.update(&touched.id, patch).await.unwrap().unwrap();
    assert_eq!(updated.last_seen, now);

    let swept = store
        .sweep_expired(now.plus(Duration::from_secs(3)))
        .await
        .unwrap();
    assert_eq!(swept, vec![untouched.id.clone()]);
    assert!(store.get(&touched.id).await.unwrap().is_some());
    assert_eq!(store.get(&untouched.id).await.unwrap(), None);
}

async fn expired_sessions_are_invisible_and_swept_once<S: SessionStore>(store: &S) {
    let live = user_seen(Duration::ZERO);
    let long_gone = user_seen(TTL + Duration::from_secs(1));
    let soon_gone = user_seen(TTL - Duration::from_millis(700));
    for user in [&live, &long_gone, &soon_gone] {
        store.create(user).await.unwrap();
    }
    assert_eq!(store.get(&long_gone.id).await.unwrap(), None);
    assert_eq!(
        store
            .update(&long_gone.id, SessionPatch::default())
            .await
            .unwrap(),
        None
    );
    assert!(store.get(&soon_gone.id).await.unwrap().is_some());
    assert_eq!(store.stats(Timestamp::now()).await.unwrap().total_users, 2);

    eventually("the session to expire", || async {
        store.get(&soon_gone.id).await.unwrap().is_none()
    })
    .await;
    assert_eq!(store.stats(Timestamp::now()).await.unwrap().total_users, 1);

    let swept: BTreeSet<UserId> = store
        .sweep_expired(Timestamp::now())
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        swept,
        BTreeSet::from([long_gone.id.clone(), soon_gone.id.clone()])
    );
    assert_eq!(
        store.sweep_expired(Timestamp::now()).await.unwrap(),
        Vec::<UserId>::new()
    );
    assert!(store.get(&live.id).await.unwrap().is_some());
}

async fn concurrent_sweeps_split_the_expired<S: SessionStore>(store: &S) {
    let mut expired = BTreeSet::new();
    for _ in 0..40 {
        let user = user_seen(TTL + Duration::from_secs(1));
        store.create(&user).await.unwrap();
        expired.insert(user.id);
    }
    let now = Timestamp::now();
    let (first, second) = tokio::join!(store.sweep_expired(now), store.sweep_expired(now));
    let (first, second) = (first.unwrap(), second.unwrap());
    let union: BTreeSet<UserId> = first.iter().chain(&second).cloned().collect();
    assert_eq!(
        first.len() + second.len(),
        expired.len(),
        "an id was returned twice"
    );
    assert_eq!(union, expired);
}

async fn stats_follow_updates_and_deletes<S: SessionStore>(store: &S) {
    let check = |expected: [u64; 6]| async move {
        let stats = store.stats(Timestamp::now()).await.unwrap();
        let [
            total_users,
            online_users,
            active_users,
            available_users,
            connected_users,
            users_in_chat,
        ] = expected;
        let expected = Stats {
            total_users,
            online_users,
            active_users,
            available_users,
            connected_users,
            users_in_chat,
        };
        assert_eq!(stats, expected);
    };
    let [first, second, third] = [(); 3].map(|()| user_seen(Duration::ZERO));
    let idle = user_seen(Stats::ACTIVE_WINDOW + Duration::from_secs(60));
    for user in [&first, &second, &third, &idle] {
        store.create(user).await.unwrap();
    }
    check([4, 0, 3, 0, 0, 0]).await;

    let online_searching = SessionPatch {
        is_online: Some(true),
        is_searching: Some(true),
        ..SessionPatch::default()
    };
    store
        .update(&first.id, online_searching.clone())
        .await
        .unwrap();
    store.update(&second.id, online_searching).await.unwrap();
    store
        .update(
            &third.id,
            SessionPatch {
                is_online: Some(true),
                ..SessionPatch::default()
            },
        )
        .await
        .unwrap();
    check([4, 3, 3, 2, 0, 0]).await;

    for (user, partner) in [(&first, &second), (&second, &first)] {
        let patch = SessionPatch {
            is_searching: Some(false),
            chat: Some(Some(partner.id.clone())),
            ..SessionPatch::default()
        };
        store.update(&user.id, patch).await.unwrap();
    }
    check([4, 3, 3, 0, 1, 2]).await;

    store
        .update(
            &idle.id,
            SessionPatch {
                touch: Some(Timestamp::now()),
                ..SessionPatch::default()
            },
        )
        .await
        .unwrap();
    check([4, 3, 4, 0, 1, 2]).await;

    store
        .update(
            &third.id,
            SessionPatch {
                is_online: Some(false),
                ..SessionPatch::default()
            },
        )
        .await
        .unwrap();
    store.delete(&first.id).await.unwrap();
    check([3, 1, 3, 0, 0, 1]).await;
    store
        .update(
            &second.id,
            SessionPatch {
                chat: Some(None),
                ..SessionPatch::default()
            },
        )
        .await
        .unwrap();
    check([3, 1, 3, 0, 0, 0]).await;
}

async fn online_users_pages_without_gaps_or_duplicates<S: SessionStore>(store: &S) {
    let mut online = BTreeSet::new();
    for index in 0..23_u32 {
        let user = user_seen(Duration::ZERO);
        store.create(&user).await.unwrap();
        if !index.is_multiple_of(4) {
            store
                .update(
                    &user.id,
                    SessionPatch {
                        is_online: Some(true),
                        ..SessionPatch::default()
                    },
                )
                .await
                .unwrap();
            online.insert(user.id.to_string());
        }
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.online_users(5, cursor.as_deref()).await.unwrap();
        pages += 1;
        assert!(page.users.len() <= 5);
        assert!(page.users.iter().all(|user| user.is_online));
        seen.extend(page.users.iter().map(|user| user.id.to_string()));
        match page.next_cursor {
            Some(next) => {
                assert_eq!(page.users.len(), 5, "only the last page may be short");
                assert_eq!(Some(&next), seen.last());
                cursor = Some(next);
            }
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    let ordered: Vec<String> = online.iter().cloned().collect();
    assert_eq!(
        seen, ordered,
        "pages must cover every online user once, in id order"
    );

    let everything = store.online_users(100, None).await.unwrap();
    assert_eq!(everything.users.len(), online.len());
    assert_eq!(everything.next_cursor, None);
    let first = store.online_users(1, None).await.unwrap();
    assert_eq!(first.users.len(), 1);
    assert_eq!(first.next_cursor.as_ref(), online.first());
}

async fn rate_limits_in_fixed_windows<S: SessionStore>(store: &S) {
    let key = format!("ip:{}", UserId::generate());
    let window = Duration::from_secs(1);
    for remaining in [2, 1, 0] {
        let decision = store.hit_rate_limit(&key, 3, window).await.unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.remaining, remaining);
    }
    let denied = store.hit_rate_limit(&key, 3, window).await.unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    assert!(
        denied.retry_after > Duration::ZERO && denied.retry_after <= window,
        "{denied:?}"
    );
    assert!(
        store
            .hit_rate_limit("another key", 3, window)
            .await
            .unwrap()
            .allowed
    );

    tokio::time::sleep(denied.retry_after).await;
    eventually("a new window", || async {
        store.hit_rate_limit(&key, 3, window).await.unwrap().allowed
    })
    .await;
}

fn file(room: &RoomId, lives: Duration, content: &'static [u8]) -> StoredFile {
    let meta = FileMeta {
        file_id: FileId::generate(),
        room_id: room.clone(),
        uploader: UserId::generate(),
        filename: "note.txt".into(),
        file_type: FileType::Document,
        mime: "text/plain; charset=utf-8".into(),
        size: content.len() as u64,
        duration: Some(1.5),
        expires_at: Timestamp::now().plus(lives),
    };
    StoredFile {
        meta,
        bytes: Bytes::from_static(content),
    }
}

async fn files_live_in_their_room_until_expiry<S: SessionStore>(store: &S) {
    let (room, other_room) = (RoomId::generate(), RoomId::generate());
    let hour = Duration::from_secs(3600);
    let first = file(&room, hour, b"first \x00\xff bytes");
    let second = file(&room, hour, b"second");
    let elsewhere = file(&other_room, hour, b"elsewhere");
    let short_lived = file(&other_room, Duration::from_millis(600), b"short");
    for stored in [&first, &second, &elsewhere, &short_lived] {
        store.put_file(stored.clone()).await.unwrap();
    }
    assert_eq!(
        store.file_meta(&first.meta.file_id).await.unwrap(),
        Some(first.meta.clone())
    );
    assert_eq!(
        store.get_file(&first.meta.file_id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.get_file(&FileId::generate()).await.unwrap(), None);
    assert_eq!(store.file_meta(&FileId::generate()).await.unwrap(), None);

    assert_eq!(store.delete_room_files(&room).await.unwrap(), 2);
    assert_eq!(store.get_file(&first.meta.file_id).await.unwrap(), None);
    assert_eq!(store.file_meta(&second.meta.file_id).await.unwrap(), None);
    assert_eq!(
        store.get_file(&elsewhere.meta.file_id).await.unwrap(),
        Some(elsewhere.clone())
    );
    assert_eq!(store.delete_room_files(&room).await.unwrap(), 0);

    let short_id = short_lived.meta.file_id.clone();
    eventually("the file to expire", || async {
        store.get_file(&short_id).await.unwrap().is_none()
    })
    .await;
    assert_eq!(store.file_meta(&short_id).await.unwrap(), None);
    assert_eq!(store.delete_room_files(&other_room).await.unwrap(), 1);
}

/// A file of `size` bytes.
fn sized(room: &RoomId, lives: Duration, size: usize) -> StoredFile {
    let mut stored = file(room, lives, b"");
    stored.meta.size = size as u64;
    stored.bytes = Bytes::from(vec![b'x'; size]);
    stored
}

/// Whether `result` is the refusal of a file that would pass the room's bound.
fn room_full(result: Result<(), StorageError>) -> bool {
    matches!(
        result,
        Err(StorageError::FileRefused(FileRefusal::RoomFull { limit })) if limit == FILE_LIMITS.max_room_bytes
    )
}

/// Every file of `files` is still stored, bytes and all.
async fn all_stored<S: SessionStore>(store: &S, files: &[StoredFile]) {
    for stored in files {
        assert_eq!(
            store.get_file(&stored.meta.file_id).await.unwrap().as_ref(),
            Some(stored),
            "{} was kept",
            stored.meta.file_id
        );
    }
}

async fn a_room_holds_at_most_its_bound_of_live_files<S: SessionStore>(store: &S) {
    // The bound is 1000 bytes per room (`common::FILE_LIMITS`).
    let (room, other_room) = (RoomId::generate(), RoomId::generate());
    let hour = Duration::from_secs(3600);
    let kept = [sized(&room, hour, 400), sized(&room, hour, 400)];
    for stored in &kept {
        store.put_file(stored.clone()).await.unwrap();
    }
    let over = sized(&room, hour, 201);
    assert!(
        room_full(store.put_file(over.clone()).await),
        "800 + 201 > 1000"
    );
    // A refused file is not stored, and nothing stored before it is lost.
    assert_eq!(store.get_file(&over.meta.file_id).await.unwrap(), None);
    assert_eq!(store.file_meta(&over.meta.file_id).await.unwrap(), None);
    all_stored(store, &kept).await;
    // Exactly the bound fits; another room has a budget of its own.
    let last = sized(&room, hour, 200);
    store.put_file(last.clone()).await.unwrap();
    assert!(room_full(store.put_file(sized(&room, hour, 1)).await));
    let elsewhere = sized(&other_room, hour, 1000);
    store.put_file(elsewhere.clone()).await.unwrap();
    all_stored(store, &[kept[0].clone(), kept[1].clone(), last]).await;

    // Deleted files free their room's budget (and only theirs).
    assert_eq!(store.delete_room_files(&room).await.unwrap(), 3);
    let whole = sized(&room, hour, 1000);
    store.put_file(whole.clone()).await.unwrap();
    assert!(room_full(store.put_file(sized(&other_room, hour, 1)).await));
    all_stored(store, &[whole, elsewhere]).await;

    // Expired files free it too.
    let short_room = RoomId::generate();
    let short = sized(&short_room, Duration::from_millis(600), 900);
    store.put_file(short.clone()).await.unwrap();
    let long = sized(&short_room, hour, 100);
    store.put_file(long.clone()).await.unwrap();
    assert!(room_full(store.put_file(sized(&short_room, hour, 1)).await));
    let short_id = short.meta.file_id.clone();
    eventually("the file to expire", || async {
        store.get_file(&short_id).await.unwrap().is_none()
    })
    .await;
    let after = sized(&short_room, hour, 900);
    store.put_file(after.clone()).await.unwrap();
    all_stored(store, &[long, after]).await;
}

async fn concurrent_uploads_never_pass_the_room_bound<S: SessionStore>(store: &S) {
    // Ten uploads of 300 bytes at once into a room of 1000 bytes: exactly three fit.
    let room = RoomId::generate();
    let hour = Duration::from_secs(3600);
    let files: Vec<StoredFile> = (0..10).map(|_| sized(&room, hour, 300)).collect();
    let results =
        futures_util::future::join_all(files.iter().map(|stored| store.put_file(stored.clone())))
            .await;
    let mut stored = Vec::new();
    for (file, result) in files.iter().zip(results) {
        match result {
            Ok(()) => stored.push(file.clone()),
            refused => assert!(room_full(refused), "refused as over the room's bound"),
        }
    }
    assert_eq!(stored.len(), 3);
    all_stored(store, &stored).await;
    for file in &files {
        let found = store.get_file(&file.meta.file_id).await.unwrap().is_some();
        assert_eq!(found, stored.contains(file));
    }
    assert_eq!(store.delete_room_files(&room).await.unwrap(), 3);
}

async fn memory_holds_at_most_its_bound_of_files<S: SessionStore>(store: &S) {
    // Four rooms of 900 bytes are 3600 bytes: past the memory bound of 3000. A store that
    // holds files in this process refuses the fourth; Redis holds them all (the failover
    // store's memory copies are bounded apart: `tests/failover.rs`).
    let hour = Duration::from_secs(3600);
    let rooms: Vec<RoomId> = (0..4).map(|_| RoomId::generate()).collect();
    let files: Vec<StoredFile> = rooms.iter().map(|room| sized(room, hour, 900)).collect();
    for stored in &files[..3] {
        store.put_file(stored.clone()).await.unwrap();
    }
    let fourth = store.put_file(files[3].clone()).await;
    if store.health().mode == StorageMode::Memory {
        assert!(
            matches!(
                fourth,
                Err(StorageError::FileRefused(FileRefusal::MemoryFull { limit })) if limit == FILE_LIMITS.max_memory_bytes
            ),
            "{fourth:?}"
        );
        assert_eq!(store.get_file(&files[3].meta.file_id).await.unwrap(), None);
        all_stored(store, &files[..3]).await;
        // Once a room's files go, the memory they held is free again.
        assert_eq!(store.delete_room_files(&rooms[0]).await.unwrap(), 1);
        store.put_file(files[3].clone()).await.unwrap();
        all_stored(store, &files[1..]).await;
    } else {
        fourth.unwrap();
        all_stored(store, &files).await;
    }
}

async fn a_patch_for_another_socket_changes_nothing<S: SessionStore>(store: &S) {
    let user = user_seen(Duration::ZERO);
    store.create(&user).await.unwrap();
    let attach = |socket: &str| SessionPatch {
        is_online: Some(true),
        socket: Some(Some((socket.into(), Timestamp::now()))),
        ..SessionPatch::default()
    };
    let detach = |socket: &str| SessionPatch {
        is_online: Some(false),
        socket: Some(None),
        only_if_socket: Some(socket.into()),
        ..SessionPatch::default()
    };
    store.update(&user.id, attach("old")).await.unwrap();
    let newer = store
        .update(&user.id, attach("new"))
        .await
        .unwrap()
        .unwrap();
    // The old socket's drop arrives after the new socket attached: nothing changes.
    let unchanged = store.update(&user.id, detach("old")).await.unwrap();
    assert_eq!(unchanged.as_ref(), Some(&newer));
    assert_eq!(store.get(&user.id).await.unwrap(), Some(newer));
    assert_eq!(store.stats(Timestamp::now()).await.unwrap().online_users, 1);
    // The current socket's drop applies.
    let detached = store
        .update(&user.id, detach("new"))
        .await
        .unwrap()
        .unwrap();
    assert!(!detached.is_online && detached.socket_id.is_none());
    assert_eq!(store.stats(Timestamp::now()).await.unwrap().online_users, 0);
}

/// A "searching" mark that arrives after another node paired the user changes nothing.
async fn searching_is_never_marked_over_a_chat<S: SessionStore>(store: &S) {
    let user = user_seen(Duration::ZERO);
    store.create(&user).await.unwrap();
    let searching = SessionPatch {
        is_searching: Some(true),
        unless_in_chat: true,
        ..SessionPatch::default()
    };
    let marked = store.update(&user.id, searching.clone()).await.unwrap();
    assert!(
        marked.is_some_and(|user| user.is_searching),
        "applies outside a chat"
    );
    let paired = SessionPatch {
        is_searching: Some(false),
        chat: Some(Some(UserId::generate())),
        ..SessionPatch::default()
    };
    let in_chat = store.update(&user.id, paired).await.unwrap().unwrap();
    let late = store.update(&user.id, searching).await.unwrap();
    assert_eq!(late.as_ref(), Some(&in_chat), "unchanged in a chat");
    let stats = store.stats(Timestamp::now()).await.unwrap();
    assert_eq!((stats.available_users, stats.users_in_chat), (0, 1));
}
