-- What live reservations hold, per org and workspace, kept beside the reservations
-- themselves: every reservation adds its estimate, its release (the request's ledger row,
-- or its expiry swept away) subtracts it. Standings read these few rows rather than sum
-- the reservations, whose table churns with an insert and a delete per request and would
-- make every admission read past the rows of every request settled since the last vacuum.
-- Reservations past their expiry and not yet swept are subtracted when standings are read.
CREATE TABLE budget_reserved (
    org_id        TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    tokens        BIGINT NOT NULL,
    cost_micros   BIGINT NOT NULL,
    PRIMARY KEY (org_id, workspace_id)
);
INSERT INTO budget_reserved (org_id, workspace_id, tokens, cost_micros)
    SELECT org_id, workspace_id, SUM(tokens), SUM(cost_micros) FROM budget_reservations GROUP BY org_id, workspace_id;
