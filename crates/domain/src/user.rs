//! Guest users: the owner's full view, the public view, and the profile fields users set.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::DomainError;
use crate::ids::{SessionId, UserId};
use crate::time::Timestamp;
use crate::username::Username;

/// A free-text profile field (`gender`, `language`, `location`, `deviceId`): 1 to
/// [`ProfileField::MAX_LEN`] characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProfileField(String);

impl ProfileField {
    /// The longest accepted value, in characters.
    pub const MAX_LEN: usize = 64;

    /// Validates one field; `name` is used in the error message.
    pub fn parse(name: &str, text: &str) -> Result<Self, DomainError> {
        let trimmed = text.trim();
        let length = trimmed.chars().count();
        if length == 0 || length > Self::MAX_LEN {
            return Err(DomainError::invalid(format!(
                "{name} must be 1 to {} characters",
                Self::MAX_LEN
            )));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(DomainError::invalid(format!(
                "{name} must not contain control characters"
            )));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a search filter with this value accepts `candidate` (case-insensitive).
    pub fn accepts(&self, candidate: Option<&ProfileField>) -> bool {
        candidate.is_some_and(|value| value.0.eq_ignore_ascii_case(&self.0))
    }
}

impl fmt::Display for ProfileField {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl TryFrom<String> for ProfileField {
    type Error = DomainError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse("field", &text)
    }
}

impl From<ProfileField> for String {
    fn from(field: ProfileField) -> String {
        field.0
    }
}

/// What a visitor may give when creating a guest session (`POST /api/guest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// A chosen username; a generated one is used when absent.
    pub username: Option<Username>,
    /// Free-text gender.
    pub gender: Option<ProfileField>,
    /// Free-text language.
    pub language: Option<ProfileField>,
    /// Free-text location.
    pub location: Option<ProfileField>,
    /// The client's device id.
    pub device_id: Option<ProfileField>,
}

impl Profile {
    /// Parses a JSON object; unknown fields and wrong types are errors, `null` means absent.
    pub fn from_json(value: &Value) -> Result<Self, DomainError> {
        let object = as_object(value)?;
        let mut profile = Self::default();
        for (key, field) in object {
            match key.as_str() {
                "username" => {
                    profile.username = optional_string(key, field)?
                        .map(Username::parse)
                        .transpose()?
                }
                "gender" => profile.gender = optional_field(key, field)?,
                "language" => profile.language = optional_field(key, field)?,
                "location" => profile.location = optional_field(key, field)?,
                "deviceId" => profile.device_id = optional_field(key, field)?,
                other => return Err(unknown_field(other)),
            }
        }
        Ok(profile)
    }
}

/// A change to a profile (`PATCH /api/guest/me`): `None` leaves a field alone,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileUpdate {
    /// A new username (cannot be cleared).
    pub username: Option<Username>,
    /// A new gender, or `Some(None)` to clear it.
    pub gender: Option<Option<ProfileField>>,
    /// A new language, or `Some(None)` to clear it.
    pub language: Option<Option<ProfileField>>,
    /// A new location, or `Some(None)` to clear it.
    pub location: Option<Option<ProfileField>>,
}

impl ProfileUpdate {
    /// Parses a JSON object; unknown fields and wrong types are errors.
    pub fn from_json(value: &Value) -> Result<Self, DomainError> {
        let object = as_object(value)?;
        let mut update = Self::default();
        for (key, field) in object {
            match key.as_str() {
                "username" => match field {
                    Value::String(text) => update.username = Some(Username::parse(text)?),
                    _ => return Err(DomainError::invalid("username must be a string")),
                },
                "gender" => update.gender = Some(optional_field(key, field)?),
                "language" => update.language = Some(optional_field(key, field)?),
                "location" => update.location = Some(optional_field(key, field)?),
                other => return Err(unknown_field(other)),
            }
        }
        Ok(update)
    }

    /// Applies the change to `user`.
    pub fn apply(self, user: &mut GuestUser) {
        if let Some(username) = self.username {
            user.username = username;
        }
        if let Some(gender) = self.gender {
            user.gender = gender;
        }
        if let Some(language) = self.language {
            user.language = language;
        }
        if let Some(location) = self.location {
            user.location = location;
        }
    }
}

fn as_object(value: &Value) -> Result<&Map<String, Value>, DomainError> {
    value
        .as_object()
        .ok_or_else(|| DomainError::invalid("body must be a JSON object"))
}

fn unknown_field(name: &str) -> DomainError {
    let shown: String = name
        .chars()
        .take(32)
        .filter(|character| !character.is_control())
        .collect();
    DomainError::invalid(format!("unknown field: {shown}"))
}

fn optional_string<'a>(name: &str, value: &'a Value) -> Result<Option<&'a str>, DomainError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text)),
        _ => Err(DomainError::invalid(format!(
            "{name} must be a string or null"
        ))),
    }
}

fn optional_field(name: &str, value: &Value) -> Result<Option<ProfileField>, DomainError> {
    optional_string(name, value)?
        .map(|text| ProfileField::parse(name, text))
        .transpose()
}

