//! Rate limits per workspace: requests and tokens per minute, over a sliding window of sixty
//! one-second slots kept in this process's memory. A request over a limit gets 429 with
//! the seconds until enough of the window has passed. Limits are per process: with several
//! wsd processes behind a balancer, each enforces them on what it serves.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Requests and tokens (input plus output) a workspace may use per minute; 0: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RateLimits {
    pub requests_per_minute: u64,
    pub tokens_per_minute: u64,
}

impl RateLimits {
    pub fn none(&self) -> bool {
        self.requests_per_minute == 0 && self.tokens_per_minute == 0
    }
}

const SLOTS: u64 = 60;

/// One workspace's last minute, a slot per second.
#[derive(Debug, Clone)]
struct Window {
    /// The second of the newest slot written.
    last: u64,
    requests: [u64; SLOTS as usize],
    tokens: [u64; SLOTS as usize],
}

impl Window {
    fn new(now: u64) -> Self {
        Self { last: now, requests: [0; SLOTS as usize], tokens: [0; SLOTS as usize] }
    }

    /// Clears the slots of the seconds between the last write and `now`.
    fn advance(&mut self, now: u64) {
        if now <= self.last {
            return;
        }
        let passed = (now - self.last).min(SLOTS);
        for second in now + 1 - passed..=now {
            let slot = (second % SLOTS) as usize;
            self.requests[slot] = 0;
            self.tokens[slot] = 0;
        }
        self.last = now;
    }

    /// The seconds until the slots' sum drops below `limit`, or `None` when it is below.
    fn wait(slots: &[u64; SLOTS as usize], now: u64, limit: u64) -> Option<u64> {
        let total: u64 = slots.iter().sum();
        if limit == 0 || total < limit {
            return None;
        }
        // The oldest second still in the window leaves it first.
        let mut left = total;
        for age in (0..SLOTS).rev() {
            let second = now.saturating_sub(age);
            if age > now {
                continue;
            }
            left -= slots[(second % SLOTS) as usize];
            if left < limit {
                return Some(SLOTS - age);
            }
        }
        Some(SLOTS)
    }
}

/// The windows of every workspace that made a request in the last minute.
#[derive(Debug)]
pub struct Limiter {
    started: Instant,
    windows: Mutex<HashMap<String, Window>>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self { started: Instant::now(), windows: Mutex::default() }
    }
}

/// Past this many windows, those idle for a minute are dropped.
const MAX_IDLE_WINDOWS: usize = 10_000;

impl Limiter {
    fn now(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Counts one request of `workspace`, or says how many seconds it must wait.
    pub fn admit(&self, workspace: &str, limits: RateLimits) -> Result<(), u64> {
        self.admit_at(workspace, limits, self.now())
    }

    fn admit_at(&self, workspace: &str, limits: RateLimits, now: u64) -> Result<(), u64> {
        if limits.none() {
            return Ok(());
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > MAX_IDLE_WINDOWS {
            windows.retain(|_, w| w.last + SLOTS > now);
        }
        let window = windows.entry(workspace.to_owned()).or_insert_with(|| Window::new(now));
        window.advance(now);
        let wait =
            [Window::wait(&window.requests, now, limits.requests_per_minute), Window::wait(&window.tokens, now, limits.tokens_per_minute)]
                .into_iter()
                .flatten()
                .max();
        if let Some(seconds) = wait {
            return Err(seconds);
        }
        window.requests[(now % SLOTS) as usize] += 1;
        Ok(())
    }

    /// Adds the tokens a request of `workspace` used, once its answer is done.
    pub fn charge(&self, workspace: &str, tokens: u64) {
        self.charge_at(workspace, tokens, self.now());
    }

    fn charge_at(&self, workspace: &str, tokens: u64, now: u64) {
        if tokens == 0 {
            return;
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        // Only a workspace under a limit has a window.
        if let Some(window) = windows.get_mut(workspace) {
            window.advance(now);
            let slot = &mut window.tokens[(now % SLOTS) as usize];
            *slot = slot.saturating_add(tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(requests_per_minute: u64, tokens_per_minute: u64) -> RateLimits {
        RateLimits { requests_per_minute, tokens_per_minute }
    }

    #[test]
    fn requests_past_the_limit_wait_for_the_oldest_to_leave_the_window() {
        let limiter = Limiter::default();
        let three = limits(3, 0);
        assert_eq!(limiter.admit_at("w", three, 100), Ok(()));
        assert_eq!(limiter.admit_at("w", three, 110), Ok(()));
        assert_eq!(limiter.admit_at("w", three, 120), Ok(()));
        // The request of second 100 leaves the window at 160.
        assert_eq!(limiter.admit_at("w", three, 130), Err(30));
        assert_eq!(limiter.admit_at("w", three, 159), Err(1));
        assert_eq!(limiter.admit_at("w", three, 160), Ok(()));
        // Another workspace has its own window; no limit, no window.
        assert_eq!(limiter.admit_at("other", three, 130), Ok(()));
        assert_eq!(limiter.admit_at("free", limits(0, 0), 130), Ok(()));
        assert!(!limiter.windows.lock().unwrap().contains_key("free"));
    }

    #[test]
    fn tokens_count_once_used_and_refuse_until_they_age_out() {
        let limiter = Limiter::default();
        let hundred = limits(0, 100);
        assert_eq!(limiter.admit_at("w", hundred, 10), Ok(()));
        limiter.charge_at("w", 60, 10);
        assert_eq!(limiter.admit_at("w", hundred, 20), Ok(()));
        limiter.charge_at("w", 50, 25);
        // 110 of 100: the 60 of second 10 leave at 70.
        assert_eq!(limiter.admit_at("w", hundred, 30), Err(40));
        assert_eq!(limiter.admit_at("w", hundred, 70), Ok(()));
        // 130 of 100: once the 50 of second 25 leave, at 85, 80 remain.
        limiter.charge_at("w", 80, 70);
        assert_eq!(limiter.admit_at("w", hundred, 80), Err(5));
        // A whole minute later nothing is left.
        assert_eq!(limiter.admit_at("w", hundred, 200), Ok(()));
        limiter.charge_at("unknown", 1_000, 200);
        assert!(!limiter.windows.lock().unwrap().contains_key("unknown"), "a workspace under no limit keeps no window");
        limiter.charge_at("w", 0, 200);
    }

    #[test]
    fn the_stricter_limit_says_how_long_to_wait() {
        let limiter = Limiter::default();
        let both = limits(1, 10);
        assert_eq!(limiter.admit_at("w", both, 0), Ok(()));
        limiter.charge_at("w", 10, 30);
        assert_eq!(limiter.admit_at("w", both, 40), Err(50), "tokens of second 30 leave at 90, the request of 0 at 60");
        assert_eq!(limiter.admit_at("w", both, 60), Err(30));
        assert_eq!(limiter.admit_at("w", both, 90), Ok(()));
    }

    #[test]
    fn early_seconds_and_idle_windows_are_handled() {
        let limiter = Limiter::default();
        assert_eq!(limiter.admit_at("w", limits(1, 0), 0), Ok(()));
        assert_eq!(limiter.admit_at("w", limits(1, 0), 0), Err(60));
        for i in 0..=MAX_IDLE_WINDOWS {
            limiter.admit_at(&format!("w{i}"), limits(5, 0), 1).unwrap();
        }
        limiter.admit_at("late", limits(5, 0), 200).unwrap();
        assert_eq!(limiter.windows.lock().unwrap().len(), 1, "idle windows were dropped");
        assert!(RateLimits::default().none() && !limits(0, 1).none() && !limits(1, 0).none());
    }
}
