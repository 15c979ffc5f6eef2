//! The [`ModerationStore`] contract, run against every store: reports are idempotent per
//! (reporter, reported) and counted by distinct reporter marks within the window, they block
//! the pair both ways, pages list reports newest first without gaps, and bans are found
//! under every mark they cover until they end or are lifted.

use std::collections::BTreeSet;
use std::time::Duration;

use chat_domain::{
    Ban, BanId, BanSource, Report, ReportId, ReportReason, RoomId, Timestamp, UserId,
};
use chat_storage::ModerationStore;

macro_rules! moderation_suite {
    ($backend:ident, $open:path) => {
        mod $backend {
            moderation_suite!(@tests $open, [
                reports_count_distinct_marks_once_each,
                report_pages_are_newest_first_without_gaps,
                bans_hold_under_every_mark_until_lifted,
                addresses_are_noted_per_user,
            ]);
        }
    };
    (@tests $open:path, [$($check:ident),* $(,)?]) => {
        $(
            #[tokio::test]
            async fn $check() {
                if let Some(store) = $open().await {
                    super::$check(&store).await;
                }
            }
        )*
    };
}

moderation_suite!(memory, crate::common::memory_store);
#[cfg(feature = "redis")]
moderation_suite!(redis, crate::common::redis_store);
#[cfg(feature = "redis")]
moderation_suite!(failover, crate::common::failover_store);
#[cfg(feature = "redis")]
moderation_suite!(redis_cluster, crate::common::cluster_store);

fn report(reporter: &UserId, reported: &UserId, at: Timestamp) -> Report {
    Report {
        id: ReportId::generate(),
        reporter_id: reporter.clone(),
        reported_id: reported.clone(),
        reason: ReportReason::Spam,
        details: Some("buy things".into()),
        room_id: Some(RoomId::generate()),
        created_at: at,
    }
}

const WINDOW: Duration = Duration::from_secs(3600);

async fn reports_count_distinct_marks_once_each<S: ModerationStore>(store: &S) {
    let reported = UserId::generate();
    let now = Timestamp::now();
    let (first, second, tab) = (UserId::generate(), UserId::generate(), UserId::generate());
    let filed = store
        .file_report(&report(&first, &reported, now), "addr:a", WINDOW)
        .await
        .unwrap();
    assert_eq!((filed.duplicate, filed.reporters), (false, 1));
    let again = store
        .file_report(&report(&first, &reported, now), "addr:a", WINDOW)
        .await
        .unwrap();
    assert!(
        again.duplicate,
        "a second report of the same user by the same reporter"
    );
    assert_eq!(again.report.id, filed.report.id, "answers the first report");
    assert_eq!(again.reporters, 1, "and counts once");
    // Another tab of the same person (same address): a new report, not a new reporter.
    let from_tab = store
        .file_report(&report(&tab, &reported, now), "addr:a", WINDOW)
        .await
        .unwrap();
    assert_eq!((from_tab.duplicate, from_tab.reporters), (false, 1));
    let other = store
        .file_report(&report(&second, &reported, now), "addr:b", WINDOW)
        .await
        .unwrap();
    assert_eq!(other.reporters, 2);
    // Outside the window an old reporter no longer counts.
    let later = Timestamp::now().plus(WINDOW).plus(Duration::from_secs(1));
    let third = UserId::generate();
    let late = store
        .file_report(&report(&third, &reported, later), "addr:c", WINDOW)
        .await
        .unwrap();
    assert_eq!(
        late.reporters, 1,
        "the earlier marks fell out of the window"
    );
    // Blocked both ways.
    assert!(store.blocked(&first).await.unwrap().contains(&reported));
    let blocked: BTreeSet<UserId> = store
        .blocked(&reported)
        .await
        .unwrap()
        .into_iter()
        .collect();
    for reporter in [&first, &second, &tab, &third] {
        assert!(blocked.contains(reporter), "{reporter} in {blocked:?}");
    }
    assert!(store.blocked(&UserId::generate()).await.unwrap().is_empty());
}

