-- An org's credential delivery for its BYOK workspaces: 'direct' (the workspace holds its
-- key) or 'proxy' (wsd keeps it); NULL: the platform's default ([policy] credential_delivery).
ALTER TABLE orgs ADD COLUMN credential_delivery TEXT CHECK (credential_delivery IN ('direct', 'proxy'));

-- What a usage token of a proxy-delivered BYOK workspace stands for: the provider its calls
-- go to and the secret (name and origin, never a value) the proxy sends there. NULL for a
-- platform-routed workspace's token.
ALTER TABLE api_tokens ADD COLUMN proxied_provider TEXT;
ALTER TABLE api_tokens ADD COLUMN proxied_key TEXT;
ALTER TABLE api_tokens ADD COLUMN proxied_origin TEXT CHECK (proxied_origin IN ('org', 'workspace'));

-- Whose key a metered request ran on: the platform's, or the org's own (BYOK).
ALTER TABLE usage_ledger ADD COLUMN routing TEXT NOT NULL DEFAULT 'platform' CHECK (routing IN ('platform', 'byok'));
