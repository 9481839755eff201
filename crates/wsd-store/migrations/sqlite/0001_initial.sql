-- wsd schema, SQLite. Times are unix milliseconds; ids are UUIDv7 text.

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE workspaces (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    runtime             TEXT NOT NULL,
    model               TEXT NOT NULL,
    status              TEXT NOT NULL,
    last_error_code     TEXT,
    last_error_message  TEXT,
    backend             TEXT,
    instance_id         TEXT,
    plan_hash           TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX workspaces_by_org ON workspaces (org_id, created_at);

CREATE TABLE org_secrets (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    key_version  INTEGER NOT NULL,
    nonce        BLOB NOT NULL,
    ciphertext   BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (org_id, key)
);

CREATE TABLE workspace_secrets (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id        TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    key_version   INTEGER NOT NULL,
    nonce         BLOB NOT NULL,
    ciphertext    BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, key)
);

CREATE TABLE platform_secrets (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    key          TEXT NOT NULL UNIQUE,
    key_version  INTEGER NOT NULL,
    nonce        BLOB NOT NULL,
    ciphertext   BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- One row: a known value sealed with the keyring, so that a wrong master key is detected
-- at start, before anything is read or written.
CREATE TABLE vault_canary (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    key_version  INTEGER NOT NULL,
    nonce        BLOB NOT NULL,
    ciphertext   BLOB NOT NULL
);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    org_id        TEXT REFERENCES orgs(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    token_hash    BLOB NOT NULL UNIQUE,
    workspace_id  TEXT REFERENCES workspaces(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX api_tokens_by_org ON api_tokens (org_id);

CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    org_id      TEXT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
);
CREATE INDEX audit_events_by_org ON audit_events (org_id, seq);

-- The chain's head, so that deleting the newest events is detected too.
CREATE TABLE audit_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq   INTEGER NOT NULL,
    last_hash  BLOB NOT NULL
);

CREATE TABLE usage_ledger (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    at                  INTEGER NOT NULL,
    org_id              TEXT NOT NULL,
    workspace_id        TEXT NOT NULL,
    provider            TEXT NOT NULL,
    model               TEXT NOT NULL,
    input_tokens        INTEGER NOT NULL,
    output_tokens       INTEGER NOT NULL,
    cache_read_tokens   INTEGER NOT NULL,
    cache_write_tokens  INTEGER NOT NULL,
    status              INTEGER NOT NULL,
    latency_ms          INTEGER NOT NULL,
    request_id          TEXT NOT NULL
);
CREATE INDEX usage_ledger_by_org ON usage_ledger (org_id, at);
