//! Everything the sync engine reads and writes in Postgres, through SPI. Batched: one statement
//! per API page of results, never a whole database in memory.

use crate::error::SyncError;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;
use std::collections::HashMap;

pub mod mapped;

type Result<T> = std::result::Result<T, SyncError>;

/// How the engine fills one sync table. Columns differ per table as the seed apps had them.
pub struct TableSpec {
    pub table: &'static str,
    pub name_col: &'static str,
    /// The column for the 'Description'-like text (falls back to the page body).
    pub text_col: &'static str,
    pub text_props: &'static [&'static str],
    /// A second text column and the properties it is filled from (the stories' `description`,
    /// 0.2.0; `content` keeps its rule).
    pub desc: Option<(&'static str, &'static [&'static str])>,
    pub message_count: bool,
    pub database_name: bool,
}

pub const TABLES: [TableSpec; 5] = [
    TableSpec {
        table: "notion_characters_sync",
        name_col: "name",
        text_col: "description",
        text_props: &["Description", "Bio", "Summary"],
        desc: None,
        message_count: false,
        database_name: false,
    },
    TableSpec {
        table: "notion_worlds_sync",
        name_col: "name",
        text_col: "description",
        text_props: &["Description", "Summary"],
        desc: None,
        message_count: false,
        database_name: false,
    },
    TableSpec {
        table: "notion_stories_sync",
        name_col: "title",
        text_col: "content",
        text_props: &["Content", "Summary", "Description"],
        desc: Some(("description", &["Description", "Summary"])),
        message_count: false,
        database_name: false,
    },
    TableSpec {
        table: "notion_chat_sessions_sync",
        name_col: "title",
        text_col: "transcript",
        text_props: &["Transcript", "Messages"],
        desc: None,
        message_count: true,
        database_name: false,
    },
    TableSpec {
        table: "notion_pages_sync",
        name_col: "title",
        text_col: "description",
        text_props: &["Description", "Summary", "Notes"],
        desc: None,
        message_count: false,
        database_name: true,
    },
];

/// design.md: Characters, Worlds, Stories, Chat Sessions by name (case-insensitive), else pages.
pub fn target_for_name(name: &str) -> &'static str {
    match name.trim().to_lowercase().as_str() {
        "characters" => "notion_characters_sync",
        "worlds" => "notion_worlds_sync",
        "stories" => "notion_stories_sync",
        "chat sessions" | "chat_sessions" => "notion_chat_sessions_sync",
        _ => "notion_pages_sync",
    }
}

pub fn spec(table: &str) -> &'static TableSpec {
    TABLES
        .iter()
        .find(|t| t.table == table)
        .unwrap_or(&TABLES[4])
}

/// The schema version this library writes (Cargo.toml's version, the control file's default).
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `extversion` of notion_sync in this database, None when it is not installed.
pub fn installed_version() -> Result<Option<String>> {
    optional_text(
        "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'notion_sync'",
        &[],
    )
}

/// Refuses to sync while the installed schema is older than the library (between a package
/// upgrade and `ALTER EXTENSION notion_sync UPDATE`).
pub fn check_version() -> Result<()> {
    match installed_version()? {
        Some(v) if v != LIBRARY_VERSION => Err(SyncError::Version(v)),
        _ => Ok(()),
    }
}

/// One text value, or None when there is no row (pgrx reports that as a position error).
pub(crate) fn optional_text(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Option<String>> {
    match Spi::get_one_with_args::<String>(sql, args) {
        Ok(t) => Ok(t),
        Err(pgrx::spi::SpiError::InvalidPosition) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn token(user: &str) -> Result<Option<String>> {
    optional_text(
        "SELECT token FROM notion_sync.tokens WHERE user_id = $1",
        &[user.into()],
    )
}

pub struct Registration {
    pub database_name: String,
    pub target_table: String,
    /// A table of the user's own with a column map (storage/mapped.rs), not a sync table.
    pub mapped: bool,
    /// RFC 3339, UTC.
    pub watermark: Option<String>,
}

pub fn registration(user: &str, db: &str) -> Result<Option<Registration>> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT database_name, target_table,
                    to_char(watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                    target_columns IS NOT NULL
               FROM notion_sync.databases WHERE user_id = $1 AND database_id = $2",
            Some(1),
            &[user.into(), db.into()],
        )?;
        match rows.into_iter().next() {
            Some(row) => Ok(Some(Registration {
                database_name: row.get::<String>(1)?.unwrap_or_default(),
                target_table: row.get::<String>(2)?.unwrap_or_default(),
                watermark: row.get::<String>(3)?,
                mapped: row.get::<bool>(4)?.unwrap_or(false),
            })),
            None => Ok(None),
        }
    })
}

