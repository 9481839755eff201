//! The keyring: versioned 256-bit master keys, and AES-256-GCM sealing of secret values.
//!
//! Invariants: every ciphertext is bound by its associated data to (scope, org, workspace,
//! KEY), so a row copied to another org, workspace or key fails to open; every sealed value
//! records the key version that sealed it; a fresh random 96-bit nonce per seal; key
//! material and plaintext are zeroed on drop and never printed.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use wsd_core::{EnvKey, SecretValue};
use zeroize::Zeroizing;

/// The scope a secret belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Org,
    Workspace,
    Platform,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Org => "org",
            Scope::Workspace => "workspace",
            Scope::Platform => "platform",
        }
    }
}

/// What a ciphertext is bound to. Opening it under any other binding fails.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub scope: Scope,
    /// Empty for platform secrets.
    pub org: &'a str,
    /// Empty unless the scope is `Workspace`.
    pub workspace: &'a str,
    pub key: &'a EnvKey,
}

impl Binding<'_> {
    fn associated_data(&self) -> Vec<u8> {
        // Length-prefixed fields: no two different bindings encode to the same bytes.
        let mut aad = b"wsd-secret-v1".to_vec();
        for field in [self.scope.as_str(), self.org, self.workspace, self.key.as_str()] {
            aad.extend_from_slice(&(field.len() as u32).to_be_bytes());
            aad.extend_from_slice(field.as_bytes());
        }
        aad
    }
}

/// A sealed secret value, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_version: u32,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("sealed with key version {0}, which the keyring does not hold")]
    UnknownKeyVersion(u32),
    #[error("authentication failed: wrong key, tampered ciphertext, or a row moved to another org, workspace or key")]
    Authentication,
}

/// Why a keyring could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("the keyring is empty")]
    Empty,
    #[error("keyring line {line}: {problem}")]
    Malformed { line: usize, problem: String },
}

struct MasterKey(Zeroizing<[u8; 32]>);

/// Versioned master keys; the newest seals, every one opens.
pub struct Keyring {
    keys: BTreeMap<u32, MasterKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("versions", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

fn random_key() -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::fill(&mut key[..]);
    key
}

impl Keyring {
    /// A new keyring with one random key, version 1.
    pub fn generate() -> Self {
        Self { keys: BTreeMap::from([(1, MasterKey(random_key()))]) }
    }

