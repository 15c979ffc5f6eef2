//! The failover promise: while Redis is down every request is still answered (from memory),
//! and when it comes back every session, old and new, is in Redis again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chat_domain::{FileId, FileType, GuestUser, RoomId, Timestamp, UserId, Username};
use chat_storage::{
    FailoverStore, FileMeta, FileRefusal, RedisStore, SessionPatch, SessionStore, StorageError,
    StorageMode, StoredFile,
};
use chat_testkit::require_redis;
use fred::prelude::{Builder, ClientLike, Config};
use fred::types::CustomCommand;
use tokio::task::JoinHandle;

use common::{config, eventually, user_seen};

/// How long Redis may take to be noticed as back (its reconnect backoff is capped at 2 s).
const RECOVERY_DEADLINE: Duration = Duration::from_secs(20);

/// Creates and reads sessions (and renames every fifth) until told to stop; every call must
/// succeed. Returns the last version of every session it wrote.
fn spawn_traffic(
    store: Arc<FailoverStore>,
    stop: Arc<AtomicBool>,
    served: Arc<std::sync::atomic::AtomicUsize>,
) -> JoinHandle<HashMap<UserId, GuestUser>> {
    tokio::spawn(async move {
        let mut written: HashMap<UserId, GuestUser> = HashMap::new();
        let mut round = 0_usize;
        while !stop.load(Ordering::SeqCst) {
            round += 1;
            let user = user_seen(Duration::ZERO);
            store.create(&user).await.expect("create must be answered");
            let read = store.get(&user.id).await.expect("get must be answered");
            assert_eq!(
                read.as_ref(),
                Some(&user),
                "a session just created must be readable"
            );
            written.insert(user.id.clone(), user);
            if round.is_multiple_of(5) {
                // Update an older session (possibly written before the outage).
                let id = written.keys().nth(round % written.len()).cloned().unwrap();
                let name = Username::parse(&format!("Renamed_{round}")).unwrap();
                let patch = SessionPatch {
                    username: Some(name),
                    is_online: Some(true),
                    ..SessionPatch::default()
                };
                let updated = store
                    .update(&id, patch)
                    .await
                    .expect("update must be answered");
                written.insert(id, updated.expect("the session exists"));
            }
            served.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        written
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_redis_under_traffic_loses_no_request_and_no_session() {
    let Some(mut server) = require_redis() else {
        return;
    };
    let settings = config();
    let store = Arc::new(
        FailoverStore::connect(&server.url(), settings.clone())
            .await
            .unwrap(),
    );
    assert_eq!(store.health().mode, StorageMode::Redis);
    let file = StoredFile {
        meta: FileMeta {
            file_id: FileId::generate(),
            room_id: RoomId::generate(),
            uploader: UserId::generate(),
            filename: "photo.png".into(),
            file_type: FileType::Image,
            mime: "image/png".into(),
            size: 4,
            duration: None,
            expires_at: Timestamp::now().plus(Duration::from_secs(600)),
        },
        bytes: Bytes::from_static(b"\x89PNG"),
    };
    store.put_file(file.clone()).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let traffic = spawn_traffic(Arc::clone(&store), Arc::clone(&stop), Arc::clone(&served));
    let served_at_least = |count: usize| {
        let served = Arc::clone(&served);
        move || {
            let served = Arc::clone(&served);
            async move { served.load(Ordering::SeqCst) >= count }
        }
    };
    eventually("traffic before the outage", served_at_least(30)).await;

    server.kill();
    eventually("memory mode", || async {
        store.health().mode == StorageMode::Memory
    })
    .await;
    assert!(!store.health().redis_up);
    let during = served.load(Ordering::SeqCst);
    eventually("traffic during the outage", served_at_least(during + 30)).await;
    assert_eq!(
        store.health().mode,
        StorageMode::Memory,
        "Redis is still down"
    );

    server.restart().unwrap();
    let deadline = tokio::time::Instant::now() + RECOVERY_DEADLINE;
    while store.health().mode != StorageMode::Redis {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never went back to Redis"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let after = served.load(Ordering::SeqCst);
    eventually("traffic after the outage", served_at_least(after + 20)).await;
    stop.store(true, Ordering::SeqCst);
    let written = traffic.await.unwrap();
    assert!(
        written.len() >= 70,
        "only {} sessions written",
        written.len()
    );

    // A plain Redis store on the same server and prefix sees every session as last written.
    let plain = RedisStore::connect(&server.url(), settings).await.unwrap();
    for (id, user) in &written {
        assert_eq!(
            plain.get(id).await.unwrap().as_ref(),
            Some(user),
            "session {id} missing or stale in Redis"
        );
    }
    assert_eq!(
        plain.stats(Timestamp::now()).await.unwrap().total_users,
        written.len() as u64
    );
    assert_eq!(
        plain.get_file(&file.meta.file_id).await.unwrap(),
        Some(file)
    );
}

#[tokio::test]
async fn starts_in_memory_mode_when_redis_is_down_and_catches_up() {
    let Some(mut server) = require_redis() else {
        return;
    };
    server.kill();
    let settings = config();
    let store = FailoverStore::connect(&server.url(), settings.clone())
        .await
        .unwrap();
    assert_eq!(store.health().mode, StorageMode::Memory);
    assert!(!store.health().redis_up);

    let user = user_seen(Duration::ZERO);
    store.create(&user).await.unwrap();
    assert_eq!(store.get(&user.id).await.unwrap(), Some(user.clone()));
    assert_eq!(store.stats(Timestamp::now()).await.unwrap().total_users, 1);
    assert!(
        store
            .hit_rate_limit("ip:1", 1, Duration::from_secs(60))
            .await
            .unwrap()
            .allowed
    );

    server.restart().unwrap();
    eventually("Redis mode", || async {
        store.health().mode == StorageMode::Redis
    })
    .await;
    let plain = RedisStore::connect(&server.url(), settings).await.unwrap();
    assert_eq!(plain.get(&user.id).await.unwrap(), Some(user));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_without_data_loss_writes_back_only_what_changed() {
    let Some(server) = require_redis() else {
        return;
    };
    let settings = config();
    let store = FailoverStore::connect(&server.url(), settings.clone())
        .await
        .unwrap();
    let other_node = RedisStore::connect(&server.url(), settings).await.unwrap();
    let [renamed, deleted, deleted_elsewhere] = [(); 3].map(|()| user_seen(Duration::ZERO));
    for user in [&renamed, &deleted, &deleted_elsewhere] {
        store.create(user).await.unwrap();
    }
    // Another node deletes a session this node still holds in its memory.
    other_node.delete(&deleted_elsewhere.id).await.unwrap();

    // Redis stops answering for a while but keeps its data.
    let admin = Builder::from_config(Config::from_url(&server.url()).unwrap())
        .build()
        .unwrap();
    admin.init().await.unwrap();
    let _: String = admin
        .custom(
            CustomCommand::new_static("CLIENT", None, false),
            vec!["PAUSE", "3000", "ALL"],
        )
        .await
        .unwrap();
    let patch = SessionPatch {
        username: Some(Username::parse("Renamed_1").unwrap()),
        ..SessionPatch::default()
    };
    let renamed = store.update(&renamed.id, patch).await.unwrap().unwrap();
    assert_eq!(store.health().mode, StorageMode::Memory);
    assert!(store.delete(&deleted.id).await.unwrap().is_some());
    let created = user_seen(Duration::ZERO);
    store.create(&created).await.unwrap();

    let deadline = tokio::time::Instant::now() + RECOVERY_DEADLINE;
    while store.health().mode != StorageMode::Redis {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never went back to Redis"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(other_node.get(&renamed.id).await.unwrap(), Some(renamed));
    assert_eq!(other_node.get(&created.id).await.unwrap(), Some(created));
    assert_eq!(other_node.get(&deleted.id).await.unwrap(), None);
    assert_eq!(
        other_node.get(&deleted_elsewhere.id).await.unwrap(),
        None,
        "a session deleted elsewhere came back"
    );
}

/// A file of `size` bytes in `room`, for an hour.
fn file_of(room: &RoomId, size: usize) -> StoredFile {
    StoredFile {
        meta: FileMeta {
            file_id: FileId::generate(),
            room_id: room.clone(),
            uploader: UserId::generate(),
            filename: "a.txt".into(),
            file_type: FileType::Document,
            mime: "text/plain".into(),
            size: size as u64,
            duration: None,
            expires_at: Timestamp::now().plus(Duration::from_secs(3600)),
        },
        bytes: Bytes::from(vec![b'a'; size]),
    }
}

/// The bound a refused upload would have passed; `None` when it was stored.
fn refusal(result: Result<(), StorageError>) -> Option<FileRefusal> {
    match result {
        Ok(()) => None,
        Err(StorageError::FileRefused(refusal)) => Some(refusal),
        Err(error) => panic!("not a refusal: {error}"),
    }
}

/// Every file of `files` is served whole by `store`.
async fn serves(store: &impl SessionStore, files: &[StoredFile]) {
    for file in files {
        let found = store.get_file(&file.meta.file_id).await.unwrap();
        assert_eq!(found.as_ref(), Some(file), "{}", file.meta.file_id);
    }
}

#[tokio::test]
async fn the_memory_copies_of_files_stay_within_the_memory_bound() {
    // `common::FILE_LIMITS`: 1000 bytes per room, 3000 in memory.
    let Some(mut server) = require_redis() else {
        return;
    };
    let settings = config();
    let store = FailoverStore::connect(&server.url(), settings.clone())
        .await
        .unwrap();
    let rooms: Vec<RoomId> = (0..4).map(|_| RoomId::generate()).collect();
    let files: Vec<StoredFile> = rooms.iter().map(|room| file_of(room, 900)).collect();
    let room_full = Some(FileRefusal::RoomFull { limit: 1000 });
    // In Redis mode every upload within its room's bound is stored, but memory copies only
    // three of them: the node's RAM stays bounded.
    for file in &files {
        store.put_file(file.clone()).await.unwrap();
    }
    assert_eq!(store.memory().file_bytes(), 2700);
    serves(&store, &files).await;
    assert_eq!(
        refusal(store.put_file(file_of(&rooms[0], 101)).await),
        room_full
    );
    assert_eq!(
        store.health().mode,
        StorageMode::Redis,
        "a refusal is no outage"
    );

    // Redis goes away: memory serves its copies, and takes uploads up to its bounds.
    server.kill();
    let fits = file_of(&RoomId::generate(), 300);
    store.put_file(fits.clone()).await.unwrap();
    assert_eq!(store.health().mode, StorageMode::Memory);
    serves(&store, &files[..3]).await;
    let never_copied = store.get_file(&files[3].meta.file_id).await.unwrap();
    assert_eq!(never_copied, None);
    assert_eq!(
        refusal(store.put_file(file_of(&RoomId::generate(), 1)).await),
        Some(FileRefusal::MemoryFull { limit: 3000 })
    );
    assert_eq!(
        refusal(store.put_file(file_of(&rooms[1], 101)).await),
        room_full
    );
    assert_eq!(store.memory().file_bytes(), 3000);

    // Back on Redis, the upload made during the outage is written back and counted in its
    // room's budget there.
    server.restart().unwrap();
    let deadline = tokio::time::Instant::now() + RECOVERY_DEADLINE;
    while store.health().mode != StorageMode::Redis {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never went back to Redis"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let redis = RedisStore::connect(&server.url(), settings).await.unwrap();
    serves(&redis, std::slice::from_ref(&fits)).await;
    let room = &fits.meta.room_id;
    assert_eq!(refusal(redis.put_file(file_of(room, 701)).await), room_full);
    redis.put_file(file_of(room, 700)).await.unwrap();
}

#[tokio::test]
async fn a_malformed_url_is_an_error() {
    assert!(
        FailoverStore::connect("nonsense://", config())
            .await
            .is_err()
    );
}
