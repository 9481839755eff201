//! `EnvKey`: a validated environment-variable name, the only way a secret's KEY or an env
//! entry is named anywhere in wsd.
//!
//! Invariant: an `EnvKey` always matches `^[A-Z_][A-Z0-9_]*$` and is at most 128 bytes long.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest env-var name wsd accepts.
pub const MAX_ENV_KEY_LEN: usize = 128;

/// A validated environment-variable name (`^[A-Z_][A-Z0-9_]*$`, at most 128 bytes).
/// Shared, so that a plan can name the same key in its env, decisions and sources without
/// copying it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvKey(Arc<str>);

/// Why a string is not a valid env-var name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvKeyError {
    #[error("env-var name is empty")]
    Empty,
    #[error("env-var name is longer than {MAX_ENV_KEY_LEN} characters")]
    TooLong,
    #[error("env-var name must match ^[A-Z_][A-Z0-9_]*$ (upper-case letters, digits, underscore; not starting with a digit)")]
    InvalidCharacters,
}

impl EnvKey {
    /// Validates `name` as an env-var name.
    pub fn new(name: &str) -> Result<Self, EnvKeyError> {
        let bytes = name.as_bytes();
        let Some(first) = bytes.first() else {
            return Err(EnvKeyError::Empty);
        };
        if bytes.len() > MAX_ENV_KEY_LEN {
            return Err(EnvKeyError::TooLong);
        }
        let first_ok = first.is_ascii_uppercase() || *first == b'_';
        let rest_ok = bytes[1..].iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_');
        if first_ok && rest_ok { Ok(Self(Arc::from(name))) } else { Err(EnvKeyError::InvalidCharacters) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EnvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for EnvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for EnvKey {
    type Err = EnvKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl std::borrow::Borrow<str> for EnvKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Serialize for EnvKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EnvKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        EnvKey::new(&raw).map_err(|e| serde::de::Error::custom(format!("`{raw}`: {e}")))
    }
}

/// Joins keys for messages: `A, B, C`.
pub fn join_keys<'a>(keys: impl IntoIterator<Item = &'a EnvKey>) -> String {
    keys.into_iter().map(EnvKey::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_conventional_names() {
        for name in ["A", "_", "ANTHROPIC_API_KEY", "K9", "_X_1"] {
            assert_eq!(EnvKey::new(name).map(|k| k.to_string()), Ok(name.to_owned()));
        }
    }

    #[test]
    fn refuses_what_is_not_an_env_name() {
        assert_eq!(EnvKey::new(""), Err(EnvKeyError::Empty));
        for name in ["a", "1A", "A-B", "A B", "A=B", "Ä", "anthropic_api_key", "A\n"] {
            assert_eq!(EnvKey::new(name), Err(EnvKeyError::InvalidCharacters), "{name:?}");
        }
    }

    #[test]
    fn length_limit_is_inclusive() {
        let max = "A".repeat(MAX_ENV_KEY_LEN);
        assert!(EnvKey::new(&max).is_ok());
        let over = "A".repeat(MAX_ENV_KEY_LEN + 1);
        assert_eq!(EnvKey::new(&over), Err(EnvKeyError::TooLong));
    }

    #[test]
    fn deserializing_validates() {
        let ok: Result<EnvKey, _> = serde_json::from_str("\"OK_KEY\"");
        assert!(ok.is_ok());
        let bad: Result<EnvKey, _> = serde_json::from_str("\"bad-key\"");
        assert!(bad.is_err());
    }

    #[test]
    fn renders_as_its_name() {
        let key = EnvKey::new("SOME_KEY").unwrap();
        assert_eq!(format!("{key:?} {key}"), "\"SOME_KEY\" SOME_KEY");
        assert_eq!(key.as_str(), "SOME_KEY");
    }

    #[test]
    fn join_keys_separates_with_commas() {
        let keys = [EnvKey::new("A").unwrap(), EnvKey::new("B").unwrap()];
        assert_eq!(join_keys(&keys), "A, B");
        assert_eq!(join_keys(&[]), "");
    }
}
