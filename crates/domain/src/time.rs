//! Wall-clock instants as the contract writes them: RFC 3339 strings in UTC.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant in unix milliseconds, serialized as an RFC 3339 UTC string with milliseconds
/// (`2026-11-23T18:15:45.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as i64)
            .unwrap_or(0);
        Self(millis)
    }

    /// The instant `millis` milliseconds after the unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the unix epoch (rounded down).
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This instant moved `duration` later (saturating).
    pub fn plus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// This instant moved `duration` earlier (saturating).
    pub fn minus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(millis))
    }

    /// Parses an RFC 3339 string (any offset) into an instant. Only instants that can be
    /// written back (UTC years 0000 to 9999) are accepted: an offset can move a date at the
    /// edge of that range out of it.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        let millis = i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()?;
        let utc = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()?;
        (0..=9999).contains(&utc.year()).then_some(Self(millis))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = i128::from(self.0) * 1_000_000;
        let Ok(instant) = OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
            return formatter.write_str("1970-01-01T00:00:00.000Z");
        };
        // Fixed millisecond precision, as JavaScript's Date#toISOString writes it.
        write!(
            formatter,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            instant.year(),
            u8::from(instant.month()),
            instant.day(),
            instant.hour(),
            instant.minute(),
            instant.second(),
            instant.millisecond()
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(millis: i64, expected: &str) {
        let stamp = Timestamp::from_millis(millis);
        assert_eq!(stamp.to_string(), expected);
        assert_eq!(Timestamp::parse_rfc3339(expected), Some(stamp));
    }

    #[test]
    fn formats_as_utc_rfc3339_with_millis() {
        check(0, "1970-01-01T00:00:00.000Z");
        check(1_795_457_745_123, "2026-11-23T18:15:45.123Z");
        check(951_782_400_007, "2000-02-29T00:00:00.007Z");
    }

    #[test]
    fn parses_other_offsets() {
        let stamp = Timestamp::parse_rfc3339("2026-11-23T19:15:45.123+01:00");
        assert_eq!(stamp, Some(Timestamp::from_millis(1_795_457_745_123)));
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }

    /// Found by the `domain_timestamp` fuzz target: a date at the end of year 9999 with a
    /// negative offset is in year 10000 in UTC, which was written as the epoch.
    #[test]
    fn instants_that_cannot_be_written_back_are_refused() {
        for text in [
            "9999-12-31T23:59:20.999999999-23:59",
            "0000-01-01T00:00:00+00:01",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(text), None, "{text}");
        }
        let last = Timestamp::parse_rfc3339("9999-12-31T23:59:59.999Z");
        assert_eq!(
            last.map(|stamp| stamp.to_string()).as_deref(),
            Some("9999-12-31T23:59:59.999Z")
        );
        let first = Timestamp::parse_rfc3339("0000-01-01T00:00:00+00:00");
        assert!(first.is_some());
        assert_eq!(
            first.and_then(|stamp| Timestamp::parse_rfc3339(&stamp.to_string())),
            first
        );
    }

    #[test]
    fn arithmetic_saturates() {
        let stamp = Timestamp::from_millis(1000);
        assert_eq!(stamp.plus(Duration::from_secs(2)).as_millis(), 3000);
        assert_eq!(stamp.minus(Duration::from_secs(2)).as_millis(), -1000);
        assert_eq!(
            Timestamp::from_millis(i64::MAX)
                .plus(Duration::from_secs(1))
                .as_millis(),
            i64::MAX
        );
    }
}
