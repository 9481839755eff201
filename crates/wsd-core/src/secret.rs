//! `SecretValue`: the only type that holds a secret's plaintext outside the vault.
//!
//! Invariant: its `Debug`, `Display` and `Serialize` never print the value, and the
//! plaintext is zeroed when the value is dropped. Reading the value is an explicit call
//! (`expose`) so every place that does it is easy to find.

use std::fmt;

use serde::{Serialize, Serializer};
use zeroize::Zeroizing;

/// What every redacted rendering of a secret shows instead of its value.
pub const REDACTED: &str = "[redacted]";

/// A secret value whose renderings are redacted and whose memory is zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The plaintext, for the one place that must hand it to a workspace.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "canary-7f3e9b2a-value";

    #[test]
    fn no_rendering_shows_the_value() {
        let secret = SecretValue::new(CANARY);
        let renderings = [
            format!("{secret:?}"),
            format!("{secret}"),
            format!("{secret:#?}"),
            serde_json::to_string(&secret).unwrap(),
            format!("{:?}", Some(vec![secret.clone()])),
        ];
        for rendered in renderings {
            assert!(!rendered.contains(CANARY), "{rendered}");
            assert!(rendered.contains(REDACTED), "{rendered}");
        }
    }

    #[test]
    fn expose_returns_the_value() {
        let secret = SecretValue::new(CANARY);
        assert_eq!(secret.expose(), CANARY);
        assert!(!secret.is_empty());
        assert!(SecretValue::new("").is_empty());
    }
}
