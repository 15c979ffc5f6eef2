//! Usernames: chosen ones are parsed, missing ones generated as `AdjectiveAnimal1234`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

const ADJECTIVES: &[&str] = &[
    "Cool", "Happy", "Swift", "Brave", "Clever", "Calm", "Bright", "Lucky", "Gentle", "Bold",
    "Witty", "Sunny", "Quiet", "Wild", "Noble", "Jolly", "Mighty", "Quick", "Silent", "Cosmic",
];

const ANIMALS: &[&str] = &[
    "Panda", "Tiger", "Eagle", "Fox", "Wolf", "Otter", "Falcon", "Koala", "Dolphin", "Lion", "Owl",
    "Rabbit", "Bear", "Hawk", "Lynx", "Penguin", "Turtle", "Zebra", "Whale", "Raven",
];

/// A valid username: 3 to 24 letters, digits, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// The shortest accepted username, in characters.
    pub const MIN_LEN: usize = 3;
    /// The longest accepted username, in characters.
    pub const MAX_LEN: usize = 24;

    /// Accepts 3 to 24 ASCII letters, digits, `_` or `-`, after trimming surrounding spaces.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let trimmed = text.trim();
        let length = trimmed.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&length) {
            return Err(DomainError::invalid("username must be 3 to 24 characters"));
        }
        let allowed = |character: char| {
            character.is_ascii_alphanumeric() || character == '_' || character == '-'
        };
        if !trimmed.chars().all(allowed) {
            return Err(DomainError::invalid(
                "username may only contain letters, digits, _ and -",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// A random `AdjectiveAnimal1234` name, e.g. `CoolPanda1234`.
    pub fn generate() -> Self {
        let adjective = ADJECTIVES[fastrand::usize(..ADJECTIVES.len())];
        let animal = ANIMALS[fastrand::usize(..ANIMALS.len())];
        Self(format!(
            "{adjective}{animal}{:04}",
            fastrand::u16(0..10_000)
        ))
    }

    /// The username as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl TryFrom<String> for Username {
    type Error = DomainError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Username> for String {
    fn from(name: Username) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<&str>) {
        assert_eq!(
            Username::parse(input).ok().as_ref().map(Username::as_str),
            expected,
            "{input:?}"
        );
    }

    #[test]
    fn parses_valid_names() {
        check("abc", Some("abc"));
        check("  Cool_Panda-1  ", Some("Cool_Panda-1"));
        check(&"x".repeat(24), Some(&"x".repeat(24)));
    }

    #[test]
    fn rejects_invalid_names() {
        check("ab", None);
        check(&"x".repeat(25), None);
        check("has space", None);
        check("bad\u{0}name", None);
        check("emoji😀x", None);
        check("ünïcode", None);
        check("<script>", None);
    }

    #[test]
    fn generated_names_are_valid_and_shaped() {
        for _ in 0..200 {
            let name = Username::generate();
            assert!(Username::parse(name.as_str()).is_ok(), "{name}");
            let digits: String = name.as_str().chars().rev().take(4).collect();
            assert!(
                digits.chars().all(|character| character.is_ascii_digit()),
                "{name}"
            );
            assert!(
                ADJECTIVES
                    .iter()
                    .any(|adjective| name.as_str().starts_with(adjective)),
                "{name}"
            );
        }
    }
}