/// A database synced without registering first is registered with schedule `manual`.
pub fn ensure_registered(user: &str, db: &str, name: &str, target: &str) -> Result<()> {
    Spi::run_with_args(
        "INSERT INTO notion_sync.databases (user_id, database_id, database_name, target_table, schedule)
         VALUES ($1, $2, $3, $4, 'manual') ON CONFLICT (user_id, database_id) DO NOTHING",
        &[user.into(), db.into(), name.into(), target.into()],
    )?;
    Ok(())
}

pub fn start_run(
    user: &str,
    db: &str,
    name: &str,
    target: &str,
    trigger: &str,
    mode: &str,
    status: &str,
) -> Result<i64> {
    Spi::get_one_with_args::<i64>(
        "INSERT INTO notion_sync.sync_runs (user_id, database_id, database_name, target_table, trigger, mode, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING run_id",
        &[user.into(), db.into(), name.into(), target.into(), trigger.into(), mode.into(), status.into()],
    )?
    .ok_or_else(|| SyncError::Storage("no run id".into()))
}

/// Advisory-lock key of one database's runs: a fixed class id ('ns') and a hash of user and id.
pub fn lock_key(user: &str, db: &str) -> (i32, i32) {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{user}\n{db}").as_bytes());
    (0x6e73, i32::from_be_bytes([h[0], h[1], h[2], h[3]]))
}

/// Takes the run lock of a database. `wait`: a transaction-level lock waited for (SQL calls);
/// otherwise a session-level try (the worker, whose run spans many transactions).
pub fn lock_run(key: (i32, i32), wait: bool) -> Result<bool> {
    if wait {
        Spi::run_with_args(
            "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
            &[key.0.into(), key.1.into()],
        )?;
        return Ok(true);
    }
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_try_advisory_lock($1, $2)",
        &[key.0.into(), key.1.into()],
    )?
    .unwrap_or(false))
}

pub fn unlock_run(key: (i32, i32)) -> Result<()> {
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_unlock($1, $2)",
        &[key.0.into(), key.1.into()],
    )?;
    Ok(())
}

pub struct RunCounts {
    pub status: String,
    pub database_name: String,
    pub total: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub deleted: i64,
    pub errors: i64,
    pub requests: i64,
    pub retries: i64,
    pub duration_ms: i64,
    pub error: Option<String>,
}

pub fn finish_run(run_id: i64, c: &RunCounts) -> Result<()> {
    Spi::run_with_args(
        "UPDATE notion_sync.sync_runs SET status = $2, database_name = $3, total = $4, created = $5,
                updated = $6, skipped = $7, deleted = $8, errors = $9, http_requests = $10, retries = $11,
                duration_ms = $12, error = $13, finished_at = clock_timestamp()
          WHERE run_id = $1",
        &[
            run_id.into(),
            c.status.as_str().into(),
            c.database_name.as_str().into(),
            (c.total as i32).into(),
            (c.created as i32).into(),
            (c.updated as i32).into(),
            (c.skipped as i32).into(),
            (c.deleted as i32).into(),
            (c.errors as i32).into(),
            (c.requests as i32).into(),
            (c.retries as i32).into(),
            c.duration_ms.into(),
            c.error.clone().into(),
        ],
    )?;
    Ok(())
}

pub fn record_errors(
    run_id: i64,
    user: &str,
    db: &str,
    errors: &[(Option<String>, String)],
) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let list: Vec<Value> = errors
        .iter()
        .map(|(p, e)| serde_json::json!({"page_id": p, "error": e}))
        .collect();
    Spi::run_with_args(
        "INSERT INTO notion_sync.sync_errors (run_id, user_id, database_id, notion_page_id, error)
         SELECT $1, $2, $3, e.page_id, e.error FROM jsonb_to_recordset($4) AS e(page_id text, error text)",
        &[run_id.into(), user.into(), db.into(), JsonB(Value::Array(list)).into()],
    )?;
    Ok(())
}

