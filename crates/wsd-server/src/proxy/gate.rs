//! What the proxy checks before it calls upstream, kept off the database on the hot path:
//! which workspace a usage token belongs to, the platform's vendor keys, which scopes of an
//! org have budgets and its own rate limits. Each is read from the store, then trusted for
//! a short time; changes made through this process, or announced by another, clear them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use wsd_core::plan::SecretOrigin;
use wsd_core::{EnvKey, SecretValue};
use wsd_store::{OrgRateLimits, ProxiedRoute, SecretOwner, Store, StoreError, TokenKind};

use crate::cache::TtlCache;

/// How long a usage token or a platform key read from the store is trusted.
pub const GATE_CACHE_TTL: Duration = Duration::from_secs(5);
/// How long an org's budget scopes (which of its scopes have budgets) are trusted; budgets
/// set through this process apply at once, through another within this time.
pub const BUDGET_REFRESH: Duration = Duration::from_secs(1);

/// How long a tenant's key opened for a proxy-delivered workspace stays in memory: a key
/// replaced at wsd is used from the next request on (every change through the API clears
/// it at once), and an opened key is not kept longer than a few seconds.
pub const TENANT_KEY_TTL: Duration = Duration::from_secs(2);

/// The workspace a live usage token was minted for, and the model it was planned with: the
/// only model a platform-routed workspace may call. A proxy-delivered BYOK workspace's token
/// also names the provider and the secret its calls are sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageGrant {
    pub org: String,
    pub workspace: String,
    pub model: String,
    pub proxied: Option<ProxiedRoute>,
}

#[derive(Debug)]
pub struct Gate {
    usage_tokens: TtlCache<Vec<u8>, Arc<UsageGrant>>,
    platform_keys: TtlCache<EnvKey, Option<Arc<SecretValue>>>,
    budget_scopes: TtlCache<String, Arc<BudgetScopes>>,
    /// Each org's own rate limits, `None` for the platform's defaults.
    rate_limits: TtlCache<String, Option<OrgRateLimits>>,
    /// Keys of proxy-delivered workspaces, by (org, workspace for a workspace secret, name).
    tenant_keys: TtlCache<(String, Option<String>, EnvKey), Option<Arc<SecretValue>>>,
}

/// Which scopes of an org have budgets.
#[derive(Debug, Default)]
struct BudgetScopes {
    org: bool,
    workspaces: HashSet<String>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            usage_tokens: TtlCache::new(GATE_CACHE_TTL, 100_000),
            platform_keys: TtlCache::new(GATE_CACHE_TTL, 1_000),
            budget_scopes: TtlCache::new(BUDGET_REFRESH, 100_000),
            rate_limits: TtlCache::new(BUDGET_REFRESH, 100_000),
            tenant_keys: TtlCache::new(TENANT_KEY_TTL, 100_000),
        }
    }
}

