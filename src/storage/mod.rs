//! Everything the sync engine reads and writes in Postgres, through SPI. Batched: one statement
//! per API page of results, never a whole database in memory.

use crate::error::SyncError;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{Map, Value};
use std::collections::HashMap;

pub mod mapped;
pub mod outbox;
pub mod queue;
pub mod runs;
pub mod schedules;
pub mod sync_table;

pub type Result<T> = std::result::Result<T, SyncError>;

pub use sync_table::{target_for_name, SyncTable, TABLES};

/// A per-page error of a run: the page (None for the run as a whole) and what went wrong.
pub type PageError = (Option<String>, String);

/// A changed page as read from Notion (complete, with its body): what a target makes a row of.
pub struct Fetched {
    pub page: crate::notion::model::Page,
    pub hash: String,
    /// `last_edited_time` in epoch ms.
    pub edited: Option<i64>,
    pub body: Option<String>,
    /// Where a page of a page tree sits (None for a database's page).
    pub place: Option<Place>,
}

/// A page's place in a page tree: its parent page and the titles from the tree's top down to it.
#[derive(Clone, Debug, Default)]
pub struct Place {
    pub parent: Option<String>,
    pub path: Vec<String>,
}

/// One page ready for its target.
pub struct Row {
    pub page_id: String,
    /// `last_edited_time` in epoch ms: a row that fails to be written holds the watermark back.
    pub edited_ms: Option<i64>,
    /// What the target table gets: a sync table's JSON record, or a mapped table's column values.
    pub values: Map<String, Value>,
    /// What `mapped_pages` keeps of a mapped table's page (Null for the sync tables).
    pub meta: Value,
}

/// What one upsert wrote; `failed` are rows the target refused, with their edit time and error.
pub struct Written {
    pub created: i64,
    pub updated: i64,
    pub failed: Vec<(String, Option<i64>, String)>,
}