/// What is stored of a page: content hash, last sync and last edit (epoch ms).
pub struct Known {
    pub hash: Option<String>,
    pub synced_ms: Option<f64>,
    pub edited_ms: Option<f64>,
}

pub type Stored = HashMap<String, Known>;

/// Stored hash, last sync and last edit of the given pages, in a sync table or `mapped_pages`.
pub fn existing(table: &str, user: &str, ids: &[String]) -> Result<Stored> {
    let sql = format!(
        // A join on the unique key: with stale statistics `notion_page_id = ANY(...)` was planned as
        // a scan of all the user's rows, once per batch.
        "SELECT t.notion_page_id, t.content_hash, (extract(epoch FROM t.last_synced_at) * 1000)::float8,
                (extract(epoch FROM t.notion_last_edited_time) * 1000)::float8
           FROM unnest($2::text[]) AS k(id)
           JOIN notion_sync.{table} t ON t.user_id = $1 AND t.notion_page_id = k.id"
    );
    read_known(&sql, user, ids)
}

/// Runs a query of (page id, hash, synced ms, edited ms) for `$1` user and `$2` page ids.
pub(crate) fn read_known(sql: &str, user: &str, ids: &[String]) -> Result<Stored> {
    Spi::connect(|client| {
        let mut out = HashMap::new();
        for row in client.select(sql, None, &[user.into(), ids.to_vec().into()])? {
            if let Some(id) = row.get::<String>(1)? {
                out.insert(
                    id,
                    Known {
                        hash: row.get::<String>(2)?,
                        synced_ms: row.get::<f64>(3)?,
                        edited_ms: row.get::<f64>(4)?,
                    },
                );
            }
        }
        Ok(out)
    })
}

/// Upserts a batch: `rows` is a JSON array of {id,name,text,message_count,properties,hash,url,created,
/// edited,body}. Returns (created, updated).
pub fn upsert(
    spec: &TableSpec,
    user: &str,
    db: &str,
    db_name: &str,
    rows: Vec<Value>,
) -> Result<(i64, i64)> {
    if rows.is_empty() {
        return Ok((0, 0));
    }
    let (mc_col, mc_val, mc_set) = if spec.message_count {
        (
            ", message_count",
            ", r.message_count",
            ", message_count = EXCLUDED.message_count",
        )
    } else {
        ("", "", "")
    };
    let (dn_col, dn_val, dn_set) = if spec.database_name {
        (
            ", database_name",
            ", $3",
            ", database_name = EXCLUDED.database_name",
        )
    } else {
        ("", "", "")
    };
    let (ds_col, ds_val, ds_set) = match spec.desc {
        Some((col, _)) => (
            format!(", {col}"),
            ", r.descr",
            format!(", {col} = EXCLUDED.{col}"),
        ),
        None => (String::new(), "", String::new()),
    };
    let name = spec.name_col;
    let text = spec.text_col;
    let sql = format!(
        "WITH up AS (
           INSERT INTO notion_sync.{table} AS t (user_id, notion_database_id, notion_page_id, {name}, {text}{ds_col}{mc_col}{dn_col},
                  properties, content_hash, url, in_trash, notion_created_time, notion_last_edited_time, body,
                  last_synced_at, updated_at)
           SELECT $1, $2, r.id, r.name, r.text{ds_val}{mc_val}{dn_val}, r.properties, r.hash, r.url, false,
                  r.created, r.edited, r.body, now(), now()
             FROM jsonb_to_recordset($4) AS r(id text, name text, text text, descr text, message_count int, properties jsonb,
                  hash text, url text, created timestamptz, edited timestamptz, body text)
           ON CONFLICT (user_id, notion_page_id) DO UPDATE SET
                  notion_database_id = EXCLUDED.notion_database_id, {name} = EXCLUDED.{name}, {text} = EXCLUDED.{text}
                  {ds_set}{mc_set}{dn_set}, properties = EXCLUDED.properties, content_hash = EXCLUDED.content_hash,
                  url = EXCLUDED.url, in_trash = false, notion_created_time = EXCLUDED.notion_created_time,
                  notion_last_edited_time = EXCLUDED.notion_last_edited_time, body = EXCLUDED.body,
                  last_synced_at = now(), updated_at = now()
            -- Never back in time (a late webhook refetch, a stale read).
            WHERE (t.notion_last_edited_time IS NULL OR EXCLUDED.notion_last_edited_time IS NULL
               OR EXCLUDED.notion_last_edited_time >= t.notion_last_edited_time)
              -- Nothing is written when nothing changed: the hash covers what is stored of the
              -- properties (file identity, not its signature; no now() formula), the body is
              -- compared as read (a page re-read inside its edit minute).
              AND (t.content_hash IS DISTINCT FROM EXCLUDED.content_hash OR t.body IS DISTINCT FROM EXCLUDED.body
                   OR t.in_trash OR t.notion_database_id IS DISTINCT FROM EXCLUDED.notion_database_id{dn_cmp})
           RETURNING (xmax = 0) AS inserted)
         SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up",
        table = spec.table,
        dn_cmp = if spec.database_name {
            " OR t.database_name IS DISTINCT FROM EXCLUDED.database_name"
        } else {
            ""
        },
    );
    // $3 (the database name) is used by the pages table only; its type comes with the datum.
    let (c, u) = Spi::get_two_with_args::<i64, i64>(
        &sql,
        &[
            user.into(),
            db.into(),
            db_name.into(),
            JsonB(Value::Array(rows)).into(),
        ],
    )?;
    Ok((c.unwrap_or(0), u.unwrap_or(0)))
}

