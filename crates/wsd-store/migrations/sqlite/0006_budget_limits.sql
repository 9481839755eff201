-- Budgets: several per org, each for the org or one of its workspaces, in tokens or in
-- micro-dollars, over a UTC day, ISO week or calendar month. They replace the one token
-- budget per org, which is carried over.
CREATE TABLE budget_limits (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    workspace_id  TEXT REFERENCES workspaces(id) ON DELETE CASCADE,
    unit          TEXT NOT NULL CHECK (unit IN ('tokens', 'usd')),
    period        TEXT NOT NULL CHECK (period IN ('day', 'week', 'month')),
    limit_value   BIGINT NOT NULL CHECK (limit_value >= 0),
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX budget_limits_org_scope ON budget_limits (org_id, unit, period) WHERE workspace_id IS NULL;
CREATE UNIQUE INDEX budget_limits_workspace_scope ON budget_limits (org_id, workspace_id, unit, period) WHERE workspace_id IS NOT NULL;
INSERT INTO budget_limits (id, org_id, workspace_id, unit, period, limit_value, updated_at)
    SELECT 'bud_' || org_id, org_id, NULL, 'tokens', period, tokens, updated_at FROM budgets;
DROP TABLE budgets;

-- What requests admitted under a budget may still spend: an estimate each, held from
-- admission until the request's ledger row is stored (in the same transaction), or until
-- it expires if wsd stopped in between.
CREATE TABLE budget_reservations (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    tokens        BIGINT NOT NULL,
    cost_micros   BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX budget_reservations_by_org ON budget_reservations (org_id, expires_at);

-- The per-day totals gain cost (micro-dollars of the rows whose cost is known), and a
-- per-workspace twin for workspace budgets.
ALTER TABLE usage_daily ADD COLUMN cost_micros BIGINT NOT NULL DEFAULT 0;
UPDATE usage_daily SET cost_micros = (
    SELECT COALESCE(SUM(cost_micros), 0) FROM usage_ledger l WHERE l.org_id = usage_daily.org_id AND l.at / 86400000 = usage_daily.day
);
CREATE TABLE usage_daily_workspace (
    org_id        TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    day           BIGINT NOT NULL,
    tokens        BIGINT NOT NULL,
    cost_micros   BIGINT NOT NULL,
    PRIMARY KEY (org_id, workspace_id, day)
);
INSERT INTO usage_daily_workspace (org_id, workspace_id, day, tokens, cost_micros)
    SELECT org_id, workspace_id, at / 86400000, SUM(input_tokens + output_tokens), COALESCE(SUM(cost_micros), 0)
    FROM usage_ledger GROUP BY org_id, workspace_id, at / 86400000;
