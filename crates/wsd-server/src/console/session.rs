//! Console sign-in state in the browser: an API token (admin or org) is exchanged once for a
//! session (`crate::sessions`) whose id lives in an HttpOnly, SameSite=Strict cookie. Every
//! request checks the token again through the API's authenticator, so a revoked token ends
//! its sessions within the authenticator's cache time (at once when revoked through this
//! process).

use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use crate::auth::Caller;
pub use crate::sessions::{SESSION_LIFETIME, random};
use crate::state::AppState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "wsd_session";
/// The cookie that ties the sign-in form to the browser that loaded it (no login CSRF).
pub const SIGN_IN_COOKIE: &str = "wsd_sign_in";

/// The value of cookie `name` in a request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`, Secure when the request came
/// over HTTPS (as the TLS terminator in front of wsd says); `max_age` 0 removes it.
pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: Duration) -> String {
    let secure = headers.get("x-forwarded-proto").is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}", max_age.as_secs(), if secure { "; Secure" } else { "" })
}

/// Whether a submitted CSRF token is the expected one (in constant time).
pub fn same_token(expected: &str, submitted: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
}

/// A signed-in console user: who the session's token is, its session id and CSRF token.
/// Without a live session the request is sent to the sign-in page.
#[derive(Debug)]
pub struct ConsoleSession {
    pub caller: Caller,
    pub id: String,
    pub csrf: String,
    /// How the pages name who signed in (`org acme`).
    pub label: String,
}

impl ConsoleSession {
    /// The session as the pages see it.
    pub fn viewer(&self) -> super::pages::Viewer<'_> {
        super::pages::Viewer { caller: &self.caller, csrf: &self.csrf, label: &self.label }
    }
}

impl FromRequestParts<std::sync::Arc<AppState>> for ConsoleSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &std::sync::Arc<AppState>) -> Result<Self, Self::Rejection> {
        let to_sign_in = || Redirect::to("/console/sign-in").into_response();
        let id = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_sign_in)?.to_owned();
        let (token_hash, csrf, label) = state.console.get(&id, Instant::now()).ok_or_else(to_sign_in)?;
        match state.auth.caller_by_hash(token_hash).await {
            Ok(caller) => Ok(ConsoleSession { caller, id, csrf, label }),
            Err(_) => {
                state.console.close(&id);
                Err(to_sign_in())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_name_and_set_strict() {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::COOKIE, "a=1; wsd_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "wsd"), None);
        let set = set_cookie(&headers, SESSION_COOKIE, "v", SESSION_LIFETIME);
        assert_eq!(set, "wsd_session=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200");
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(set_cookie(&headers, SESSION_COOKIE, "v", SESSION_LIFETIME).ends_with("; Secure"));
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("", ""));
    }
}
