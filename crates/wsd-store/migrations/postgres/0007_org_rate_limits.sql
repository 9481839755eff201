-- An org's own rate limits per workspace, in place of the platform's defaults
-- ([policy]); 0: no limit.
CREATE TABLE org_rate_limits (
    org_id               TEXT PRIMARY KEY REFERENCES orgs(id) ON DELETE CASCADE,
    requests_per_minute  BIGINT NOT NULL CHECK (requests_per_minute >= 0),
    tokens_per_minute    BIGINT NOT NULL CHECK (tokens_per_minute >= 0),
    updated_at           BIGINT NOT NULL
);
