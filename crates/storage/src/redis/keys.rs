//! Key names, laid out for a sharded Redis Cluster (and the same on a single server, so one
//! layout is tested everywhere).
//!
//! Every key starts with a hash tag `{<prefix><scope>}`: the prefix is inside the tag, so two
//! deployments with different prefixes never share a tag, and the scope decides which keys
//! share a slot (and may be changed together by one script):
//!
//! | scope | keys | why together |
//! | --- | --- | --- |
//! | `p<NN>~<k>`, one of [`PARTITIONS`] | sessions of the users hashed to it, and its indexes (expiries, online, searching, in chat, activity) and epoch marker | a session and its index entries change in one script |
//! | `u:<user>` | the user's room pointer and directory entry (its node) | per user |
//! | `r:<room>` | a room's record and the index of its files (expiries, sizes, their sum) | per room: the room's byte budget is checked and taken in one script |
//! | `f:<file>` | a file's bytes and metadata | per file |
//! | `rate:<key>` | one rate-limit counter | per client |
//! | `queue` | the search queue and its buckets | pairing is atomic |
//! | `nodes` | the node registry and held sets | claiming a dead node is atomic |
//! | `bus:<node>` | a node's (sharded) pub/sub channel | per node |
//!
//! The partitions' tags are picked so that partition `i` hashes into the `i`-th of
//! [`PARTITIONS`] equal ranges of the 16384 slots: a cluster whose shards own balanced ranges
//! gets a balanced share of the sessions, for any prefix.

use chat_domain::{FileId, RoomId, UserId};

/// How many partitions the sessions and their indexes are spread over: a cluster with up to
/// this many shards gets sessions on every shard.
pub(super) const PARTITIONS: usize = 32;

/// Redis Cluster's slot count.
const SLOTS: usize = 16384;

/// The key names of one deployment.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
    /// Each partition's hash tag, `{<prefix>p<NN>~<k>}`.
    partitions: Vec<String>,
}

impl Keys {
    /// Keys under `prefix`.
    pub(super) fn new(prefix: &str) -> Self {
        let partitions = (0..PARTITIONS)
            .map(|index| partition_tag(prefix, index))
            .collect();
        Self {
            prefix: prefix.to_owned(),
            partitions,
        }
    }

    fn tag(&self, scope: &str) -> String {
        format!("{{{}{scope}}}", self.prefix)
    }

    /// The partition `user`'s session lives in.
    pub(super) fn partition_of(&self, user: &UserId) -> usize {
        usize::from(fred::util::redis_keyslot(user.as_str().as_bytes())) % PARTITIONS
    }

    fn partition(&self, index: usize) -> &str {
        &self.partitions[index % PARTITIONS]
    }

    /// The prefix of session keys in partition `index`; a session's key is this followed by
    /// its id.
    pub(super) fn session_prefix(&self, index: usize) -> String {
        format!("{}:session:", self.partition(index))
    }

    /// A session, as JSON.
    pub(super) fn session(&self, id: &UserId) -> String {
        format!("{}{id}", self.session_prefix(self.partition_of(id)))
    }

    /// The key of a session followed by its partition's index keys, in the order the session
    /// scripts expect them.
    pub(super) fn session_and_indexes(&self, id: &UserId) -> Vec<String> {
        let mut keys = vec![self.session(id)];
        keys.extend(self.indexes(self.partition_of(id)));
        keys
    }

    /// Partition `index`'s index keys: expiries (sorted set: id scored by expiry, unix ms),
    /// online (sorted set, all scores 0 so it sorts by id), searching (set), in chat (set),
    /// activity (sorted set: id scored by last activity).
    pub(super) fn indexes(&self, index: usize) -> Vec<String> {
        let tag = self.partition(index);
        ["expiry", "online", "searching", "in_chat", "activity"]
            .into_iter()
            .map(|name| format!("{tag}:{name}"))
            .collect()
    }

    /// The online index of partition `index`.
    pub(super) fn online(&self, index: usize) -> String {
        format!("{}:online", self.partition(index))
    }

    /// Partition `index`'s data epoch marker (a random value; changes when the shard holding
    /// it loses its data).
    pub(super) fn epoch(&self, index: usize) -> String {
        format!("{}:epoch", self.partition(index))
    }

    /// A rate-limit counter.
    pub(super) fn rate(&self, key: &str) -> String {
        format!("{}:hits", self.tag(&format!("rate:{key}")))
    }

    /// A file's content.
    pub(super) fn file_bytes(&self, id: &FileId) -> String {
        format!("{}:bytes", self.tag(&format!("f:{id}")))
    }

    /// A file's metadata, as JSON.
    pub(super) fn file_meta(&self, id: &FileId) -> String {
        format!("{}:meta", self.tag(&format!("f:{id}")))
    }

    /// A room's file index, in the order the room file scripts expect: expiries (sorted set:
    /// file id scored by expiry, unix ms), sizes (hash: file id → bytes), the sum of those
    /// sizes (a counter), and the set of file ids that older versions kept (read by the
    /// delete only, so files indexed there still go with their room).
    pub(super) fn room_files(&self, room: &RoomId) -> [String; 4] {
        let tag = self.tag(&format!("r:{room}"));
        ["file_expiries", "file_sizes", "file_bytes", "files"].map(|name| format!("{tag}:{name}"))
    }

