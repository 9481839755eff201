-- Tokens (input + output) per org and UTC day, kept up to date by every ledger write, so
-- that a budget check reads at most 31 rows however large the ledger grows.
CREATE TABLE usage_daily (
    org_id  TEXT NOT NULL,
    day     BIGINT NOT NULL,
    tokens  BIGINT NOT NULL,
    PRIMARY KEY (org_id, day)
);

-- `day` counts UTC days since 1970-01-01: the ledger's `at` (milliseconds) / 86400000.
INSERT INTO usage_daily (org_id, day, tokens)
    SELECT org_id, at / 86400000, SUM(input_tokens + output_tokens) FROM usage_ledger GROUP BY org_id, at / 86400000;
