//! API tokens: shown once at creation, stored only as a SHA-256 hash with a short prefix
//! for listings, compared in constant time, revocable, with last use recorded.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use wsd_core::plan::SecretOrigin;
use wsd_core::{EnvKey, SecretValue};

use crate::audit::append_audit;
use crate::db::{Store, new_id, now_ms, on_read, on_write};
use crate::error::{Result, StoreError};
use crate::model::{NewAuditEvent, ProxiedRoute, Token, TokenKind};

/// Every token starts with this, so that scanners can recognise a leaked one.
pub const TOKEN_PREFIX: &str = "wsd_";
const PREFIX_LEN: usize = 12;
/// How stale a token's recorded last use may be.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    org_id: Option<String>,
    workspace_id: Option<String>,
    kind: String,
    name: String,
    prefix: String,
    token_hash: Vec<u8>,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    proxied_provider: Option<String>,
    proxied_key: Option<String>,
    proxied_origin: Option<String>,
}

impl TokenRow {
    fn into_token(self) -> Result<Token> {
        let corrupt = |what: String| StoreError::Database(sqlx::Error::Decode(what.into()));
        let proxied = match (self.proxied_provider, self.proxied_key, self.proxied_origin.as_deref()) {
            (Some(provider), Some(key), Some(origin)) => Some(ProxiedRoute {
                provider,
                key: EnvKey::new(&key).map_err(|_| corrupt(format!("invalid proxied key `{key}`")))?,
                origin: match origin {
                    "org" => SecretOrigin::Org,
                    "workspace" => SecretOrigin::Workspace,
                    other => return Err(corrupt(format!("unknown secret origin `{other}`"))),
                },
            }),
            _ => None,
        };
        Ok(Token {
            proxied,
            kind: TokenKind::parse(&self.kind)
                .ok_or_else(|| StoreError::Database(sqlx::Error::Decode(format!("unknown token kind `{}`", self.kind).into())))?,
            id: self.id,
            org_id: self.org_id,
            workspace_id: self.workspace_id,
            name: self.name,
            prefix: self.prefix,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
        })
    }
}

/// The SHA-256 of a token: what is stored, and what caches may key on.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A fresh random token.
pub fn generate_token() -> SecretValue {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    rand::fill(&mut bytes[..]);
    SecretValue::new(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(*bytes)))
}

const TOKEN_COLUMNS: &str = "id, org_id, workspace_id, kind, name, prefix, token_hash, created_at, last_used_at, revoked_at, proxied_provider, proxied_key, proxied_origin";

impl Store {
    /// Creates a token and returns it with its plaintext, which is never stored.
    pub async fn create_token(
        &self,
        kind: TokenKind,
        org: Option<&str>,
        workspace: Option<&str>,
        name: &str,
        actor: &str,
    ) -> Result<(Token, SecretValue)> {
        self.mint(kind, org, workspace, name, None, actor).await
    }

    /// Mints a workspace's usage token; `proxied`: it stands for the org's own key, which
    /// wsd's proxy sends to that provider.
    pub async fn create_usage_token(
        &self,
        org: &str,
        workspace: &str,
        proxied: Option<&ProxiedRoute>,
        actor: &str,
    ) -> Result<(Token, SecretValue)> {
        self.mint(TokenKind::Usage, Some(org), Some(workspace), "usage", proxied, actor).await
    }

    /// A fresh token, stored, with its plaintext.
    async fn mint(
        &self,
        kind: TokenKind,
        org: Option<&str>,
        workspace: Option<&str>,
        name: &str,
        proxied: Option<&ProxiedRoute>,
        actor: &str,
    ) -> Result<(Token, SecretValue)> {
        let plaintext = generate_token();
        let token = self.insert_token_row(kind, org, workspace, name, &plaintext, proxied, actor).await?;
        Ok((token, plaintext))
    }