/// Where a sync writes: the sync tables (`sync_table.rs`) or a table of the user's own
/// (`mapped.rs`). The engine (sync.rs) knows only this.
pub trait Target {
    /// The notion_sync table holding this target's hashes: its sync table, or `mapped_pages`.
    fn stored_table(&self) -> &'static str;
    /// Levels of page body to read; `content` is false for a properties-only webhook refetch.
    fn depth(&self, content: bool) -> u32;
    /// The hash stored for a page whose own hash is `page_hash`.
    fn hash(&self, page_hash: String) -> String;
    /// Stored hash, sync time and edit time of these pages.
    fn existing(&self, ids: &[String]) -> Result<Stored>;
    /// The stored body a properties-only refetch keeps (None where the target keeps it itself).
    fn kept_body(&self, _id: &str) -> Result<Option<String>> {
        Ok(None)
    }
    /// One page as a row. `notes`: errors about the run as a whole found on the way.
    fn row(
        &mut self,
        page: Fetched,
        notes: &mut Vec<PageError>,
    ) -> std::result::Result<Row, String>;
    /// Writes a batch; `keep_body`: a properties-only refetch leaves the body as stored.
    fn upsert(&mut self, rows: Vec<Row>, keep_body: bool) -> Result<Written>;
    /// After a complete scan: marks the pages not `seen` in trash. Returns how many.
    fn mark_deleted(&mut self, seen: Vec<String>) -> Result<i64>;
    /// Marks one page in trash. Returns the rows changed.
    fn trash(&mut self, id: &str) -> Result<i64>;
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

/// One value, or None when there is no row (pgrx reports that as a position error).
pub(crate) fn optional<T: pgrx::IntoDatum + pgrx::FromDatum>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Option<T>> {
    match Spi::get_one_with_args::<T>(sql, args) {
        Ok(t) => Ok(t),
        Err(pgrx::spi::SpiError::InvalidPosition) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One text value, or None when there is no row.
pub(crate) fn optional_text(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Option<String>> {
    optional(sql, args)
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
    /// RFC 3339, UTC.
    pub watermark: Option<String>,
    /// A table of the user's own with a column map (storage/mapped.rs), not a sync table.
    pub mapped: Option<mapped::Registered>,
    /// A page tree (register_pages): the depth of sub-pages it mirrors.
    pub page_tree_depth: Option<i32>,
}

/// A registered database of `user`, with what a table of the user's own needs to be checked.
pub fn registration(user: &str, db: &str) -> Result<Option<Registration>> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT d.database_name, d.target_table,
                    to_char(d.watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                    d.target_columns,
                    CASE WHEN d.target_columns IS NOT NULL THEN pg_catalog.to_regclass(d.target_table)::oid END,
                    d.timezone, d.searchable,
                    (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = d.target_role),
                    d.page_tree_depth
               FROM notion_sync.databases d WHERE d.user_id = $1 AND d.database_id = $2",
            Some(1),
            &[user.into(), db.into()],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let mapped = match row.get::<JsonB>(4)? {
            Some(JsonB(columns)) => Some(mapped::Registered {
                columns,
                relid: row.get::<pg_sys::Oid>(5)?.unwrap_or(pg_sys::InvalidOid),
                tz: row.get::<String>(6)?.unwrap_or_else(|| "UTC".into()),
                searchable: row.get::<bool>(7)?.unwrap_or(false),
                role: row.get::<pg_sys::Oid>(8)?.unwrap_or(pg_sys::InvalidOid),
            }),
            None => None,
        };
        Ok(Some(Registration {
            database_name: row.get::<String>(1)?.unwrap_or_default(),
            target_table: row.get::<String>(2)?.unwrap_or_default(),
            watermark: row.get::<String>(3)?,
            mapped,
            page_tree_depth: row.get::<i32>(9)?,
        }))
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

/// Live rows of this database in `table` (a sync table or `mapped_pages`) and how many of them a
/// complete scan that saw `seen` would mark deleted: the mass-deletion guard's figures.
pub fn deletion_counts(table: &str, user: &str, db: &str, seen: &[String]) -> Result<(i64, i64)> {
    let sql = format!(
        // A join, not a subquery in the FILTER: that one ran once per row (10,000 x 10,000
        // comparisons made an unchanged re-sync of 10,000 pages 2.5x slower).
        "SELECT count(*), count(*) FILTER (WHERE s.id IS NULL)
           FROM notion_sync.{table} t
           LEFT JOIN unnest($3::text[]) s(id) ON s.id = t.notion_page_id
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
        if let Some(p) = optional::<JsonB>(&sql, &[user.into(), id.into()])? {
            return Ok(Some((spec.table, p.0)));
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

/// Marks one page in trash in whichever sync table or mapped table holds it (a page Notion no
/// longer shows, whose database is not known). Returns the rows changed.
pub fn trash_page(user: &str, id: &str) -> Result<i64> {
    let mut n = mapped::trash_page(user, id)?;
    for spec in &TABLES {
        n += sync_table::trash(spec, user, id)?;
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

/// A registered database, as `sync_all_notion_databases` lists them.
pub struct Listed {
    pub user: String,
    pub db: String,
    pub name: String,
}

/// Registered databases, of one user or all.
pub fn registered(user: Option<&str>) -> Result<Vec<Listed>> {
    Spi::connect(|client| {
        let mut out = vec![];
        for row in client.select(
            "SELECT user_id, database_id, database_name FROM notion_sync.databases
              WHERE $1::text IS NULL OR user_id = $1 ORDER BY user_id, database_id",
            None,
            &[user.map(String::from).into()],
        )? {
            out.push(Listed {
                user: row.get::<String>(1)?.unwrap_or_default(),
                db: row.get::<String>(2)?.unwrap_or_default(),
                name: row.get::<String>(3)?.unwrap_or_default(),
            });
        }
        Ok(out)
    })
}

/// Every statement of the worker resolves names in pg_catalog first: objects a user created in
/// public (a trojan unnest() or now()) are never picked up.
pub fn pin_search_path() -> Result<()> {
    Spi::run("SET search_path = pg_catalog, pg_temp")?;
    Ok(())
}

/// Refreshes planner statistics after a sync that added many rows (a first full sync).
pub fn analyze(table: &str) -> Result<()> {
    Spi::run(&format!("ANALYZE notion_sync.{table}"))?;
    Ok(())
}