async fn report_pages_are_newest_first_without_gaps<S: ModerationStore>(store: &S) {
    // Reports of this test are far in the future, so that other tests' reports (memory
    // stores are fresh; Redis stores share nothing under a fresh prefix) come after them.
    let base = Timestamp::now().plus(Duration::from_secs(3600));
    let mut filed = Vec::new();
    for index in 0..7u64 {
        // Two reports share each millisecond.
        let at = base.plus(Duration::from_millis(index / 2));
        let stored = store
            .file_report(
                &report(&UserId::generate(), &UserId::generate(), at),
                &format!("addr:{index}"),
                WINDOW,
            )
            .await
            .unwrap();
        filed.push(stored.report);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.reports(3, cursor.as_deref()).await.unwrap();
        assert!(page.reports.len() <= 3);
        seen.extend(page.reports);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let ours: Vec<&Report> = seen.iter().filter(|r| filed.contains(r)).collect();
    assert_eq!(ours.len(), filed.len(), "every report once");
    let times: Vec<Timestamp> = seen.iter().map(|report| report.created_at).collect();
    assert!(
        times.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest first"
    );
    let ids: BTreeSet<&ReportId> = seen.iter().map(|report| &report.id).collect();
    assert_eq!(ids.len(), seen.len(), "no report twice");
}

fn ban(user: &UserId, for_secs: u64) -> Ban {
    let now = Timestamp::now();
    Ban {
        id: BanId::generate(),
        user_id: user.clone(),
        reason: "spam".into(),
        source: BanSource::Reports,
        created_at: now,
        until: now.plus(Duration::from_secs(for_secs)),
    }
}

async fn bans_hold_under_every_mark_until_lifted<S: ModerationStore>(store: &S) {
    let user = UserId::generate();
    let marks = vec![
        format!("user:{user}"),
        "device:d1".to_owned(),
        "addr:x1".to_owned(),
    ];
    let banned = ban(&user, 3600);
    store.ban(&banned, &marks).await.unwrap();
    let now = Timestamp::now();
    for mark in &marks {
        let found = store
            .ban_for(std::slice::from_ref(mark), now)
            .await
            .unwrap();
        assert_eq!(found.as_ref(), Some(&banned), "{mark}");
    }
    let unrelated = store
        .ban_for(&["addr:elsewhere".into()], now)
        .await
        .unwrap();
    assert_eq!(unrelated, None);
    assert!(store.bans(now).await.unwrap().contains(&banned));
    // A ban that is over is not in force.
    let short = ban(&UserId::generate(), 1);
    store.ban(&short, &["addr:short".into()]).await.unwrap();
    let past = now.plus(Duration::from_secs(2));
    assert_eq!(
        store.ban_for(&["addr:short".into()], past).await.unwrap(),
        None
    );
    assert!(!store.bans(past).await.unwrap().contains(&short));

    assert_eq!(store.lift(&banned.id).await.unwrap(), Some(banned.clone()));
    for mark in &marks {
        assert_eq!(
            store
                .ban_for(std::slice::from_ref(mark), Timestamp::now())
                .await
                .unwrap(),
            None
        );
    }
    assert!(
        !store
            .bans(Timestamp::now())
            .await
            .unwrap()
            .contains(&banned)
    );
    assert_eq!(store.lift(&banned.id).await.unwrap(), None, "lifted once");
}

async fn addresses_are_noted_per_user<S: ModerationStore>(store: &S) {
    let (user, other) = (UserId::generate(), UserId::generate());
    let keep = Duration::from_secs(60);
    store.note_address(&user, "addr:1", keep).await.unwrap();
    store.note_address(&user, "addr:2", keep).await.unwrap();
    store.note_address(&user, "addr:1", keep).await.unwrap();
    store.note_address(&other, "addr:3", keep).await.unwrap();
    let noted: BTreeSet<String> = store.addresses(&user).await.unwrap().into_iter().collect();
    assert_eq!(
        noted,
        BTreeSet::from(["addr:1".to_owned(), "addr:2".to_owned()])
    );
}
