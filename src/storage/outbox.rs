//! The write-back outbox (`notion_sync.outbox`, filled by the triggers of sql/writeback.sql) as the
//! worker claims and settles it, and the registrations (`notion_sync.writeback`) it pushes by.

use super::Result;
use crate::error::SyncError;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{Map, Value};

/// A queued change, claimed (`in_flight`).
#[derive(Debug, Clone)]
pub struct Change {
    pub id: i64,
    pub user: String,
    pub db: String,
    pub page: Option<String>,
    pub row_key: Option<Value>,
    pub create: bool,
    pub changes: Map<String, Value>,
    /// This attempt's number (1 for the first).
    pub attempts: i32,
    /// An earlier attempt may have reached Notion (its answer was lost, or a stop interrupted
    /// it): a create looks before it posts.
    pub maybe_sent: bool,
}

/// How a database's changes are pushed.
#[derive(Debug, Clone)]
pub struct Registration {
    pub conflict: String,
    pub key_property: Option<String>,
    pub data_source: Option<String>,
    /// Property name -> {"id", "type"}, as enable_writeback read the schema.
    pub properties: Map<String, Value>,
}

/// How an attempt at a change ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// Notion has what the change wanted (`page`: the page it made, for a create).
    Done {
        result: String,
        page: Option<String>,
        conflicts: Option<Value>,
    },
    /// A conflict under the `manual` policy: held until resolve_writeback.
    Held {
        conflicts: Value,
    },
    /// Not tried now (the row's page is not created yet): pending again in 2 s.
    Later(String),
    /// May be tried again (after a 5xx or a lost answer: it is read back first).
    Retry(Failure),
    Failed(Failure),
    /// A create that may or may not have happened: the user decides.
    Ambiguous(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Failure {
    pub error: String,
    pub code: Option<String>,
    pub request_id: Option<String>,
    /// Notion said it changed nothing (a rate limit, a conflict): a retry need not look first.
    pub not_applied: bool,
}

/// After this many attempts a change ends `failed`.
pub const MAX_ATTEMPTS: i32 = 8;

/// Changes a stopped worker left `in_flight` are pending again: each is read back before any
/// write, so none is sent twice.
pub fn reset_in_flight() -> Result<i64> {
    let ids = Spi::connect_mut(|c| {
        let rows = c.update(
            "UPDATE notion_sync.outbox SET result = 'interrupted', maybe_sent = true
              WHERE status = 'in_flight' RETURNING id",
            None,
            &[],
        )?;
        rows.map(|r| r.get::<i64>(1).map(|v| v.unwrap_or(0)))
            .collect::<std::result::Result<Vec<i64>, _>>()
    })?;
    for id in &ids {
        Spi::run_with_args(
            "SELECT notion_sync._requeue($1, clock_timestamp())",
            &[(*id).into()],
        )?;
    }
    Ok(ids.len() as i64)
}

/// Halts mass trashes, cancels changes of databases no longer opted in, and claims up to `limit`
/// due changes. Also returns the seconds until the next pending change is due (None: none is).
pub fn claim(limit: i64, fraction: f64) -> Result<(Vec<Change>, Option<f64>)> {
    // More than `fraction` of a database's live pages (and at least 20) trashed in what is queued:
    // held, with the database marked halted, until approve_writeback.
    Spi::run_with_args(
        "WITH trash AS (
           SELECT o.user_id, o.database_id, count(*) AS n
             FROM notion_sync.outbox o
            WHERE o.status = 'pending' AND NOT o.approved AND o.changes -> '@in_trash' ->> 'to' = 'true'
            GROUP BY 1, 2),
         over AS (
           -- Live pages before these trashes: a sync table's rows show them trashed already.
           SELECT t.user_id, t.database_id, t.n,
                  coalesce(notion_sync._row_count(d.target_table, d.user_id, d.database_id), 0)
                    + CASE WHEN d.target_columns IS NULL THEN t.n ELSE 0 END AS live
             FROM trash t
             JOIN notion_sync.databases d ON d.user_id = t.user_id AND d.database_id = t.database_id),
         halt AS (
           UPDATE notion_sync.writeback w
              SET halted_at = coalesce(w.halted_at, now()),
                  halt_reason = coalesce(w.halt_reason, pg_catalog.format(
                    '%s of the %s pages of %s would be trashed in one batch: notion_sync.approve_writeback(%L, %L) sends them',
                    v.n, v.live, w.database_id, w.user_id, w.database_id))
             FROM over v
            WHERE w.user_id = v.user_id AND w.database_id = v.database_id
              AND (w.halted_at IS NOT NULL OR (v.n >= 20 AND v.n > v.live * $1))
           RETURNING w.user_id, w.database_id)
         UPDATE notion_sync.outbox o SET status = 'halted'
           FROM halt h
          WHERE o.user_id = h.user_id AND o.database_id = h.database_id AND o.status = 'pending'
            AND NOT o.approved AND o.changes -> '@in_trash' ->> 'to' = 'true'",
        &[fraction.into()],
    )?;
    // A database unregistered (unregister_database) takes its write-back with it.
    Spi::run(
        "DELETE FROM notion_sync.writeback w WHERE NOT EXISTS (
           SELECT 1 FROM notion_sync.databases d WHERE d.user_id = w.user_id AND d.database_id = w.database_id)",
    )?;
    Spi::run(
        "UPDATE notion_sync.outbox o SET status = 'cancelled', result = 'write-back disabled', done_at = clock_timestamp()
          WHERE o.status = 'pending' AND NOT EXISTS (
                SELECT 1 FROM notion_sync.writeback w WHERE w.user_id = o.user_id AND w.database_id = o.database_id)",
    )?;
    let mut out = vec![];
    Spi::connect_mut(|c| {
        let rows = c.update(
            "UPDATE notion_sync.outbox o
                SET status = 'in_flight', attempts = o.attempts + 1, sent_at = clock_timestamp()
              WHERE o.id IN (SELECT x.id FROM notion_sync.outbox x
                              WHERE x.status = 'pending' AND x.not_before <= clock_timestamp()
                              ORDER BY x.not_before, x.id LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING o.id, o.user_id, o.database_id, o.target_table, o.notion_page_id, o.row_key, o.op,
                       o.changes, o.attempts, o.maybe_sent",
            None,
            &[limit.into()],
        )?;
        for r in rows {
            let changes = match r.get::<JsonB>(8)?.map(|j| j.0) {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            out.push(Change {
                id: r.get(1)?.unwrap_or(0),
                user: r.get(2)?.unwrap_or_default(),
                db: r.get(3)?.unwrap_or_default(),
                page: r.get(5)?,
                row_key: r.get::<JsonB>(6)?.map(|j| j.0),
                create: r.get::<String>(7)?.as_deref() == Some("create"),
                changes,
                attempts: r.get(9)?.unwrap_or(1),
                maybe_sent: r.get(10)?.unwrap_or(true),
            });
        }
        Ok::<_, SyncError>(())
    })?;
    out.sort_by_key(|c| c.id);
    let next = Spi::get_one::<f64>(
        "SELECT greatest(extract(epoch FROM min(not_before) - clock_timestamp()), 0)::float8
           FROM notion_sync.outbox WHERE status = 'pending'",
    )?;
    Ok((out, next))
}

pub fn registration(user: &str, db: &str) -> Result<Option<Registration>> {
    Spi::connect(|c| {
        let rows = c.select(
            "SELECT conflict, key_property, data_source_id, properties FROM notion_sync.writeback
              WHERE user_id = $1 AND database_id = $2",
            None,
            &[user.into(), db.into()],
        )?;
        let Some(r) = rows.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(Registration {
            conflict: r.get(1)?.unwrap_or_else(|| "notion_wins".into()),
            key_property: r.get(2)?,
            data_source: r.get(3)?,
            properties: match r.get::<JsonB>(4)?.map(|j| j.0) {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            },
        }))
    })
}

