//! Releasing what budget reservations hold, inside a write transaction of either database:
//! a reservation deleted whole (its request's ledger row, its expiry, its lease released) or
//! drawn from (a leased request's ledger row, or a lease giving back what it holds beyond
//! its requests in flight). Whatever leaves a reservation leaves the running totals of
//! `budget_reserved` in the same transaction, and only what really left it: a reservation
//! already gone releases nothing, so each amount is released once whatever the order.

use std::collections::BTreeMap;

/// A reservation released or drawn from: whose it was and what left it.
pub(crate) type Released = (String, String, i64, i64);

/// Rows per statement: far below both databases' parameter limits.
pub(crate) const IDS_PER_STATEMENT: usize = 256;

/// What `released` released, per org and workspace.
pub(crate) fn released_totals(released: &[Released]) -> BTreeMap<(&str, &str), (i64, i64)> {
    let mut totals = BTreeMap::<(&str, &str), (i64, i64)>::new();
    for (org, workspace, tokens, cost) in released {
        let entry = totals.entry((org.as_str(), workspace.as_str())).or_default();
        entry.0 = entry.0.saturating_add(*tokens);
        entry.1 = entry.1.saturating_add(*cost);
    }
    totals
}

/// Deletes the reservations whose ids `$ids` (an iterator of `&str`) yields, inside `$tx`;
/// evaluates to what each deleted one held (`Vec<Released>`).
macro_rules! delete_reservations {
    ($tx:expr, $ids:expr) => {{
        let ids: Vec<&str> = $ids.collect();
        let mut released: Vec<$crate::reservations::Released> = Vec::new();
        for chunk in ids.chunks($crate::reservations::IDS_PER_STATEMENT) {
            let mut delete = sqlx::QueryBuilder::new("DELETE FROM budget_reservations WHERE id IN (");
            let mut list = delete.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            delete.push(") RETURNING org_id, workspace_id, tokens, cost_micros");
            released.extend(delete.build_query_as::<$crate::reservations::Released>().fetch_all(&mut *$tx).await?);
        }
        released
    }};
}

/// Draws `(id, Amounts)` pairs (an iterator) from the reservations they name, inside `$tx`;
/// evaluates to what left each one still held (`Vec<Released>`).
macro_rules! draw_from_reservations {
    ($tx:expr, $draws:expr) => {{
        let mut released: Vec<$crate::reservations::Released> = Vec::new();
        for (id, drawn) in $draws {
            let drawn: $crate::leases::Amounts = drawn;
            if drawn == $crate::leases::Amounts::default() {
                continue;
            }
            let row: Option<(String, String)> = sqlx::query_as(
                "UPDATE budget_reservations SET tokens = tokens - $2, cost_micros = cost_micros - $3 WHERE id = $1
                 RETURNING org_id, workspace_id",
            )
            .bind(id)
            .bind(drawn.tokens)
            .bind(drawn.cost_micros)
            .fetch_optional(&mut *$tx)
            .await?;
            if let Some((org, workspace)) = row {
                released.push((org, workspace, drawn.tokens, drawn.cost_micros));
            }
        }
        released
    }};
}

/// Subtracts what `$released` (`&[Released]`) released from the running totals, inside `$tx`.
macro_rules! subtract_released {
    ($tx:expr, $released:expr) => {{
        for ((org, workspace), (tokens, cost)) in $crate::reservations::released_totals($released) {
            sqlx::query(
                "UPDATE budget_reserved SET tokens = tokens - $3, cost_micros = cost_micros - $4 WHERE org_id = $1 AND workspace_id = $2",
            )
            .bind(org)
            .bind(workspace)
            .bind(tokens)
            .bind(cost)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

/// Adds `$amounts` (`Amounts`) to what org `$org`'s workspace `$workspace` holds reserved,
/// inside `$tx`.
macro_rules! add_reserved {
    ($tx:expr, $org:expr, $workspace:expr, $amounts:expr) => {{
        let amounts: $crate::leases::Amounts = $amounts;
        sqlx::query(
            "INSERT INTO budget_reserved AS t (org_id, workspace_id, tokens, cost_micros) VALUES ($1, $2, $3, $4)
             ON CONFLICT (org_id, workspace_id) DO UPDATE SET tokens = t.tokens + excluded.tokens, cost_micros = t.cost_micros + excluded.cost_micros",
        )
        .bind($org)
        .bind($workspace)
        .bind(amounts.tokens)
        .bind(amounts.cost_micros)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Inserts reservation `$id` of `$amounts` (`Amounts`) for org `$org`'s workspace
/// `$workspace`, held until `$expires_at`, and adds it to the totals, inside `$tx`.
macro_rules! insert_reservation {
    ($tx:expr, $id:expr, $org:expr, $workspace:expr, $amounts:expr, $expires_at:expr) => {{
        let amounts: $crate::leases::Amounts = $amounts;
        sqlx::query(
            "INSERT INTO budget_reservations (id, org_id, workspace_id, tokens, cost_micros, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($id)
        .bind($org)
        .bind($workspace)
        .bind(amounts.tokens)
        .bind(amounts.cost_micros)
        .bind($expires_at)
        .execute(&mut *$tx)
        .await?;
        $crate::reservations::add_reserved!($tx, $org, $workspace, amounts);
    }};
}

pub(crate) use {add_reserved, delete_reservations, draw_from_reservations, insert_reservation, subtract_released};