impl Gate {
    /// The workspace behind a presented usage token; `None` for anything else (another kind
    /// of token, a revoked or unknown one).
    pub async fn usage_grant(&self, store: &Store, presented: &str) -> Result<Option<Arc<UsageGrant>>, StoreError> {
        self.usage_tokens
            .get_or_try_load(wsd_store::token_hash(presented), async {
                let (org, workspace, proxied) = match store.authenticate_token(presented).await? {
                    Some(token) if token.kind == TokenKind::Usage => match (token.org_id, token.workspace_id) {
                        (Some(org), Some(workspace)) => (org, workspace, token.proxied),
                        _ => return Ok(None),
                    },
                    _ => return Ok(None),
                };
                match store.get_workspace(&org, &workspace).await {
                    Ok(found) => Ok(Some(Arc::new(UsageGrant { org, workspace, model: found.model, proxied }))),
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

    /// The secret a proxy-delivered workspace's calls are sent with, opened from the vault
    /// and kept for [`TENANT_KEY_TTL`] at most; `None` when it is no longer set.
    pub async fn tenant_key(
        &self,
        store: &Store,
        grant: &UsageGrant,
        route: &ProxiedRoute,
    ) -> Result<Option<Arc<SecretValue>>, StoreError> {
        let owner = match route.origin {
            SecretOrigin::Org => SecretOwner::Org { org: &grant.org },
            SecretOrigin::Workspace => SecretOwner::Workspace { org: &grant.org, workspace: &grant.workspace },
        };
        let workspace = (route.origin == SecretOrigin::Workspace).then(|| grant.workspace.clone());
        let load = async { Ok::<_, StoreError>(Some(store.get_secret(owner, &route.key).await?.map(Arc::new))) };
        Ok(self.tenant_keys.get_or_try_load((grant.org.clone(), workspace, route.key.clone()), load).await?.flatten())
    }

    /// A tenant secret was written or deleted, or a key rotated.
    pub fn forget_tenant_keys(&self) {
        self.tenant_keys.clear();
    }

    /// Whether a budget applies to requests of `workspace`: the org's budget scopes, read
    /// from the store and trusted for [`BUDGET_REFRESH`]. Only then does admission go to the
    /// database.
    pub async fn budgeted(&self, store: &Store, org: &str, workspace: &str) -> Result<bool, StoreError> {
        let scopes = self
            .budget_scopes
            .get_or_try_load(org.to_owned(), async {
                let budgets = store.list_budgets(org).await?;
                let scopes = BudgetScopes {
                    org: budgets.iter().any(|b| b.workspace_id.is_none()),
                    workspaces: budgets.into_iter().filter_map(|b| b.workspace_id).collect(),
                };
                Ok::<_, StoreError>(Some(Arc::new(scopes)))
            })
            .await?;
        Ok(scopes.is_some_and(|s| s.org || s.workspaces.contains(workspace)))
    }

    /// Every org's budget scopes and rate limits are read again on its next request.
    pub fn forget_budgets(&self) {
        self.budget_scopes.clear();
        self.rate_limits.clear();
    }

    /// The org's own rate limits, if it has any; trusted for [`BUDGET_REFRESH`].
    pub async fn org_rate_limits(&self, store: &Store, org: &str) -> Result<Option<OrgRateLimits>, StoreError> {
        let load = async { Ok::<_, StoreError>(Some(store.get_rate_limits(org).await?)) };
        Ok(self.rate_limits.get_or_try_load(org.to_owned(), load).await?.flatten())
    }
}

#[cfg(test)]
mod tests {
    use wsd_store::{BudgetPeriod, BudgetUnit, NewBudget};

    use super::*;
    use crate::test_support::temp_store as store;

    #[tokio::test]
    async fn budget_scopes_are_remembered_until_forgotten() {
        let store = store("budget").await;
        let org = store.create_org("acme", "test").await.unwrap().id;
        let new = |name| wsd_store::NewWorkspace { name, runtime: "claude-code", model: "minimax/MiniMax-M2.7" };
        let a = store.create_workspace(&org, &new("a"), "test").await.unwrap().id;
        let b = store.create_workspace(&org, &new("b"), "test").await.unwrap().id;
        let gate = Gate::default();
        assert!(!gate.budgeted(&store, &org, &a).await.unwrap(), "no budget");
        let budget = |workspace: Option<&str>| NewBudget {
            workspace_id: workspace.map(str::to_owned),
            unit: BudgetUnit::Tokens,
            period: BudgetPeriod::Day,
            limit: 100,
        };
        store.put_budget(&org, &budget(Some(&a)), "test").await.unwrap();
        assert!(!gate.budgeted(&store, &org, &a).await.unwrap(), "trusted until forgotten or expired");
        gate.forget_budgets();
        assert!(gate.budgeted(&store, &org, &a).await.unwrap());
        assert!(!gate.budgeted(&store, &org, &b).await.unwrap(), "a workspace budget is that workspace's");
        store.put_budget(&org, &budget(None), "test").await.unwrap();
        gate.forget_budgets();
        assert!(gate.budgeted(&store, &org, &b).await.unwrap(), "an org budget applies to every workspace");
        assert!(!gate.budgeted(&store, "another-org", &b).await.unwrap());
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
        assert_eq!(*grant, UsageGrant { org: org.clone(), workspace, model: "minimax/MiniMax-M2.7".into(), proxied: None });
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
