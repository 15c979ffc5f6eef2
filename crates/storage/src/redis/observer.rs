//! [`RedisObserver`]: what a Redis store tells whoever watches it (metrics), without this
//! crate knowing who that is.

use std::time::Duration;

use fred::types::scripts::Script;

/// Told of every Redis command a [`RedisStore`](crate::RedisStore) sends, and of the bus
/// messages a [`RedisCluster`](crate::redis::RedisCluster) joined through it loses. Set with
/// [`RedisStore::observed_by`](crate::RedisStore::observed_by) (or
/// [`FailoverStore::connect_observed`](crate::FailoverStore::connect_observed)).
///
/// Called on the task that awaited the command: keep it cheap (an atomic or two).
pub trait RedisObserver: Send + Sync {
    /// `command` took `elapsed`, answer or error (a command that timed out took the
    /// timeout). `command` is a script's name (`search`, `write_session`, …) or a plain
    /// command's in lower case (`get`, `set`, `publish`, …): a small fixed set.
    fn command(&self, command: &'static str, elapsed: Duration);

    /// This node's bus subscription read too slowly and lost `missed` messages published to
    /// it (each loss is logged too).
    fn bus_lagged(&self, missed: u64) {
        let _ = missed;
    }
}

/// The name of one of this crate's scripts (`script` when it is none of the known ones).
pub(super) fn script_name(script: &Script) -> &'static str {
    super::scripts::name_of(script)
        .or_else(|| super::chat::script_name(script))
        .or_else(|| super::cluster::script_name(script))
        .unwrap_or("script")
}

/// The name of `script` among `known` (compared by address: each is a static).
pub(super) fn find(script: &Script, known: &[(&Script, &'static str)]) -> Option<&'static str> {
    known
        .iter()
        .find(|(candidate, _)| std::ptr::eq(*candidate, script))
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::scripts::{RATE_HIT, WRITE_SESSION};

    #[test]
    fn scripts_are_named_by_identity() {
        assert_eq!(script_name(&WRITE_SESSION), "write_session");
        assert_eq!(script_name(&RATE_HIT), "rate_hit");
        // The same Lua in another script is not the known one.
        let copy = Script::from_lua(
            WRITE_SESSION
                .lua()
                .map(ToString::to_string)
                .unwrap_or_default(),
        );
        assert_eq!(script_name(&copy), "script");
    }
}
