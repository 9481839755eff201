-- Usage reports read whole UTC days from these rollups and only the partial days at a
-- range's edges from the ledger, so a month's report reads a few thousand rows however
-- many requests the month held. Both are kept up to date by every ledger write.

-- Per org and day: everything a report sums (`tokens` and `cost_micros` stay what budgets
-- read: input plus output tokens, and the cost of the rows whose cost is known).
ALTER TABLE usage_daily ADD COLUMN requests BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN output_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN unpriced_requests BIGINT NOT NULL DEFAULT 0;
UPDATE usage_daily SET (requests, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, unpriced_requests) = (
    SELECT COUNT(*), COALESCE(SUM(l.input_tokens), 0), COALESCE(SUM(l.output_tokens), 0),
           COALESCE(SUM(l.cache_read_tokens), 0), COALESCE(SUM(l.cache_write_tokens), 0), COUNT(*) - COUNT(l.cost_micros)
    FROM usage_ledger l
    WHERE l.org_id = usage_daily.org_id AND l.at >= usage_daily.day * 86400000 AND l.at < (usage_daily.day + 1) * 86400000
);

-- Per org, workspace, provider, model, routing and day, in the order a report groups them.
CREATE TABLE usage_daily_model (
    org_id              TEXT NOT NULL,
    workspace_id        TEXT NOT NULL,
    provider            TEXT NOT NULL,
    model               TEXT NOT NULL,
    routing             TEXT NOT NULL,
    day                 BIGINT NOT NULL,
    requests            BIGINT NOT NULL,
    input_tokens        BIGINT NOT NULL,
    output_tokens       BIGINT NOT NULL,
    cache_read_tokens   BIGINT NOT NULL,
    cache_write_tokens  BIGINT NOT NULL,
    cost_micros         BIGINT NOT NULL,
    unpriced_requests   BIGINT NOT NULL,
    PRIMARY KEY (org_id, workspace_id, provider, model, routing, day)
);
INSERT INTO usage_daily_model (org_id, workspace_id, provider, model, routing, day, requests, input_tokens, output_tokens,
                               cache_read_tokens, cache_write_tokens, cost_micros, unpriced_requests)
    SELECT org_id, workspace_id, provider, model, routing, at / 86400000, COUNT(*), SUM(input_tokens), SUM(output_tokens),
           SUM(cache_read_tokens), SUM(cache_write_tokens), COALESCE(SUM(cost_micros), 0), COUNT(*) - COUNT(cost_micros)
    FROM usage_ledger GROUP BY org_id, workspace_id, provider, model, routing, at / 86400000;