/// A guest user as its owner sees it (`GuestUser` of the contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestUser {
    /// `guest_<uuid>`.
    pub id: UserId,
    /// The session this user lives in.
    pub session_id: SessionId,
    /// Display name.
    pub username: Username,
    /// A socket is connected and the user has not said otherwise.
    pub is_online: bool,
    /// In the matching queue.
    pub is_searching: bool,
    /// In a chat room.
    pub in_chat: bool,
    /// The partner's id while in a chat.
    pub connected_user: Option<UserId>,
    /// The live socket's id.
    pub socket_id: Option<String>,
    /// Free-text location.
    pub location: Option<ProfileField>,
    /// Free-text gender.
    pub gender: Option<ProfileField>,
    /// Free-text language.
    pub language: Option<ProfileField>,
    /// The client's device id.
    pub device_id: Option<ProfileField>,
    /// Last activity.
    pub last_seen: Timestamp,
    /// Session creation.
    pub created_at: Timestamp,
    /// When the live socket connected.
    pub connected_at: Option<Timestamp>,
}

impl GuestUser {
    /// A fresh session for `profile`, created at `now`.
    pub fn new(profile: Profile, now: Timestamp) -> Self {
        Self {
            id: UserId::generate(),
            session_id: SessionId::generate(),
            username: profile.username.unwrap_or_else(Username::generate),
            is_online: false,
            is_searching: false,
            in_chat: false,
            connected_user: None,
            socket_id: None,
            location: profile.location,
            gender: profile.gender,
            language: profile.language,
            device_id: profile.device_id,
            last_seen: now,
            created_at: now,
            connected_at: None,
        }
    }

    /// What others may see of this user.
    pub fn public(&self) -> PublicUser {
        PublicUser {
            id: self.id.clone(),
            username: self.username.clone(),
            is_online: self.is_online,
            is_searching: self.is_searching,
            in_chat: self.in_chat,
            location: self.location.clone(),
            gender: self.gender.clone(),
            language: self.language.clone(),
            last_seen: self.last_seen,
        }
    }
}

/// What others may see of a user: never its session, socket, device or address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicUser {
    /// `guest_<uuid>`.
    pub id: UserId,
    /// Display name.
    pub username: Username,
    /// Online flag.
    pub is_online: bool,
    /// Searching flag.
    pub is_searching: bool,
    /// In-chat flag.
    pub in_chat: bool,
    /// Free-text location.
    pub location: Option<ProfileField>,
    /// Free-text gender.
    pub gender: Option<ProfileField>,
    /// Free-text language.
    pub language: Option<ProfileField>,
    /// Last activity.
    pub last_seen: Timestamp,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check_profile(input: Value, expected: Result<(), &str>) {
        let result = Profile::from_json(&input)
            .map(|_| ())
            .map_err(|error| error.to_string());
        assert_eq!(result, expected.map_err(str::to_owned), "{input}");
    }

    #[test]
    fn profile_parsing() {
        check_profile(json!({}), Ok(()));
        check_profile(
            json!({"username": "Neo_1", "gender": "female", "language": "en", "location": "Paris", "deviceId": "d1"}),
            Ok(()),
        );
        check_profile(json!({"username": null, "gender": null}), Ok(()));
        check_profile(json!([]), Err("body must be a JSON object"));
        check_profile(
            json!({"username": 12}),
            Err("username must be a string or null"),
        );
        check_profile(
            json!({"username": "a b"}),
            Err("username may only contain letters, digits, _ and -"),
        );
        check_profile(
            json!({"gender": ""}),
            Err("gender must be 1 to 64 characters"),
        );
        check_profile(
            json!({"location": "x".repeat(65)}),
            Err("location must be 1 to 64 characters"),
        );
        check_profile(
            json!({"language": "e\nn"}),
            Err("language must not contain control characters"),
        );
        check_profile(json!({"isAdmin": true}), Err("unknown field: isAdmin"));
    }

    #[test]
    fn update_sets_and_clears() {
        let mut user = GuestUser::new(
            Profile::from_json(&json!({"gender": "male", "language": "en"})).unwrap_or_default(),
            Timestamp::now(),
        );
        let update = ProfileUpdate::from_json(&json!({"username": "NewName", "gender": null}));
        assert!(update.is_ok());
        if let Ok(update) = update {
            update.apply(&mut user);
        }
        assert_eq!(user.username.as_str(), "NewName");
        assert_eq!(user.gender, None);
        assert_eq!(user.language.as_ref().map(ProfileField::as_str), Some("en"));
        assert!(ProfileUpdate::from_json(&json!({"username": null})).is_err());
        assert!(ProfileUpdate::from_json(&json!({"sessionId": "x"})).is_err());
    }

    #[test]
    fn public_view_hides_private_fields() {
        let user = GuestUser::new(Profile::default(), Timestamp::from_millis(0));
        let public = serde_json::to_value(user.public()).unwrap_or_default();
        let keys: Vec<&str> = public
            .as_object()
            .map(|object| object.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys.len(), 9);
        for private in ["sessionId", "socketId", "deviceId", "connectedUser"] {
            assert!(!keys.contains(&private), "{private} leaked");
        }
    }

    #[test]
    fn guest_user_serializes_in_camel_case_and_round_trips() {
        let user = GuestUser::new(Profile::default(), Timestamp::from_millis(0));
        let value = serde_json::to_value(&user).unwrap_or_default();
        assert_eq!(value["createdAt"], "1970-01-01T00:00:00.000Z");
        assert_eq!(value["connectedUser"], Value::Null);
        let back: Option<GuestUser> = serde_json::from_value(value).ok();
        assert_eq!(back, Some(user));
    }
}