/// After a complete scan: rows of this database not seen are marked in trash (and their hash cleared
/// so a page that comes back is rewritten).
pub fn mark_deleted(table: &str, user: &str, db: &str, seen: Vec<String>) -> Result<i64> {
    let sql = format!(
        "WITH gone AS (
           UPDATE notion_sync.{table} t SET in_trash = true, content_hash = NULL, updated_at = now()
            WHERE t.user_id = $1 AND t.notion_database_id = $2 AND NOT t.in_trash
              AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) s(id) WHERE s.id = t.notion_page_id)
           RETURNING 1)
         SELECT count(*) FROM gone"
    );
    Ok(Spi::get_one_with_args::<i64>(&sql, &[user.into(), db.into(), seen.into()])?.unwrap_or(0))
}

/// Live rows of this database in `table` (a sync table or `mapped_pages`) and how many of them a
/// complete scan that saw `seen` would mark deleted: the mass-deletion guard's figures.
pub fn deletion_counts(table: &str, user: &str, db: &str, seen: &[String]) -> Result<(i64, i64)> {
    let sql = format!(
        "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (
                  SELECT 1 FROM unnest($3::text[]) s(id) WHERE s.id = t.notion_page_id))
           FROM notion_sync.{table} t
          WHERE t.user_id = $1 AND t.notion_database_id = $2 AND NOT t.in_trash"
    );
    let (live, gone) =
        Spi::get_two_with_args::<i64, i64>(&sql, &[user.into(), db.into(), seen.to_vec().into()])?;
    Ok((live.unwrap_or(0), gone.unwrap_or(0)))
}

/// Remembers the data source ids of a database (webhooks may name only a data source).
pub fn set_data_sources(user: &str, db: &str, sources: &[String]) -> Result<()> {
    Spi::run_with_args(
        "UPDATE notion_sync.databases SET data_sources = $3
          WHERE user_id = $1 AND database_id = $2 AND data_sources IS DISTINCT FROM $3",
        &[user.into(), db.into(), sources.to_vec().into()],
    )?;
    Ok(())
}

/// The registered database of `user` that `id` names: a database id or one of its data sources.
pub fn database_for(user: &str, id: &str) -> Result<Option<String>> {
    optional_text(
        "SELECT database_id FROM notion_sync.databases
          WHERE user_id = $1 AND (database_id = $2 OR data_sources @> ARRAY[$2])
          ORDER BY database_id = $2 DESC LIMIT 1",
        &[user.into(), id.into()],
    )
}

/// Adds a data source id learnt from Notion (`GET /v1/data_sources/{id}`) to its database.
pub fn add_data_source(user: &str, db: &str, source: &str) -> Result<()> {
    Spi::run_with_args(
        "UPDATE notion_sync.databases SET data_sources = coalesce(data_sources, '{}') || ARRAY[$3]
          WHERE user_id = $1 AND database_id = $2 AND NOT coalesce(data_sources @> ARRAY[$3], false)",
        &[user.into(), db.into(), source.into()],
    )?;
    Ok(())
}

