//! Moderation: what a user reports of a partner, and bans. Pure, no I/O; the stores keep
//! them, the gateway applies their effects.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::DomainError;
use crate::ids::{BanId, ReportId, RoomId, UserId};
use crate::time::Timestamp;

/// How many characters a report's `details` may hold.
pub const MAX_DETAILS_CHARS: usize = 500;

/// How long after a room closed its members may still report each other.
pub const REPORT_AFTER_CLOSE: Duration = Duration::from_secs(120);

/// Why a user reports a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportReason {
    /// Unwanted advertising or repeated messages.
    Spam,
    /// Insults, threats, abuse.
    Harassment,
    /// Sexual content.
    Nudity,
    /// The partner seems to be a minor.
    Underage,
    /// Anything else (say what in `details`).
    Other,
}

impl ReportReason {
    /// Every reason, in the contract's order.
    pub const ALL: [Self; 5] = [
        Self::Spam,
        Self::Harassment,
        Self::Nudity,
        Self::Underage,
        Self::Other,
    ];

    /// The contract's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Spam => "spam",
            Self::Harassment => "harassment",
            Self::Nudity => "nudity",
            Self::Underage => "underage",
            Self::Other => "other",
        }
    }

    /// The reason named `text`, exactly.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == text)
    }
}

impl fmt::Display for ReportReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A `user:report` payload, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRequest {
    /// Why.
    pub reason: ReportReason,
    /// Free text, at most [`MAX_DETAILS_CHARS`] characters, control characters removed.
    pub details: Option<String>,
}

impl ReportRequest {
    /// Reads `{reason, details?}`: `reason` one of [`ReportReason::ALL`]; `details` a string
    /// of at most [`MAX_DETAILS_CHARS`] characters (null or missing: none).
    pub fn from_payload(payload: &Value) -> Result<Self, DomainError> {
        let object = payload.as_object().ok_or_else(|| {
            DomainError::invalid("The report must be an object {reason, details?}")
        })?;
        let reason = object
            .get("reason")
            .and_then(Value::as_str)
            .and_then(ReportReason::parse)
            .ok_or_else(|| {
                DomainError::invalid(
                    "reason must be one of spam, harassment, nudity, underage, other",
                )
            })?;
        let details = match object.get("details") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                if text.chars().count() > MAX_DETAILS_CHARS {
                    return Err(DomainError::invalid(format!(
                        "details must be at most {MAX_DETAILS_CHARS} characters"
                    )));
                }
                let cleaned: String = text
                    .chars()
                    .filter(|c| !c.is_control() || *c == '\n')
                    .collect();
                let cleaned = cleaned.trim().to_owned();
                (!cleaned.is_empty()).then_some(cleaned)
            }
            Some(_) => return Err(DomainError::invalid("details must be a string")),
        };
        Ok(Self { reason, details })
    }
}

/// A report as the stores keep it and the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The report.
    pub id: ReportId,
    /// Who reported.
    pub reporter_id: UserId,
    /// Who was reported.
    pub reported_id: UserId,
    /// Why.
    pub reason: ReportReason,
    /// What the reporter wrote.
    pub details: Option<String>,
    /// The room they were in.
    pub room_id: Option<RoomId>,
    /// When.
    pub created_at: Timestamp,
}

/// Who started a ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanSource {
    /// Enough distinct reporters.
    Reports,
    /// An operator, through the admin API.
    Admin,
}

/// A ban: its user and how long it holds. What it covers besides the user (device, client
/// addresses) the stores keep as keyed hashes only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ban {
    /// The ban.
    pub id: BanId,
    /// The banned user.
    pub user_id: UserId,
    /// Why (shown to the banned user).
    pub reason: String,
    /// Who started it.
    pub source: BanSource,
    /// When it started.
    pub created_at: Timestamp,
    /// When it ends.
    pub until: Timestamp,
}

impl Ban {
    /// Whether it still holds at `now`.
    pub fn holds_at(&self, now: Timestamp) -> bool {
        self.until > now
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reports_are_checked() {
        let ok = ReportRequest::from_payload(&json!({"reason": "spam", "details": " hi\u{7} "}));
        assert_eq!(
            ok,
            Ok(ReportRequest {
                reason: ReportReason::Spam,
                details: Some("hi".into())
            })
        );
        for bad in [
            json!(null),
            json!("spam"),
            json!({}),
            json!({"reason": "Spam"}),
            json!({"reason": "rude"}),
            json!({"reason": "other", "details": 5}),
            json!({"reason": "other", "details": "x".repeat(501)}),
        ] {
            assert!(ReportRequest::from_payload(&bad).is_err(), "{bad}");
        }
        let long = json!({"reason": "other", "details": "é".repeat(500)});
        assert!(
            ReportRequest::from_payload(&long).is_ok(),
            "500 characters, not bytes"
        );
    }
}
