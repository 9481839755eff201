//! The bootstrap admin token: `WSD_ADMIN_TOKEN`, or one generated on the first start.

use wsd_core::SecretValue;
use wsd_store::{Store, TokenKind};

use crate::Failure;

/// The name the operator's `WSD_ADMIN_TOKEN` is stored under.
const CONFIGURED_ADMIN: &str = "admin (WSD_ADMIN_TOKEN)";

/// Why `token` is too weak to be an admin token: under 32 characters, or under 128 bits by
/// its length and alphabet (`length × log2(distinct characters)`).
fn weak_admin_token(token: &str) -> Option<String> {
    let length = token.chars().count();
    if length < 32 {
        return Some(format!("it is {length} characters long; an admin token needs at least 32"));
    }
    let distinct = token.chars().collect::<std::collections::BTreeSet<_>>().len();
    let bits = length as f64 * (distinct as f64).log2();
    (bits < 128.0).then(|| format!("it holds only {distinct} distinct characters (about {bits:.0} bits); an admin token needs 128"))
}

/// Makes sure an admin token exists: the operator's `WSD_ADMIN_TOKEN`, or on the first
/// start a generated one, printed once and stored only as a hash. A changed
/// `WSD_ADMIN_TOKEN` replaces the one configured before, which stops working.
pub async fn ensure(store: &Store, configured: Option<SecretValue>) -> Result<(), Failure> {
    let storage = |e: wsd_store::StoreError| Failure::Usage(format!("cannot set up the admin token: {e}"));
    if let Some(token) = configured {
        if let Some(reason) = weak_admin_token(token.expose()) {
            return Err(Failure::Usage(format!(
                "WSD_ADMIN_TOKEN is too weak: {reason}; generate one with `head -c 32 /dev/urandom | base64`, or leave it unset to have wsd generate one"
            )));
        }
        match store.authenticate_token(token.expose()).await.map_err(storage)? {
            Some(found) if found.kind == TokenKind::Admin => return Ok(()),
            Some(_) => return Err(Failure::Usage("WSD_ADMIN_TOKEN is already in use as another kind of token; choose a new one".into())),
            None => {}
        }
        for old in store.list_tokens(None).await.map_err(storage)? {
            if old.kind == TokenKind::Admin && old.name == CONFIGURED_ADMIN && old.revoked_at.is_none() {
                store.revoke_token(None, &old.id, "wsd").await.map_err(storage)?;
                tracing::info!(token = %old.id, "the previous WSD_ADMIN_TOKEN was revoked: it was replaced");
            }
        }
        return match store.insert_token(TokenKind::Admin, None, None, CONFIGURED_ADMIN, &token, "wsd").await {
            Err(wsd_store::StoreError::Conflict { .. }) => {
                Err(Failure::Usage("WSD_ADMIN_TOKEN was used before and revoked; choose a new one".into()))
            }
            other => other.map(drop).map_err(storage),
        };
    }
    let tokens = store.list_tokens(None).await.map_err(storage)?;
    if tokens.iter().any(|t| t.kind == TokenKind::Admin && t.revoked_at.is_none()) {
        return Ok(());
    }
    let (_, token) = store.create_token(TokenKind::Admin, None, None, "admin (generated)", "wsd").await.map_err(storage)?;
    // Shown once, on the terminal only: it is stored as a hash and never logged.
    println!("admin token (shown once, store it now): {}", token.expose());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn weak_admin_tokens_are_named_why() {
        for (weak, why) in [("admin", "5 characters"), (&"a".repeat(64)[..], "1 distinct"), (&"ab".repeat(40)[..], "2 distinct")] {
            assert!(super::weak_admin_token(weak).unwrap().contains(why), "{weak}");
        }
        for strong in ["0123456789abcdef0123456789abcdef", "wsd_Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycA"] {
            assert_eq!(super::weak_admin_token(strong), None, "{strong}");
        }
    }
}
