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

-- Admission under budgets in one round trip. The budgets that apply are locked first, in
-- one statement; the standings are then read by a second statement, whose snapshot is
-- taken after the locks were granted (each statement of a volatile function takes its
-- own), so it sees every reservation committed by the admission it waited for. The same
-- statement reserves the estimate when every budget holds, adding it to the totals above.
-- The locks are held from the call to its commit, a fraction of a millisecond, rather than
-- over five round trips.
--
-- p_cost NULL: the model has no price (no USD budget admits it). Answers one row per
-- budget that applies (its definition, spent and reserved before this request, whether
-- the request was admitted); none when no budget applies, and then nothing is reserved.
CREATE FUNCTION wsd_admit(p_org TEXT, p_workspace TEXT, p_tokens BIGINT, p_cost BIGINT,
                          p_day BIGINT, p_week BIGINT, p_month BIGINT, p_now BIGINT,
                          p_reservation TEXT, p_expires_at BIGINT)
RETURNS TABLE (id TEXT, org_id TEXT, workspace_id TEXT, unit TEXT, period TEXT, limit_value BIGINT,
               updated_at BIGINT, spent BIGINT, reserved BIGINT, admitted BOOLEAN)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    -- Reservations expire, and a crash ends their requests: their commit need not wait for
    -- the disk.
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM 1 FROM budget_limits b
        WHERE b.org_id = p_org AND (b.workspace_id IS NULL OR b.workspace_id = p_workspace)
        ORDER BY b.id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH standing AS (
        SELECT b.id, b.org_id, b.workspace_id, b.unit, b.period, b.limit_value, b.updated_at,
            CAST(COALESCE(CASE WHEN b.workspace_id IS NULL THEN
                (SELECT SUM(CASE WHEN b.unit = 'tokens' THEN d.tokens ELSE d.cost_micros END) FROM usage_daily d
                 WHERE d.org_id = b.org_id AND d.day >= CASE b.period WHEN 'day' THEN p_day WHEN 'week' THEN p_week ELSE p_month END)
            ELSE
                (SELECT SUM(CASE WHEN b.unit = 'tokens' THEN d.tokens ELSE d.cost_micros END) FROM usage_daily_workspace d
                 WHERE d.org_id = b.org_id AND d.workspace_id = b.workspace_id
                   AND d.day >= CASE b.period WHEN 'day' THEN p_day WHEN 'week' THEN p_week ELSE p_month END)
            END, 0) AS BIGINT) AS spent,
            CAST(COALESCE((SELECT SUM(CASE WHEN b.unit = 'tokens' THEN t.tokens ELSE t.cost_micros END) FROM budget_reserved t
                  WHERE t.org_id = b.org_id AND (b.workspace_id IS NULL OR t.workspace_id = b.workspace_id)), 0)
               - COALESCE((SELECT SUM(CASE WHEN b.unit = 'tokens' THEN r.tokens ELSE r.cost_micros END) FROM budget_reservations r
                  WHERE r.org_id = b.org_id AND (b.workspace_id IS NULL OR r.workspace_id = b.workspace_id) AND r.expires_at <= p_now), 0)
                 AS BIGINT) AS reserved
        FROM budget_limits b
        WHERE b.org_id = p_org AND (b.workspace_id IS NULL OR b.workspace_id = p_workspace)
    ),
    verdict AS (
        SELECT COALESCE(bool_and(
            CASE WHEN s.unit = 'tokens' THEN CAST(s.spent AS NUMERIC) + s.reserved + p_tokens <= s.limit_value
                 WHEN p_cost IS NULL THEN false
                 ELSE CAST(s.spent AS NUMERIC) + s.reserved + p_cost <= s.limit_value END), false) AS fits
        FROM standing s
    ),
    held AS (
        INSERT INTO budget_reservations (id, org_id, workspace_id, tokens, cost_micros, expires_at)
        SELECT p_reservation, p_org, p_workspace, p_tokens, COALESCE(p_cost, 0), p_expires_at FROM verdict WHERE verdict.fits
        RETURNING 1
    ),
    totalled AS (
        INSERT INTO budget_reserved AS t (org_id, workspace_id, tokens, cost_micros)
        SELECT p_org, p_workspace, p_tokens, COALESCE(p_cost, 0) FROM verdict WHERE verdict.fits
        ON CONFLICT (org_id, workspace_id) DO UPDATE SET tokens = t.tokens + excluded.tokens, cost_micros = t.cost_micros + excluded.cost_micros
        RETURNING 1
    )
    SELECT s.id, s.org_id, s.workspace_id, s.unit, s.period, s.limit_value, s.updated_at, s.spent, s.reserved, v.fits
    FROM standing s, verdict v
    ORDER BY s.id;
END;
$$;