/// Records how an attempt ended; `requests` it took.
pub fn settle(c: &Change, s: &Settled, requests: i64) -> Result<()> {
    let (status, result, fail, conflicts, page): (
        &str,
        Option<&str>,
        Option<&Failure>,
        Option<&Value>,
        Option<&str>,
    ) = match s {
        Settled::Done {
            result,
            page,
            conflicts,
        } => (
            "done",
            Some(result),
            None,
            conflicts.as_ref(),
            page.as_deref(),
        ),
        Settled::Held { conflicts } => (
            "conflict",
            Some("held: a conflict under the manual policy"),
            None,
            Some(conflicts),
            None,
        ),
        Settled::Later(why) if c.attempts >= MAX_ATTEMPTS => {
            ("failed", Some(why), None, None, None)
        }
        Settled::Later(why) => ("pending", Some(why), None, None, None),
        Settled::Retry(f) if c.attempts >= MAX_ATTEMPTS => ("failed", None, Some(f), None, None),
        Settled::Retry(f) if f.not_applied => ("pending", Some("not applied"), Some(f), None, None),
        Settled::Retry(f) => (
            "pending",
            Some("may have been applied"),
            Some(f),
            None,
            None,
        ),
        Settled::Failed(f) => ("failed", None, Some(f), None, None),
        Settled::Ambiguous(why) => ("ambiguous", Some(why), None, None, None),
    };
    // Backoff 2, 4, 8 ... 60 s between attempts.
    let backoff = 2f64.powi(c.attempts.clamp(1, 6)).min(60.0);
    let maybe_sent = matches!(s, Settled::Retry(f) if !f.not_applied);
    // Pending again through _requeue (a newer edit of the page is folded in); the rest here.
    Spi::run_with_args(
        "UPDATE notion_sync.outbox
            SET status = CASE WHEN $2 = 'pending' THEN status ELSE $2 END, result = coalesce($3, result),
                error = $4, notion_code = $5, request_id = $6,
                conflicts = CASE WHEN $7::jsonb IS NULL THEN conflicts ELSE coalesce(conflicts, '{}') || $7::jsonb END,
                notion_page_id = coalesce(notion_page_id, $8), requests = requests + $9,
                maybe_sent = maybe_sent OR $10,
                done_at = CASE WHEN $2 IN ('done', 'failed') THEN clock_timestamp() END
          WHERE id = $1",
        &[
            c.id.into(),
            status.into(),
            result.into(),
            fail.map(|f| f.error.as_str()).into(),
            fail.and_then(|f| f.code.as_deref()).into(),
            fail.and_then(|f| f.request_id.as_deref()).into(),
            conflicts.map(|v| JsonB(v.clone())).into(),
            page.into(),
            (requests as i32).into(),
            maybe_sent.into(),
        ],
    )?;
    if status == "pending" {
        Spi::run_with_args(
            "SELECT notion_sync._requeue($1, clock_timestamp() + make_interval(secs => $2))",
            &[c.id.into(), backoff.into()],
        )?;
    }
    Ok(())
}

