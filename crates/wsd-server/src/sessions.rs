//! The web console's sessions, by the hash of their id: the hash of the API token each was
//! opened with (never the token) and its CSRF token. They live in the process that opened
//! them (behind a balancer, route a console user to one replica) and are bounded: opening
//! one takes a valid token, and past the bound the oldest goes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a session lasts, however it is used.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The most sessions kept at once.
pub const MAX_SESSIONS: usize = 10_000;
/// The most sessions one owner (an org, or the operators) keeps at once: no tenant can sign
/// in often enough to push another's sessions out.
pub const MAX_SESSIONS_PER_OWNER: usize = 100;

#[derive(Debug)]
struct Entry {
    owner: String,
    /// How the console names who signed in (`org acme`).
    label: String,
    token_hash: Vec<u8>,
    csrf: String,
    expires: Instant,
}

/// The open sessions, by the hash of their id.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<HashMap<Vec<u8>, Entry>>,
}

fn hash(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

/// A fresh random value for a cookie or a form (256 bits).
pub fn random() -> String {
    wsd_store::generate_token().expose().to_owned()
}

impl Sessions {
    /// Opens a session of `owner` (an org's id, or `admin`), named `label`, for the token of
    /// `token_hash`: (session id, CSRF token). Past its owner's bound, the owner's oldest
    /// session goes.
    pub fn open(&self, owner: &str, label: &str, token_hash: Vec<u8>, now: Instant) -> (String, String) {
        let (id, csrf) = (random(), random());
        let mut sessions = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let owned = sessions.values().filter(|s| s.owner == owner).count();
        if owned >= MAX_SESSIONS_PER_OWNER
            && let Some(oldest) = sessions.iter().filter(|(_, s)| s.owner == owner).min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| s.expires > now);
        }
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        let entry =
            Entry { owner: owner.to_owned(), label: label.to_owned(), token_hash, csrf: csrf.clone(), expires: now + SESSION_LIFETIME };
        sessions.insert(hash(&id), entry);
        (id, csrf)
    }

    /// The token hash, CSRF token and label of a live session.
    pub fn get(&self, id: &str, now: Instant) -> Option<(Vec<u8>, String, String)> {
        let mut sessions = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = hash(id);
        match sessions.get(&key) {
            Some(s) if s.expires > now => Some((s.token_hash.clone(), s.csrf.clone(), s.label.clone())),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, id: &str) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).remove(&hash(id));
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_it_expires_or_closes() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let (id, csrf) = sessions.open("org-a", "org a", vec![1, 2, 3], now);
        assert_eq!(sessions.get(&id, now), Some((vec![1, 2, 3], csrf.clone(), "org a".to_owned())));
        assert_eq!(sessions.get("another", now), None);
        assert_eq!(sessions.get(&id, now + SESSION_LIFETIME), None, "expired");
        assert!(sessions.is_empty(), "an expired session is dropped when met");
        let (id, _) = sessions.open("org-a", "label", vec![4], now);
        sessions.close(&id);
        assert_eq!(sessions.get(&id, now), None);
    }

    #[test]
    fn sessions_are_bounded_and_the_oldest_goes_first() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let (first, _) = sessions.open("org-0", "label", vec![0], start);
        for i in 1..MAX_SESSIONS + 5 {
            sessions.open(&format!("org-{}", i % 200), "label", vec![1], start + Duration::from_millis(i as u64));
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert_eq!(sessions.get(&first, start), None);
    }

    #[test]
    fn one_owner_cannot_push_out_anothers_sessions() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let (theirs, _) = sessions.open("victim", "label", vec![9], start);
        let (first, _) = sessions.open("noisy", "label", vec![1], start);
        for i in 1..MAX_SESSIONS * 2 {
            sessions.open("noisy", "label", vec![1], start + Duration::from_millis(i as u64));
        }
        assert_eq!(sessions.len(), MAX_SESSIONS_PER_OWNER + 1);
        assert!(sessions.get(&theirs, start).is_some(), "the other owner's session stays");
        assert_eq!(sessions.get(&first, start), None, "the noisy owner's oldest went");
    }
}
