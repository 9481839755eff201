-- Token budgets per org and period.
CREATE TABLE budgets (
    org_id      TEXT PRIMARY KEY REFERENCES orgs(id) ON DELETE CASCADE,
    period      TEXT NOT NULL CHECK (period IN ('day', 'month')),
    tokens      BIGINT NOT NULL CHECK (tokens >= 0),
    updated_at  BIGINT NOT NULL
);