/// The page id a mapped row holds now (its create may have been pushed since the change was
/// queued), found by the row's primary key.
pub fn page_of_row(table: &str, id_col: &str, key: &Value) -> Result<Option<String>> {
    let sql = format!(
        "SELECT t.{id}::text FROM {table} t, {row}",
        id = super::mapped::ident(id_col),
        row = key_match(table, key),
    );
    Ok(Spi::get_one_with_args::<String>(
        &sql,
        &[JsonB(key.clone()).into()],
    )?)
}

/// `jsonb_populate_record(NULL::table, $1) k WHERE (t.a, ...) = (k.a, ...)`: the row of `table`
/// (aliased `t`) whose primary key is `key` (a `row_key`, bound as $1), typed by the table itself.
pub fn key_match(table: &str, key: &Value) -> String {
    let cols: Vec<String> = key
        .as_object()
        .map(|m| m.keys().map(|k| super::mapped::ident(k)).collect())
        .unwrap_or_default();
    let list = |p: &str| {
        cols.iter()
            .map(|c| format!("{p}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "jsonb_populate_record(NULL::{table}, $1) k WHERE ({}) = ({})",
        list("t"),
        list("k")
    )
}

/// What one push of a database did, as a run in `sync_runs` (mode and trigger `writeback`).
pub struct PushCounts {
    pub total: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub trashed: i64,
    pub errors: i64,
    pub requests: i64,
    pub ms: i64,
    pub error: Option<String>,
}

pub fn record_run(user: &str, db: &str, c: &PushCounts) -> Result<()> {
    let int = |n: i64| (n as i32).into();
    Spi::run_with_args(
        "INSERT INTO notion_sync.sync_runs (user_id, database_id, database_name, target_table, trigger, mode, status,
                                            finished_at, total, created, updated, skipped, deleted, errors,
                                            http_requests, duration_ms, error)
         SELECT $1, $2, d.database_name, d.target_table, 'writeback', 'writeback',
                CASE WHEN $8 > 0 THEN 'partial' ELSE 'succeeded' END, clock_timestamp(),
                $3, $4, $5, $6, $7, $8, $9, $10, $11
           FROM notion_sync.databases d WHERE d.user_id = $1 AND d.database_id = $2",
        &[
            user.into(),
            db.into(),
            int(c.total),
            int(c.created),
            int(c.updated),
            int(c.skipped),
            int(c.trashed),
            int(c.errors),
            int(c.requests),
            c.ms.into(),
            c.error.as_deref().into(),
        ],
    )?;
    Ok(())
}
