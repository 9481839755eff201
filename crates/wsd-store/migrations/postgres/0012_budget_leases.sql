-- Budget slices leased to a process, in one round trip: the budgets that apply are locked
-- first; the lease the process held gives back what it names (what it holds beyond its
-- requests in flight); the standings are read by a statement whose snapshot is taken after
-- the locks were granted; and when the request that asks fits every budget, a new
-- reservation `p_lease` holds the slice. The slice, per unit that a budget counts, is one
-- `p_share`th of the least headroom among that unit's budgets, at most what is wanted, when
-- that holds at least two of the asking request; else exactly what the request needs (near
-- a limit no slice holds more than its request). Nothing in a unit no budget counts. The server checks the
-- grant against its own reckoning of the same standings (`wsd_store::lease_grant`).
--
-- p_need_cost NULL: the model has no price (no USD budget admits it). p_returned NULL: no
-- lease to give back from. Answers one row per budget that applies (its definition, spent
-- and reserved before the new lease, the slice granted, NULL when the request does not fit);
-- none when no budget applies, and then nothing is leased nor given back.
CREATE FUNCTION wsd_lease(p_org TEXT, p_workspace TEXT, p_lease TEXT,
                          p_returned TEXT, p_return_tokens BIGINT, p_return_cost BIGINT,
                          p_need_tokens BIGINT, p_need_cost BIGINT,
                          p_want_tokens BIGINT, p_want_cost BIGINT, p_share BIGINT,
                          p_day BIGINT, p_week BIGINT, p_month BIGINT, p_now BIGINT, p_expires_at BIGINT)
RETURNS TABLE (id TEXT, org_id TEXT, workspace_id TEXT, unit TEXT, period TEXT, limit_value BIGINT,
               updated_at BIGINT, spent BIGINT, reserved BIGINT, granted_tokens BIGINT, granted_cost BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    -- Leases expire unless extended, and a crash ends their requests: their commit need not
    -- wait for the disk.
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM 1 FROM budget_limits b
        WHERE b.org_id = p_org AND (b.workspace_id IS NULL OR b.workspace_id = p_workspace)
        ORDER BY b.id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_returned IS NOT NULL AND (p_return_tokens <> 0 OR p_return_cost <> 0) THEN
        UPDATE budget_reservations r SET tokens = r.tokens - p_return_tokens, cost_micros = r.cost_micros - p_return_cost
            WHERE r.id = p_returned;
        -- A lease already swept away has left the totals whole.
        IF FOUND THEN
            UPDATE budget_reserved t SET tokens = t.tokens - p_return_tokens, cost_micros = t.cost_micros - p_return_cost
                WHERE t.org_id = p_org AND t.workspace_id = p_workspace;
        END IF;
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
    headroom AS (
        SELECT MIN(CAST(s.limit_value AS NUMERIC) - s.spent - s.reserved) FILTER (WHERE s.unit = 'tokens') AS tokens,
               MIN(CAST(s.limit_value AS NUMERIC) - s.spent - s.reserved) FILTER (WHERE s.unit = 'usd') AS cost
        FROM standing s
    ),
    share AS (
        SELECT LEAST(p_want_tokens, div(h.tokens, p_share)) AS tokens, LEAST(p_want_cost, div(h.cost, p_share)) AS cost
        FROM headroom h
    ),
    granted AS (
        SELECT CAST(CASE WHEN h.tokens IS NULL THEN 0
                         WHEN sh.tokens >= 2 * CAST(p_need_tokens AS NUMERIC) THEN sh.tokens
                         ELSE p_need_tokens END AS BIGINT) AS tokens,
               CAST(CASE WHEN h.cost IS NULL THEN 0
                         WHEN sh.cost >= 2 * CAST(COALESCE(p_need_cost, 0) AS NUMERIC) THEN sh.cost
                         ELSE COALESCE(p_need_cost, 0) END AS BIGINT) AS cost
        FROM headroom h, share sh
        WHERE (h.tokens IS NULL OR p_need_tokens <= h.tokens)
          AND (h.cost IS NULL OR (p_need_cost IS NOT NULL AND p_need_cost <= h.cost))
    ),
    held AS (
        INSERT INTO budget_reservations (id, org_id, workspace_id, tokens, cost_micros, expires_at)
        SELECT p_lease, p_org, p_workspace, g.tokens, g.cost, p_expires_at FROM granted g
        RETURNING 1
    ),
    totalled AS (
        INSERT INTO budget_reserved AS t (org_id, workspace_id, tokens, cost_micros)
        SELECT p_org, p_workspace, g.tokens, g.cost FROM granted g
        ON CONFLICT (org_id, workspace_id) DO UPDATE SET tokens = t.tokens + excluded.tokens, cost_micros = t.cost_micros + excluded.cost_micros
        RETURNING 1
    )
    SELECT s.id, s.org_id, s.workspace_id, s.unit, s.period, s.limit_value, s.updated_at, s.spent, s.reserved, g.tokens, g.cost
    FROM standing s LEFT JOIN granted g ON true
    ORDER BY s.id;
END;
$$;