    /// Stores a token whose plaintext the caller chose (the operator's `WSD_ADMIN_TOKEN`).
    pub async fn insert_token(
        &self,
        kind: TokenKind,
        org: Option<&str>,
        workspace: Option<&str>,
        name: &str,
        plaintext: &SecretValue,
        actor: &str,
    ) -> Result<Token> {
        self.insert_token_row(kind, org, workspace, name, plaintext, None, actor).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_token_row(
        &self,
        kind: TokenKind,
        org: Option<&str>,
        workspace: Option<&str>,
        name: &str,
        plaintext: &SecretValue,
        proxied: Option<&ProxiedRoute>,
        actor: &str,
    ) -> Result<Token> {
        let token = Token {
            proxied: proxied.cloned(),
            id: new_id(),
            org_id: org.map(str::to_owned),
            workspace_id: workspace.map(str::to_owned),
            kind,
            name: name.to_owned(),
            prefix: plaintext.expose().chars().take(PREFIX_LEN).collect(),
            created_at: now_ms(),
            last_used_at: None,
            revoked_at: None,
        };
        let event = NewAuditEvent {
            org_id: token.org_id.clone(),
            actor: actor.to_owned(),
            action: "token.create".into(),
            target: format!("tokens/{}", token.id),
            details: json!({
                "kind": kind.as_str(), "name": name, "prefix": token.prefix, "workspace": workspace,
                "proxied": proxied.map(|p| json!({"provider": p.provider, "key": p.key, "origin": p.origin.as_str()})),
            }),
        };
        on_write!(self, |pool| {
            let mut tx = crate::db::Dialect::begin_write(pool).await?;
            sqlx::query(
                "INSERT INTO api_tokens (id, org_id, workspace_id, kind, name, prefix, token_hash, created_at, proxied_provider, proxied_key, proxied_origin)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&token.id)
            .bind(org)
            .bind(workspace)
            .bind(kind.as_str())
            .bind(name)
            .bind(&token.prefix)
            .bind(token_hash(plaintext.expose()))
            .bind(token.created_at)
            .bind(proxied.map(|p| p.provider.as_str()))
            .bind(proxied.map(|p| p.key.as_str()))
            .bind(proxied.map(|p| p.origin.as_str()))
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::error::conflict_or(e, "token"))?;
            append_audit!(tx, &event, pool);
            tx.commit().await?;
        });
        Ok(token)
    }

    /// The live token whose plaintext is `presented`, with its last use recorded; `None`
    /// for an unknown or revoked token.
    pub async fn authenticate_token(&self, presented: &str) -> Result<Option<Token>> {
        self.authenticate_token_hash(&token_hash(presented)).await
    }

    /// [`Store::authenticate_token`] by the token's hash: for a session that keeps the hash
    /// of the token it was opened with, never the token.
    pub async fn authenticate_token_hash(&self, presented_hash: &[u8]) -> Result<Option<Token>> {
        let row: Option<TokenRow> = on_read!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1")))
                .bind(presented_hash)
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else { return Ok(None) };
        if !bool::from(row.token_hash.as_slice().ct_eq(presented_hash)) || row.revoked_at.is_some() {
            return Ok(None);
        }
        // Last use is kept to the minute: a token in steady use costs no write per request.
        let now = now_ms();
        if row.last_used_at.is_none_or(|last| now - last >= LAST_USED_RESOLUTION_MS) {
            on_write!(self, |pool| sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&row.id)
                .execute(pool)
                .await?
                .rows_affected());
        }
        let mut token = row.into_token()?;
        token.last_used_at = Some(token.last_used_at.filter(|last| now - last < LAST_USED_RESOLUTION_MS).unwrap_or(now));
        Ok(Some(token))
    }

    /// Tokens of `org` (all tokens when `None`), newest last.
    pub async fn list_tokens(&self, org: Option<&str>) -> Result<Vec<Token>> {
        let rows: Vec<TokenRow> = on_read!(self, |pool| match org {
            Some(org) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE org_id = $1 ORDER BY created_at, id"
                )))
                .bind(org)
                .fetch_all(pool)
                .await?
            }
            None =>
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id")))
                    .fetch_all(pool)
                    .await?,
        });
        rows.into_iter().map(TokenRow::into_token).collect()
    }

    /// Revokes every live usage token of a workspace, in one transaction with one audit
    /// event; how many were revoked.
    pub async fn revoke_usage_tokens(&self, org: &str, workspace: &str, actor: &str) -> Result<u64> {
        let event = NewAuditEvent {
            org_id: Some(org.to_owned()),
            actor: actor.to_owned(),
            action: "token.revoke_usage".into(),
            target: format!("org/{org}/workspaces/{workspace}"),
            details: json!({}),
        };
        let revoked = on_write!(self, |pool| {
            let mut tx = crate::db::Dialect::begin_write(pool).await?;
            let revoked = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE org_id = $2 AND workspace_id = $3 AND kind = $4 AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(org)
            .bind(workspace)
            .bind(TokenKind::Usage.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if revoked > 0 {
                append_audit!(tx, &event, pool);
            }
            tx.commit().await?;
            revoked
        });
        Ok(revoked)
    }

    /// Revokes a token of `org` (any token when `None`).
    pub async fn revoke_token(&self, org: Option<&str>, id: &str, actor: &str) -> Result<()> {
        let event = NewAuditEvent {
            org_id: org.map(str::to_owned),
            actor: actor.to_owned(),
            action: "token.revoke".into(),
            target: format!("tokens/{id}"),
            details: json!({}),
        };
        on_write!(self, |pool| {
            let mut tx = crate::db::Dialect::begin_write(pool).await?;
            let updated = match org {
                Some(org) => {
                    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL")
                        .bind(now_ms())
                        .bind(id)
                        .bind(org)
                        .execute(&mut *tx)
                        .await?
                }
                None => {
                    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                        .bind(now_ms())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                }
            };
            if updated.rows_affected() == 0 {
                return Err(StoreError::NotFound { what: "token" });
            }
            append_audit!(tx, &event, pool);
            tx.commit().await?;
        });
        Ok(())
    }
}