/// Whether anything of this database is stored in `table` (a sync table or `mapped_pages`).
pub fn has_rows(table: &str, user: &str, db: &str) -> Result<bool> {
    Ok(Spi::get_one_with_args::<bool>(
        &format!(
            "SELECT EXISTS (SELECT 1 FROM notion_sync.{table} WHERE user_id = $1 AND notion_database_id = $2)"
        ),
        &[user.into(), db.into()],
    )?
    .unwrap_or(true))
}

/// The sync table holding a page and its stored properties.
pub fn stored_properties(user: &str, id: &str) -> Result<Option<(&'static str, Value)>> {
    for spec in &TABLES {
        let sql = format!(
            "SELECT properties FROM notion_sync.{} WHERE user_id = $1 AND notion_page_id = $2",
            spec.table
        );
        match Spi::get_one_with_args::<JsonB>(&sql, &[user.into(), id.into()]) {
            Ok(Some(p)) => return Ok(Some((spec.table, p.0))),
            Ok(None) | Err(pgrx::spi::SpiError::InvalidPosition) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Stores the value of one property read again (fresh file URLs); the hash does not change, since
/// it covers each file's identity, not its signature.
pub fn refresh_property(table: &str, user: &str, id: &str, name: &str, value: Value) -> Result<()> {
    Spi::run_with_args(
        &format!(
            "UPDATE notion_sync.{table} SET properties = jsonb_set(properties, ARRAY[$3, 'value'], $4)
              WHERE user_id = $1 AND notion_page_id = $2 AND properties ? $3"
        ),
        &[user.into(), id.into(), name.into(), JsonB(value).into()],
    )?;
    Ok(())
}

/// The stored page body (a webhook refetch of properties keeps it).
pub fn stored_body(table: &str, user: &str, id: &str) -> Result<Option<String>> {
    optional_text(
        &format!("SELECT body FROM notion_sync.{table} WHERE user_id = $1 AND notion_page_id = $2"),
        &[user.into(), id.into()],
    )
}

/// Marks one page in trash in whichever sync table or mapped table holds it. Returns the rows changed.
pub fn trash_page(user: &str, id: &str) -> Result<i64> {
    let mut n = mapped::trash_page(user, id)?;
    for spec in &TABLES {
        n += Spi::get_one_with_args::<i64>(
            &format!(
                "WITH t AS (UPDATE notion_sync.{} SET in_trash = true, content_hash = NULL, updated_at = now()
                  WHERE user_id = $1 AND notion_page_id = $2 AND NOT in_trash RETURNING 1)
                 SELECT count(*) FROM t",
                spec.table
            ),
            &[user.into(), id.into()],
        )?
        .unwrap_or(0);
    }
    Ok(n)
}

pub fn set_watermark(user: &str, db: &str, watermark: Option<&str>, full: bool) -> Result<()> {
    Spi::run_with_args(
        "UPDATE notion_sync.databases
            SET watermark = COALESCE($3::timestamptz, watermark),
                last_full_sync_at = CASE WHEN $4 THEN now() ELSE last_full_sync_at END,
                updated_at = now()
          WHERE user_id = $1 AND database_id = $2",
        &[
            user.into(),
            db.into(),
            watermark.map(String::from).into(),
            full.into(),
        ],
    )?;
    Ok(())
}

pub fn notify(payload: &Value) -> Result<()> {
    Spi::run_with_args(
        "SELECT pg_notify('notion_sync', $1)",
        &[payload.to_string().into()],
    )?;
    Ok(())
}

/// Registered databases, of one user or all: (user_id, database_id, database_name).
pub fn registered(user: Option<&str>) -> Result<Vec<(String, String, String)>> {
    Spi::connect(|client| {
        let mut out = vec![];
        for row in client.select(
            "SELECT user_id, database_id, database_name FROM notion_sync.databases
              WHERE $1::text IS NULL OR user_id = $1 ORDER BY user_id, database_id",
            None,
            &[user.map(String::from).into()],
        )? {
            out.push((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<String>(3)?.unwrap_or_default(),
            ));
        }
        Ok(out)
    })
}

/// Refreshes planner statistics after a sync that added many rows (a first full sync).
pub fn analyze(table: &str) -> Result<()> {
    Spi::run(&format!("ANALYZE notion_sync.{table}"))?;
    Ok(())
}
