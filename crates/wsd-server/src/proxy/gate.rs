//! What the proxy checks before it calls upstream, kept off the database on the hot path:
//! which workspace a usage token belongs to, the platform's vendor keys, and each org's
//! budget standing. Each is read from the store, then trusted for a short time; changes
//! made through this process clear them at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wsd_core::{EnvKey, SecretValue};
use wsd_store::{Budget, Store, StoreError, TokenKind};

use crate::cache::TtlCache;

/// How long a usage token or a platform key read from the store is trusted.
pub const GATE_CACHE_TTL: Duration = Duration::from_secs(5);
/// How often an org's budget standing is re-read from the store. In between, this process
/// adds what it meters itself; usage metered by other wsd processes shows at the next read.
pub const BUDGET_REFRESH: Duration = Duration::from_secs(1);

/// The workspace a live usage token was minted for, and the model it was planned with: the
/// only model it may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageGrant {
    pub org: String,
    pub workspace: String,
    pub model: String,
}

#[derive(Debug)]
pub struct Gate {
    usage_tokens: TtlCache<Vec<u8>, Arc<UsageGrant>>,
    platform_keys: TtlCache<EnvKey, Option<Arc<SecretValue>>>,
    budgets: Mutex<HashMap<String, Standing>>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            usage_tokens: TtlCache::new(GATE_CACHE_TTL, 100_000),
            platform_keys: TtlCache::new(GATE_CACHE_TTL, 1_000),
            budgets: Mutex::default(),
        }
    }
}

/// An org's budget and what it used this period, as last read plus what was metered since.
#[derive(Debug, Clone)]
struct Standing {
    budget: Option<Budget>,
    used: i64,
    period_start: i64,
    read_at: Instant,
}