    /// Parses a keyring: one `VERSION:BASE64` per line, or a single bare base64 key
    /// (version 1). Every key must decode to exactly 32 bytes.
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let mut keys = BTreeMap::new();
        let lines: Vec<(usize, &str)> =
            text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#')).collect();
        for &(line, content) in &lines {
            let (version, encoded) = match content.split_once(':') {
                Some((v, k)) => {
                    let version = v
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|v| *v > 0)
                        .ok_or_else(|| KeyringError::Malformed { line, problem: "the version must be a positive integer".into() })?;
                    (version, k.trim())
                }
                None if lines.len() == 1 => (1, content),
                None => {
                    return Err(KeyringError::Malformed { line, problem: "expected VERSION:BASE64".into() });
                }
            };
            let bytes = Zeroizing::new(
                BASE64.decode(encoded).map_err(|_| KeyringError::Malformed { line, problem: "the key is not valid base64".into() })?,
            );
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| KeyringError::Malformed { line, problem: format!("the key decodes to {} bytes, not 32", bytes.len()) })?;
            if keys.insert(version, MasterKey(Zeroizing::new(key))).is_some() {
                return Err(KeyringError::Malformed { line, problem: format!("version {version} appears twice") });
            }
        }
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(Self { keys })
    }

    /// The keyring in the format `parse` reads. Contains key material: for the key file only.
    pub fn render(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::from("# wsd master keys: VERSION:BASE64, the newest seals. Keep this file secret.\n"));
        for (version, key) in &self.keys {
            out.push_str(&format!("{version}:{}\n", BASE64.encode(key.0.as_slice())));
        }
        out
    }

    /// This keyring plus a new random key one version above the newest.
    pub fn with_new_version(&self) -> Self {
        let mut keys: BTreeMap<u32, MasterKey> = self.keys.iter().map(|(v, k)| (*v, MasterKey(k.0.clone()))).collect();
        keys.insert(self.current_version() + 1, MasterKey(random_key()));
        Self { keys }
    }

    /// The version new values are sealed with.
    pub fn current_version(&self) -> u32 {
        self.keys.keys().next_back().copied().unwrap_or(0)
    }

    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    pub fn holds(&self, version: u32) -> bool {
        self.keys.contains_key(&version)
    }

    fn cipher(&self, version: u32) -> Option<Aes256Gcm> {
        let key = self.keys.get(&version)?;
        Some(Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key.0)))
    }

    /// Seals `value` with the newest key, bound to `binding`.
    pub fn seal(&self, binding: &Binding<'_>, value: &SecretValue) -> Sealed {
        self.seal_with(self.current_version(), binding, value.expose().as_bytes())
    }

    fn seal_with(&self, version: u32, binding: &Binding<'_>, plaintext: &[u8]) -> Sealed {
        let cipher = self.cipher(version).expect("sealing uses a version the keyring holds");
        let mut nonce = [0u8; 12];
        rand::fill(&mut nonce);
        let aad = binding.associated_data();
        let ciphertext = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: &aad })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        Sealed { key_version: version, nonce: nonce.to_vec(), ciphertext }
    }

    /// Opens a sealed value bound to `binding`.
    pub fn open(&self, binding: &Binding<'_>, sealed: &Sealed) -> Result<SecretValue, OpenError> {
        let plaintext = self.open_bytes(binding, sealed)?;
        let text = String::from_utf8(plaintext.to_vec()).map_err(|_| OpenError::Authentication)?;
        Ok(SecretValue::new(text))
    }

    fn open_bytes(&self, binding: &Binding<'_>, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let cipher = self.cipher(sealed.key_version).ok_or(OpenError::UnknownKeyVersion(sealed.key_version))?;
        let nonce: [u8; 12] = sealed.nonce.as_slice().try_into().map_err(|_| OpenError::Authentication)?;
        let aad = binding.associated_data();
        cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: &sealed.ciphertext, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Authentication)
    }

    /// Re-seals a value under the newest key without exposing it to the caller.
    pub fn reseal(&self, binding: &Binding<'_>, sealed: &Sealed) -> Result<Sealed, OpenError> {
        let plaintext = self.open_bytes(binding, sealed)?;
        Ok(self.seal_with(self.current_version(), binding, &plaintext))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "canary-keyring-0b9d";

    fn key(name: &str) -> EnvKey {
        EnvKey::new(name).unwrap()
    }

    fn binding<'a>(org: &'a str, workspace: &'a str, k: &'a EnvKey) -> Binding<'a> {
        Binding { scope: if workspace.is_empty() { Scope::Org } else { Scope::Workspace }, org, workspace, key: k }
    }

    #[test]
    fn seals_and_opens_under_the_same_binding() {
        let ring = Keyring::generate();
        let k = key("MINIMAX_API_KEY");
        let sealed = ring.seal(&binding("org-a", "", &k), &SecretValue::new(CANARY));
        assert_eq!(sealed.key_version, 1);
        assert_eq!(sealed.nonce.len(), 12);
        assert!(!String::from_utf8_lossy(&sealed.ciphertext).contains(CANARY));
        assert_eq!(ring.open(&binding("org-a", "", &k), &sealed).unwrap().expose(), CANARY);
    }

    #[test]
    fn nonces_are_fresh_per_seal() {
        let ring = Keyring::generate();
        let k = key("K");
        let a = ring.seal(&binding("o", "", &k), &SecretValue::new("same"));
        let b = ring.seal(&binding("o", "", &k), &SecretValue::new("same"));
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn a_moved_or_edited_row_fails_closed() {
        let ring = Keyring::generate();
        let (k, other) = (key("K"), key("OTHER"));
        let sealed = ring.seal(&binding("org-a", "ws-1", &k), &SecretValue::new(CANARY));
        for wrong in
            [binding("org-b", "ws-1", &k), binding("org-a", "ws-2", &k), binding("org-a", "ws-1", &other), binding("org-a", "", &k)]
        {
            assert_eq!(ring.open(&wrong, &sealed).unwrap_err(), OpenError::Authentication);
        }
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert_eq!(ring.open(&binding("org-a", "ws-1", &k), &flipped).unwrap_err(), OpenError::Authentication);
        let mut bad_nonce = sealed.clone();
        bad_nonce.nonce.pop();
        assert_eq!(ring.open(&binding("org-a", "ws-1", &k), &bad_nonce).unwrap_err(), OpenError::Authentication);
        let mut unknown = sealed.clone();
        unknown.key_version = 7;
        assert_eq!(ring.open(&binding("org-a", "ws-1", &k), &unknown).unwrap_err(), OpenError::UnknownKeyVersion(7));
        let other_ring = Keyring::generate();
        assert_eq!(other_ring.open(&binding("org-a", "ws-1", &k), &sealed).unwrap_err(), OpenError::Authentication);
    }

    #[test]
    fn bindings_with_shifted_fields_differ() {
        let k = key("K");
        let a = Binding { scope: Scope::Workspace, org: "ab", workspace: "c", key: &k }.associated_data();
        let b = Binding { scope: Scope::Workspace, org: "a", workspace: "bc", key: &k }.associated_data();
        assert_ne!(a, b);
    }

    #[test]
    fn rotation_keeps_old_versions_and_seals_with_the_new_one() {
        let ring = Keyring::generate();
        let k = key("K");
        let old = ring.seal(&binding("o", "", &k), &SecretValue::new(CANARY));
        let rotated = ring.with_new_version();
        assert_eq!(rotated.current_version(), 2);
        assert_eq!(rotated.open(&binding("o", "", &k), &old).unwrap().expose(), CANARY);
        let resealed = rotated.reseal(&binding("o", "", &k), &old).unwrap();
        assert_eq!(resealed.key_version, 2);
        assert_eq!(rotated.open(&binding("o", "", &k), &resealed).unwrap().expose(), CANARY);
        assert_eq!(ring.open(&binding("o", "", &k), &resealed).unwrap_err(), OpenError::UnknownKeyVersion(2));
    }

    #[test]
    fn parses_what_it_renders_and_refuses_malformed_keyrings() {
        let ring = Keyring::generate().with_new_version();
        let parsed = Keyring::parse(&ring.render()).unwrap();
        assert_eq!(parsed.versions().collect::<Vec<_>>(), [1, 2]);
        let k = key("K");
        let sealed = ring.seal(&binding("o", "", &k), &SecretValue::new("v"));
        assert_eq!(parsed.open(&binding("o", "", &k), &sealed).unwrap().expose(), "v");

        let bare = BASE64.encode([7u8; 32]);
        assert_eq!(Keyring::parse(&bare).unwrap().current_version(), 1);
        assert!(matches!(Keyring::parse("# only a comment\n"), Err(KeyringError::Empty)));
        for (text, problem) in [
            ("1:AAAA".to_owned(), "decodes to 3 bytes"),
            ("x:AAAA".to_owned(), "positive integer"),
            ("0:AAAA".to_owned(), "positive integer"),
            ("1:not base64!".to_owned(), "not valid base64"),
            (format!("1:{bare}\n1:{bare}"), "appears twice"),
            (format!("{bare}\n{bare}"), "expected VERSION:BASE64"),
        ] {
            let e = Keyring::parse(&text).unwrap_err().to_string();
            assert!(e.contains(problem), "{e}");
            assert!(!e.contains(&bare), "key material in an error: {e}");
        }
    }

    #[test]
    fn debug_shows_versions_only() {
        let ring = Keyring::generate();
        let rendered = format!("{ring:?}");
        assert_eq!(rendered, "Keyring { versions: [1] }");
    }
}