    /// A room's record, as JSON.
    pub(super) fn room(&self, room: &RoomId) -> String {
        format!("{}:record", self.tag(&format!("r:{room}")))
    }

    /// The id of the room a user is in.
    pub(super) fn user_room(&self, user: &UserId) -> String {
        format!("{}:room", self.tag(&format!("u:{user}")))
    }

    /// The node holding a user's socket.
    pub(super) fn user_node(&self, user: &UserId) -> String {
        format!("{}:node", self.tag(&format!("u:{user}")))
    }

    /// The search queue's keys: entries (hash: user id → searcher JSON), memberships (hash:
    /// user id → the bucket keys it waits in, space-separated), expiries (hash: user id →
    /// session expiry as of the search, unix ms), the arrival counter.
    pub(super) fn queue(&self) -> [String; 4] {
        let tag = self.tag("queue");
        ["entries", "in", "expires", "seq"].map(|name| format!("{tag}:{name}"))
    }

    /// A queue bucket (sorted set: user id scored by arrival), named by
    /// [`chat_domain::Searcher::buckets`].
    pub(super) fn queue_bucket(&self, bucket: &str) -> String {
        format!("{}:b:{bucket}", self.tag("queue"))
    }

    /// Hash: reporter id → their report of `user` (JSON).
    pub(super) fn user_reports(&self, user: &UserId) -> String {
        format!("{}:reports", self.tag(&format!("u:{user}")))
    }

    /// Sorted set: marks of the addresses that reported `user`, by last report (ms).
    pub(super) fn user_reporters(&self, user: &UserId) -> String {
        format!("{}:reporters", self.tag(&format!("u:{user}")))
    }

    /// Sorted set: users `user` is never paired with, by until when (ms).
    pub(super) fn user_blocked(&self, user: &UserId) -> String {
        format!("{}:blocked", self.tag(&format!("u:{user}")))
    }

    /// Sorted set: marks of the addresses `user` came from, by until when (ms).
    pub(super) fn user_addresses(&self, user: &UserId) -> String {
        format!("{}:addrs", self.tag(&format!("u:{user}")))
    }

    /// Every report kept: a sorted set of ids by time (ms) and a hash id → JSON.
    pub(super) fn report_log(&self) -> [String; 2] {
        let tag = self.tag("reports");
        [format!("{tag}:log"), format!("{tag}:entries")]
    }

    /// Every ban: a hash id → JSON and a hash id → its marks (space-separated).
    pub(super) fn bans(&self) -> [String; 2] {
        let tag = self.tag("bans");
        [format!("{tag}:all"), format!("{tag}:marks")]
    }

    /// The ban kept under `mark` (its id), until it ends.
    pub(super) fn ban_mark(&self, mark: &str) -> String {
        format!("{}:ban", self.tag(&format!("mark:{mark}")))
    }

    /// The node registry's hash tag.
    pub(super) fn nodes(&self) -> String {
        self.tag("nodes")
    }

    /// The pub/sub channel of a node.
    pub fn node_channel(&self, node: &str) -> String {
        format!("{}:inbox", self.tag(&format!("bus:{node}")))
    }
}

/// The first tag `{<prefix>p<NN>~<k>}` (k = 0, 1, …) whose slot falls in the `index`-th of
/// [`PARTITIONS`] equal ranges of slots (or `k = 0` if none within a bound does, which only a
/// broken hash could cause).
fn partition_tag(prefix: &str, index: usize) -> String {
    let width = SLOTS / PARTITIONS;
    let range = index * width..(index + 1) * width;
    let tag = |k: usize| format!("{{{prefix}p{index:02}~{k}}}");
    (0..100_000)
        .map(tag)
        .find(|tag| range.contains(&usize::from(fred::util::redis_keyslot(tag.as_bytes()))))
        .unwrap_or_else(|| tag(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_the_slot_space_evenly_for_any_prefix() {
        for prefix in ["chat:", "", "other-deployment:", "a{b"] {
            let keys = Keys::new(prefix);
            for (index, tag) in keys.partitions.iter().enumerate() {
                let slot = usize::from(fred::util::redis_keyslot(tag.as_bytes()));
                assert_eq!(slot / (SLOTS / PARTITIONS), index, "{prefix}: {tag}");
            }
        }
    }

    #[test]
    fn a_users_keys_share_its_tag_and_deployments_never_share_one() {
        let user = UserId::generate();
        let (ours, theirs) = (Keys::new("chat:"), Keys::new("chat2:"));
        let slot = |key: &str| fred::util::redis_keyslot(key.as_bytes());
        assert_eq!(
            slot(&ours.user_room(&user)),
            slot(&ours.user_node(&user)),
            "one user's pointers share a slot"
        );
        let session = ours.session_and_indexes(&user);
        assert!(session.iter().all(|key| slot(key) == slot(&session[0])));
        assert_ne!(ours.queue()[0], theirs.queue()[0]);
        assert!(
            ours.queue()
                .iter()
                .all(|key| key.starts_with("{chat:queue}"))
        );
        assert!(ours.queue_bucket("x").starts_with("{chat:queue}"));
    }
}