impl Gate {
    /// The workspace behind a presented usage token; `None` for anything else (another kind
    /// of token, a revoked or unknown one).
    pub async fn usage_grant(&self, store: &Store, presented: &str) -> Result<Option<Arc<UsageGrant>>, StoreError> {
        self.usage_tokens
            .get_or_try_load(wsd_store::token_hash(presented), async {
                let (org, workspace) = match store.authenticate_token(presented).await? {
                    Some(token) if token.kind == TokenKind::Usage => match (token.org_id, token.workspace_id) {
                        (Some(org), Some(workspace)) => (org, workspace),
                        _ => return Ok(None),
                    },
                    _ => return Ok(None),
                };
                match store.get_workspace(&org, &workspace).await {
                    Ok(found) => Ok(Some(Arc::new(UsageGrant { org, workspace, model: found.model }))),
                    Err(StoreError::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await
    }

    /// Usage tokens were revoked: forget every grant.
    pub fn forget_usage_tokens(&self) {
        self.usage_tokens.clear();
    }

    /// The platform's secret `key`, if the operator set it.
    pub async fn platform_key(&self, store: &Store, key: &EnvKey) -> Result<Option<Arc<SecretValue>>, StoreError> {
        // A missing key is remembered too: `None` is a value here.
        let load = async { Ok::<_, StoreError>(Some(store.get_platform_secret(key).await?.map(Arc::new))) };
        Ok(self.platform_keys.get_or_try_load(key.clone(), load).await?.flatten())
    }

    /// A platform secret was written or deleted.
    pub fn forget_platform_keys(&self) {
        self.platform_keys.clear();
    }

    /// `Some((budget, used))` when the org has used up its budget for this period.
    pub async fn over_budget(&self, store: &Store, org: &str, now_ms: i64) -> Result<Option<(Budget, i64)>, StoreError> {
        let cached = self.budgets.lock().unwrap_or_else(|e| e.into_inner()).get(org).cloned();
        let standing = match cached {
            Some(s)
                if s.read_at.elapsed() < BUDGET_REFRESH && s.budget.as_ref().is_none_or(|b| b.period.start(now_ms) == s.period_start) =>
            {
                s
            }
            _ => {
                let read_at = Instant::now();
                let standing = match store.budget_usage(org).await? {
                    Some((budget, used)) => Standing { period_start: budget.period.start(now_ms), budget: Some(budget), used, read_at },
                    None => Standing { budget: None, used: 0, period_start: 0, read_at },
                };
                self.budgets.lock().unwrap_or_else(|e| e.into_inner()).insert(org.to_owned(), standing.clone());
                standing
            }
        };
        Ok(standing.budget.filter(|b| standing.used >= b.tokens).map(|b| (b, standing.used)))
    }

    /// Adds tokens this process just metered to the org's standing.
    pub fn charge(&self, org: &str, tokens: i64) {
        if let Some(standing) = self.budgets.lock().unwrap_or_else(|e| e.into_inner()).get_mut(org) {
            standing.used = standing.used.saturating_add(tokens);
        }
    }

    /// Every org's standing is read again on its next request.
    pub fn forget_budgets(&self) {
        self.budgets.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use wsd_store::{BudgetPeriod, UsageRecord};

    use super::*;
    use crate::test_support::temp_store as store;

    const DAY: i64 = 24 * 3600 * 1000;

    fn row(org: &str, tokens: i64) -> UsageRecord {
        UsageRecord {
            at: wsd_store::now_ms(),
            org_id: org.into(),
            workspace_id: "w".into(),
            provider: "minimax".into(),
            model: "MiniMax-M2.7".into(),
            input_tokens: tokens,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            status: 200,
            latency_ms: 1,
            request_id: "r".into(),
            cost_micros: None,
        }
    }

    #[tokio::test]
    async fn a_budget_standing_counts_local_usage_and_is_read_again_when_stale() {
        let store = store("budget").await;
        let org = store.create_org("acme", "test").await.unwrap().id;
        let gate = Gate::default();
        let now = wsd_store::now_ms();
        assert!(gate.over_budget(&store, &org, now).await.unwrap().is_none(), "no budget, never over");
        store.put_budget(&org, &Budget { period: BudgetPeriod::Day, tokens: 100 }, "test").await.unwrap();
        assert!(gate.over_budget(&store, &org, now).await.unwrap().is_none(), "the standing without a budget is still trusted");
        gate.forget_budgets();
        assert!(gate.over_budget(&store, &org, now).await.unwrap().is_none());

        // Metered here, not yet stored: counted at once.
        gate.charge(&org, 60);
        assert!(gate.over_budget(&store, &org, now).await.unwrap().is_none());
        gate.charge(&org, 40);
        let (budget, used) = gate.over_budget(&store, &org, now).await.unwrap().unwrap();
        assert_eq!((budget.tokens, used), (100, 100));
        gate.charge("another-org", 1_000);

        // A new period reads the store again, where nothing was stored.
        assert!(gate.over_budget(&store, &org, now + DAY).await.unwrap().is_none());
        // Stored usage shows once the standing is re-read.
        store.append_usage(&[row(&org, 150)]).await.unwrap();
        gate.forget_budgets();
        let (_, used) = gate.over_budget(&store, &org, now).await.unwrap().unwrap();
        assert_eq!(used, 150);
    }

    #[tokio::test]
    async fn usage_grants_and_platform_keys_are_remembered_until_forgotten() {
        let store = store("grants").await;
        let org = store.create_org("acme", "test").await.unwrap().id;
        let new = wsd_store::NewWorkspace { name: "dev", runtime: "claude-code", model: "minimax/MiniMax-M2.7" };
        let workspace = store.create_workspace(&org, &new, "test").await.unwrap().id;
        let gate = Gate::default();
        let (id, token) = store.create_token(TokenKind::Usage, Some(&org), Some(&workspace), "usage", "test").await.unwrap();
        let grant = gate.usage_grant(&store, token.expose()).await.unwrap().unwrap();
        assert_eq!(*grant, UsageGrant { org: org.clone(), workspace, model: "minimax/MiniMax-M2.7".into() });
        let (_, api) = store.create_token(TokenKind::Org, Some(&org), None, "api", "test").await.unwrap();
        assert!(gate.usage_grant(&store, api.expose()).await.unwrap().is_none(), "an API token is no usage token");
        assert!(gate.usage_grant(&store, "wsd_unknown").await.unwrap().is_none());

        store.revoke_token(Some(&org), &id.id, "test").await.unwrap();
        assert!(gate.usage_grant(&store, token.expose()).await.unwrap().is_some(), "trusted until forgotten or expired");
        gate.forget_usage_tokens();
        assert!(gate.usage_grant(&store, token.expose()).await.unwrap().is_none());

        let key = EnvKey::new("MINIMAX_API_KEY").unwrap();
        assert!(gate.platform_key(&store, &key).await.unwrap().is_none());
        store.put_secret(wsd_store::SecretOwner::Platform, &key, &SecretValue::new("canary-gate-key"), "test").await.unwrap();
        assert!(gate.platform_key(&store, &key).await.unwrap().is_none(), "a missing key is remembered too");
        gate.forget_platform_keys();
        assert_eq!(gate.platform_key(&store, &key).await.unwrap().unwrap().expose(), "canary-gate-key");
    }
}
