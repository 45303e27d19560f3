//! Writes into a table of the user's own (a registered column map), as the role that registered
//! it: its privileges, its row-level security and its triggers apply, never the superuser's. The
//! hash, trash flag and search text of each page live in `notion_sync.mapped_pages`, so nothing
//! has to be added to the application's table.

use super::{optional_text, Fetched, PageError, Result, Row, Stored, Target, Written};
use crate::error::SyncError;
use crate::mapping::{self, Column, Kind, Mapping, PageInfo, Source, Special};
use crate::notion::model::Page;
use pgrx::pg_sys::errcodes::PgSqlErrorCode as Code;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

fn target_error(code: Code, message: String) -> SyncError {
    SyncError::Target(code, message)
}

pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A column of the target table as the catalog describes it.
struct Attr {
    /// `format_type()`: what the upsert declares.
    sql_type: String,
    /// The base type's name (domains resolved) and, for arrays, the element type's.
    base: String,
    elem: Option<String>,
    typmod: i32,
    /// GENERATED or GENERATED ALWAYS AS IDENTITY: cannot be written.
    generated: bool,
    attnum: i16,
}

/// Checks a table and column map and returns the mapping. Used by `register_database` (through
/// `_check_target`) and at the start of every run, since the table may have changed since.
pub fn resolve(
    relid: pg_sys::Oid,
    map: &Value,
    tz: &str,
    searchable: bool,
    role: pg_sys::Oid,
) -> Result<Mapping> {
    let bad = |m: String| target_error(Code::ERRCODE_INVALID_PARAMETER_VALUE, m);
    let entries = match map {
        Value::Object(o) if !o.is_empty() => o,
        _ => {
            return Err(bad(
                "p_columns must be a JSON object {\"column\": \"Notion property or @special\"}"
                    .into(),
            ))
        }
    };
    let tz = crate::schedule::zone(tz).map_err(bad)?;
    let rel = Spi::connect(|c| {
        let rows = c.select(
            "SELECT pg_catalog.format('%I.%I', n.nspname, r.relname), n.nspname::text, r.relkind::text,
                    pg_catalog.has_table_privilege($2, r.oid, 'INSERT')
                    AND pg_catalog.has_table_privilege($2, r.oid, 'UPDATE')
                    AND pg_catalog.has_table_privilege($2, r.oid, 'SELECT'),
                    (SELECT rolname::text FROM pg_catalog.pg_roles WHERE oid = $2)
               FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
              WHERE r.oid = $1",
            Some(1),
            &[relid.into(), role.into()],
        )?;
        let row = rows.into_iter().next();
        Ok::<_, SyncError>(match row {
            Some(r) => Some((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<String>(3)?.unwrap_or_default(),
                r.get::<bool>(4)?.unwrap_or(false),
                r.get::<String>(5)?,
            )),
            None => None,
        })
    })?;
    let Some((table, schema, relkind, allowed, role_name)) = rel else {
        return Err(target_error(
            Code::ERRCODE_UNDEFINED_TABLE,
            "the target table no longer exists: register the database again with its new table"
                .into(),
        ));
    };
    if matches!(
        schema.as_str(),
        "pg_catalog" | "information_schema" | "notion_sync" | "pg_toast"
    ) {
        return Err(target_error(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "{table} is a system or notion_sync table: map into a table of your application"
            ),
        ));
    }
    if !matches!(relkind.as_str(), "r" | "p") {
        return Err(target_error(
            Code::ERRCODE_WRONG_OBJECT_TYPE,
            format!("{table} is not a table"),
        ));
    }
    let Some(role_name) = role_name else {
        return Err(target_error(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("the role that registered {table} no longer exists: register it again"),
        ));
    };
    if !allowed {
        return Err(target_error(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("role {role_name} needs INSERT, UPDATE and SELECT on {table}: notion_sync writes it with that role's privileges"),
        ));
    }
    let mut attrs: HashMap<String, Attr> = HashMap::new();
    Spi::connect(|c| {
        for r in c.select(
            "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), bt.typname::text,
                    CASE WHEN bt.typcategory = 'A' THEN et.typname::text END, a.atttypmod,
                    a.attgenerated <> '' OR a.attidentity = 'a', a.attnum
               FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
               JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
               LEFT JOIN pg_catalog.pg_type et ON et.oid = bt.typelem
              WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped",
            None,
            &[relid.into()],
        )? {
            attrs.insert(
                r.get::<String>(1)?.unwrap_or_default(),
                Attr {
                    sql_type: r.get::<String>(2)?.unwrap_or_default(),
                    base: r.get::<String>(3)?.unwrap_or_default(),
                    elem: r.get::<String>(4)?,
                    typmod: r.get::<i32>(5)?.unwrap_or(-1),
                    generated: r.get::<bool>(6)?.unwrap_or(false),
                    attnum: r.get::<i16>(7)?.unwrap_or(0),
                },
            );
        }
        Ok::<_, SyncError>(())
    })?;
    let mut columns = vec![];
    for (name, src) in entries {
        let src = src.as_str().ok_or_else(|| {
            bad(format!(
                "p_columns.{name} must be a string: a Notion property name or id, or a special such as \"@id\""
            ))
        })?;
        let source = Source::parse(src).map_err(|e| bad(format!("p_columns.{name}: {e}")))?;
        let Some(a) = attrs.get(name) else {
            return Err(target_error(
                Code::ERRCODE_UNDEFINED_COLUMN,
                format!("column \"{name}\" of {table} does not exist (p_columns keys are the table's columns)"),
            ));
        };
        if a.generated {
            return Err(target_error(
                Code::ERRCODE_GENERATED_ALWAYS,
                format!("column \"{name}\" of {table} is generated: it cannot be written"),
            ));
        }
        columns.push(Column {
            name: name.clone(),
            sql_type: a.sql_type.clone(),
            kind: Kind::from_pg(&a.base, a.elem.as_deref(), a.typmod),
            source,
        });
    }
    let ids: Vec<usize> = (0..columns.len())
        .filter(|i| columns[*i].source == Source::Special(Special::Id))
        .collect();
    let [id_col] = ids[..] else {
        return Err(bad(format!(
            "map exactly one column of {table} to \"@id\" (the Notion page id): it is the key rows are matched on"
        )));
    };
    let id = &columns[id_col];
    if !matches!(id.kind, Kind::Text(_) | Kind::Uuid) {
        return Err(target_error(
            Code::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "column \"{}\" ({}) holds the Notion page id: make it text or uuid",
                id.name, id.sql_type
            ),
        ));
    }
    let attnum = attrs[&id.name].attnum;
    let unique = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                         WHERE i.indrelid = $1 AND i.indisunique AND i.indimmediate AND i.indisvalid
                           AND i.indpred IS NULL
                           AND i.indexprs IS NULL AND i.indnkeyatts = 1 AND i.indkey[0] = $2)",
        &[relid.into(), attnum.into()],
    )?
    .unwrap_or(false);
    if !unique {
        return Err(target_error(
            Code::ERRCODE_INVALID_COLUMN_REFERENCE,
            format!(
                "{table} needs a unique key on column \"{0}\" alone (the column mapped to @id), for example: \
                 ALTER TABLE {table} ADD UNIQUE ({1})",
                id.name,
                ident(&id.name)
            ),
        ));
    }
    Ok(Mapping {
        table,
        columns,
        id_col,
        tz,
        searchable,
        role: role.to_u32(),
        raw: map.to_string(),
    })
}

/// What `notion_sync.databases` holds of a table of the user's own.
pub struct Registered {
    pub columns: Value,
    /// The table (InvalidOid when it no longer exists).
    pub relid: pg_sys::Oid,
    pub tz: String,
    pub searchable: bool,
    /// The role that registered it (InvalidOid when it no longer exists).
    pub role: pg_sys::Oid,
}

impl Registered {
    /// The column map checked against the table as it is now: it may have changed since it was
    /// registered.
    pub fn check(&self) -> Result<Mapping> {
        resolve(
            self.relid,
            &self.columns,
            &self.tz,
            self.searchable,
            self.role,
        )
    }
}

/// The mapping of a registered database, checked against its table; None when it has none.
pub fn load(user: &str, db: &str) -> Result<Option<Mapping>> {
    match super::registration(user, db)?.and_then(|r| r.mapped) {
        Some(m) => m.check().map(Some),
        None => Ok(None),
    }
}

/// Runs `f` in a subtransaction as `role`, with SECURITY_RESTRICTED_OPERATION and a GUC nest level
/// (as Postgres does for maintenance commands run on a table owner's behalf): settings changed
/// inside are undone before we are the superuser again. An ERROR inside rolls back only the
/// subtransaction and comes back as `Err(message)`; a cancel or shutdown is raised again.
fn as_role<R>(role: u32, f: impl FnOnce() -> Result<R>) -> std::result::Result<R, String> {
    // SAFETY: the pattern of PL/Python's subtransactions: memory context and resource owner are
    // restored on both paths, and the user id is restored by the subtransaction's abort.
    unsafe {
        let cx = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(cx);
        let mut saved_user = pg_sys::InvalidOid;
        let mut saved_ctx = 0;
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_ctx);
        pg_sys::SetUserIdAndSecContext(
            pg_sys::Oid::from(role),
            saved_ctx
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
        // Settings changed in here (a trigger's set_config('search_path', ...)) are undone before
        // we are the superuser again, as Postgres does for maintenance commands.
        let nest = pg_sys::NewGUCNestLevel();
        // A deferred trigger would fire at commit as whoever commits: Postgres refuses to queue
        // one inside a security-restricted operation, so such a write is a page error (tested).
        let out = PgTryBuilder::new(AssertUnwindSafe(|| f().map_err(|e| e.to_string())))
            .catch_others(|e| {
                let fatal = matches!(&e, CaughtError::PostgresError(r) | CaughtError::ErrorReport(r)
                    if matches!(r.sql_error_code(), Code::ERRCODE_QUERY_CANCELED | Code::ERRCODE_ADMIN_SHUTDOWN));
                if fatal {
                    pg_sys::RollbackAndReleaseCurrentSubTransaction();
                    pg_sys::MemoryContextSwitchTo(cx);
                    pg_sys::CurrentResourceOwner = owner;
                    e.rethrow();
                }
                Err(crate::error::caught_message(&e))
            })
            .execute();
        if out.is_ok() {
            pg_sys::AtEOXact_GUC(false, nest);
            pg_sys::SetUserIdAndSecContext(saved_user, saved_ctx);
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(cx);
        pg_sys::CurrentResourceOwner = owner;
        out
    }
}

/// Stored hash, sync time and edit time of the given pages. A page whose row the application
/// deleted from its table has no hash, so it is written again.
fn existing(m: &Mapping, user: &str, ids: &[String]) -> Result<Stored> {
    let id = &m.columns[m.id_col];
    let sql = format!(
        "SELECT t.notion_page_id,
                CASE WHEN EXISTS (SELECT 1 FROM {table} a
                                   WHERE a.{col} OPERATOR(pg_catalog.=) k.id::{ty}) THEN t.content_hash END,
                (extract(epoch FROM t.last_synced_at) * 1000)::float8,
                (extract(epoch FROM t.notion_last_edited_time) * 1000)::float8
           FROM unnest($2::text[]) AS k(id)
           JOIN notion_sync.mapped_pages t ON t.user_id = $1 AND t.notion_page_id = k.id",
        table = m.table,
        col = ident(&id.name),
        ty = id.sql_type
    );
    super::read_known(&sql, user, ids)
}

/// The upsert of `rows` into the mapped table, touching only `columns`.
fn upsert_sql(m: &Mapping, columns: &[&Column]) -> String {
    let names: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
    let decl: Vec<String> = columns
        .iter()
        .map(|c| format!("{} {}", ident(&c.name), c.sql_type))
        .collect();
    let select: Vec<String> = names.iter().map(|n| format!("r.{n}")).collect();
    let set: Vec<String> = names
        .iter()
        .map(|n| format!("{n} = EXCLUDED.{n}"))
        .collect();
    format!(
        "WITH up AS (
           INSERT INTO {table} AS t ({names})
           SELECT {select} FROM pg_catalog.jsonb_to_recordset($1) AS r({decl})
           ON CONFLICT ({id}) DO UPDATE SET {set}
           RETURNING (t.xmax = 0) AS inserted, t.{id}::text AS id)
         SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted),
                coalesce(array_agg(id), '{{}}') FROM up",
        table = m.table,
        names = names.join(", "),
        select = select.join(", "),
        decl = decl.join(", "),
        id = ident(&m.columns[m.id_col].name),
        set = set.join(", "),
    )
}

/// The ids of `rows` whose row in the mapped table already holds exactly these values (compared
/// as text, so every column type works, json included): they are not written again.
fn unchanged_sql(m: &Mapping, columns: &[&Column]) -> String {
    let decl: Vec<String> = columns
        .iter()
        .map(|c| format!("{} {}", ident(&c.name), c.sql_type))
        .collect();
    let row = |alias: &str| -> String {
        let cols: Vec<String> = columns
            .iter()
            .map(|c| format!("{alias}.{}", ident(&c.name)))
            .collect();
        format!("ROW({})::text", cols.join(", "))
    };
    let id = ident(&m.columns[m.id_col].name);
    format!(
        "SELECT coalesce(pg_catalog.array_agg(r.{id}::text), '{{}}')
           FROM pg_catalog.jsonb_to_recordset($1) AS r({decl})
           JOIN {table} t ON t.{id} OPERATOR(pg_catalog.=) r.{id}
          WHERE {old} OPERATOR(pg_catalog.=) {new}",
        decl = decl.join(", "),
        table = m.table,
        old = row("t"),
        new = row("r"),
    )
}

/// Writes a batch. A batch Postgres refuses (a constraint, a trigger, a value its type rejects) is
/// retried row by row, so only the pages at fault are skipped: they come back as
/// `(page id, edit time, error)`.
fn upsert(m: &Mapping, skip: &[usize], user: &str, db: &str, rows: Vec<Row>) -> Result<Written> {
    let nothing = || Written {
        created: 0,
        updated: 0,
        failed: vec![],
    };
    if rows.is_empty() {
        return Ok(nothing());
    }
    let columns: Vec<&Column> = (0..m.columns.len())
        .filter(|i| !skip.contains(i))
        .map(|i| &m.columns[i])
        .collect();
    let sql = upsert_sql(m, &columns);
    // Pages equal to their row (a re-read inside the edit minute, a change only to properties
    // that are not mapped) are left alone: no UPDATE, no trigger, no replication traffic.
    let same_sql = unchanged_sql(m, &columns);
    let all: Vec<Value> = rows
        .iter()
        .map(|r| Value::Object(r.values.clone()))
        .collect();
    let unchanged: Vec<String> = as_role(m.role, || {
        Ok(
            Spi::get_one_with_args::<Vec<String>>(&same_sql, &[JsonB(Value::Array(all)).into()])?
                .unwrap_or_default(),
        )
    })
    .unwrap_or_default();
    let rows: Vec<Row> = if unchanged.is_empty() {
        rows
    } else {
        // The id column's text form is the page id (as for the ids the upsert returns).
        let (same, changed): (Vec<Row>, Vec<Row>) = rows
            .into_iter()
            .partition(|r| unchanged.contains(&r.page_id));
        record_meta(
            user,
            db,
            m,
            skip,
            same.iter().map(|r| r.meta.clone()).collect(),
        )?;
        changed
    };
    if rows.is_empty() {
        return Ok(nothing());
    }
    // (created, updated, ids written): a BEFORE trigger may return NULL and write nothing.
    let write = |batch: Vec<Value>| {
        as_role(m.role, || {
            let (c, u, ids) = Spi::get_three_with_args::<i64, i64, Vec<String>>(
                &sql,
                &[JsonB(Value::Array(batch)).into()],
            )?;
            Ok((c.unwrap_or(0), u.unwrap_or(0), ids.unwrap_or_default()))
        })
    };
    let meta = |ids: &[String]| -> Vec<Value> {
        rows.iter()
            .filter(|r| ids.contains(&r.page_id))
            .map(|r| r.meta.clone())
            .collect()
    };
    let all: Vec<Value> = rows
        .iter()
        .map(|r| Value::Object(r.values.clone()))
        .collect();
    let mut errors = vec![];
    let mut written = vec![];
    let (mut created, mut updated) = (0, 0);
    match write(all) {
        Ok((c, u, ids)) => {
            (created, updated) = (c, u);
            written = meta(&ids);
        }
        Err(_) => {
            for r in &rows {
                match write(vec![Value::Object(r.values.clone())]) {
                    Ok((c, u, ids)) => {
                        created += c;
                        updated += u;
                        written.extend(meta(&ids));
                    }
                    Err(e) => errors.push((
                        r.page_id.clone(),
                        r.edited_ms,
                        format!("writing into {}: {e}", m.table),
                    )),
                }
            }
        }
    }
    record_meta(user, db, m, skip, written)?;
    Ok(Written {
        created,
        updated,
        failed: errors,
    })
}

/// What `mapped_pages` keeps of pages written (or found equal): hash, title, url, flags, search
/// text. A row whose record is already equal is not touched.
fn record_meta(
    user: &str,
    db: &str,
    m: &Mapping,
    skip: &[usize],
    written: Vec<Value>,
) -> Result<()> {
    if !written.is_empty() {
        Spi::run_with_args(
            "INSERT INTO notion_sync.mapped_pages AS t (user_id, notion_page_id, notion_database_id, target_table,
                    title, url, content_hash, has_content, has_email, doc, in_trash, notion_last_edited_time,
                    last_synced_at, updated_at)
             SELECT $1, r.id, $2, $3, r.title, r.url, r.hash, r.has_content, r.has_email, r.doc, false, r.edited,
                    now(), now()
               FROM pg_catalog.jsonb_to_recordset($4) AS r(id text, title text, url text, hash text,
                    has_content boolean, has_email boolean, doc text, edited timestamptz)
             ON CONFLICT (user_id, notion_page_id) DO UPDATE SET
                    notion_database_id = EXCLUDED.notion_database_id, target_table = EXCLUDED.target_table,
                    title = EXCLUDED.title, url = EXCLUDED.url, content_hash = EXCLUDED.content_hash,
                    has_content = CASE WHEN $5 THEN t.has_content ELSE EXCLUDED.has_content END,
                    has_email = EXCLUDED.has_email,
                    doc = CASE WHEN $5 THEN t.doc ELSE EXCLUDED.doc END, in_trash = false,
                    notion_last_edited_time = EXCLUDED.notion_last_edited_time,
                    last_synced_at = now(), updated_at = now()
              WHERE ROW(t.notion_database_id, t.target_table, t.title, t.url, t.content_hash, t.has_email,
                        t.in_trash, t.notion_last_edited_time, CASE WHEN $5 THEN NULL ELSE ROW(t.has_content, t.doc) END)::text
                    IS DISTINCT FROM
                    ROW(EXCLUDED.notion_database_id, EXCLUDED.target_table, EXCLUDED.title, EXCLUDED.url,
                        EXCLUDED.content_hash, EXCLUDED.has_email, false, EXCLUDED.notion_last_edited_time,
                        CASE WHEN $5 THEN NULL ELSE ROW(EXCLUDED.has_content, EXCLUDED.doc) END)::text",
            &[
                user.into(),
                db.into(),
                m.table.as_str().into(),
                JsonB(Value::Array(written)).into(),
                // The body column was left alone (a properties-only refetch): so is what we know of it.
                skip.iter()
                    .any(|i| m.columns[*i].source == Source::Special(Special::Content))
                    .into(),
            ],
        )?;
    }
    Ok(())
}

/// Sets the column mapped to `@in_trash` (if any) for these pages, as the registering role.
fn flag_trashed(m: &Mapping, ids: &[String]) -> Result<()> {
    let Some(col) = m.column_for(Special::InTrash) else {
        return Ok(());
    };
    if ids.is_empty() {
        return Ok(());
    }
    let id = &m.columns[m.id_col];
    let sql = format!(
        "UPDATE {} SET {} = true WHERE {} = ANY($1::text[]::{}[])",
        m.table,
        ident(&col.name),
        ident(&id.name),
        id.sql_type
    );
    as_role(m.role, || {
        Ok(Spi::run_with_args(&sql, &[ids.to_vec().into()])?)
    })
    .map_err(|e| SyncError::Storage(format!("marking deleted pages in {}: {e}", m.table)))
}

/// After a complete scan: pages of this database not seen are in trash. Rows of the application's
/// table are never deleted: the `@in_trash` column, if mapped, is set. Returns the pages marked.
fn mark_deleted(m: &Mapping, user: &str, db: &str, seen: Vec<String>) -> Result<i64> {
    let gone: Vec<String> = Spi::get_one_with_args::<Vec<String>>(
        "SELECT coalesce(array_agg(t.notion_page_id), '{}') FROM notion_sync.mapped_pages t
          WHERE t.user_id = $1 AND t.notion_database_id = $2 AND NOT t.in_trash
            AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) s(id) WHERE s.id = t.notion_page_id)",
        &[user.into(), db.into(), seen.into()],
    )?
    .unwrap_or_default();
    // The application's table first: if that fails, nothing is recorded as done.
    flag_trashed(m, &gone)?;
    set_trashed(user, &gone)?;
    Ok(gone.len() as i64)
}

fn set_trashed(user: &str, ids: &[String]) -> Result<()> {
    Spi::run_with_args(
        "UPDATE notion_sync.mapped_pages SET in_trash = true, content_hash = NULL, updated_at = now()
          WHERE user_id = $1 AND notion_page_id = ANY($2)",
        &[user.into(), ids.to_vec().into()],
    )?;
    Ok(())
}

/// A webhook's delete: marks one page in trash if a mapped table holds it. Returns rows changed.
pub fn trash_page(user: &str, id: &str) -> Result<i64> {
    match live_database(user, id)? {
        Some(db) => trash_one(load(user, &db)?.as_ref(), user, id),
        None => Ok(0),
    }
}

/// The database of a page `mapped_pages` holds and has not marked in trash.
fn live_database(user: &str, id: &str) -> Result<Option<String>> {
    optional_text(
        "SELECT notion_database_id FROM notion_sync.mapped_pages
          WHERE user_id = $1 AND notion_page_id = $2 AND NOT in_trash",
        &[user.into(), id.into()],
    )
}

fn trash_one(m: Option<&Mapping>, user: &str, id: &str) -> Result<i64> {
    if let Some(m) = m {
        flag_trashed(m, &[id.to_string()])?;
    }
    set_trashed(user, &[id.to_string()])?;
    Ok(1)
}

/// Writes the id of a page write-back created into its row (found by primary key `key`, its id
/// column still empty), with the registering role's privileges. Returns the rows written.
pub fn set_page_id(m: &Mapping, key: &Value, page_id: &str) -> Result<i64> {
    let id = &m.columns[m.id_col];
    let sql = format!(
        "WITH u AS (UPDATE {table} t SET {idc} = $2::{ty}
                      FROM {row} AND t.{idc} IS NULL RETURNING 1)
         SELECT count(*) FROM u",
        table = m.table,
        idc = ident(&id.name),
        ty = id.sql_type,
        row = super::outbox::key_match(&m.table, key),
    );
    let key = JsonB(key.clone());
    as_role(m.role, || {
        Ok(Spi::get_one_with_args::<i64>(&sql, &[key.into(), page_id.into()])?.unwrap_or(0))
    })
    .map_err(SyncError::Storage)
}

/// A database synced into a table of the user's own through its column map.
pub struct Mapped {
    pub mapping: Mapping,
    pub user: String,
    pub db: String,
    pub db_name: String,
    /// Mapped columns whose Notion property is gone (deleted or renamed): reported once per run
    /// and left out of the writes, so their stored values stay.
    missing: Vec<usize>,
}

impl Mapped {
    pub fn new(mapping: Mapping, user: &str, db: &str, db_name: &str) -> Mapped {
        Mapped {
            mapping,
            user: user.to_string(),
            db: db.to_string(),
            db_name: db_name.to_string(),
            missing: vec![],
        }
    }

    /// A property the map names that the page lacks was deleted or renamed in Notion: one error
    /// for the run, and its column is left alone.
    fn note_missing(&mut self, page: &Page, notes: &mut Vec<PageError>) {
        let m = &self.mapping;
        for (i, col) in m.columns.iter().enumerate() {
            if let Source::Property(p) = &col.source {
                if mapping::find_property(page, p).is_none() && !self.missing.contains(&i) {
                    self.missing.push(i);
                    notes.push((
                        None,
                        format!(
                            "column \"{}\" of {}: Notion property {p:?} is not in {} any more (deleted or renamed); \
                             the column was left unchanged. Map it by property id to follow renames, \
                             or register the database again without it",
                            col.name, m.table, self.db_name
                        ),
                    ));
                }
            }
        }
    }
}

impl Target for Mapped {
    fn stored_table(&self) -> &'static str {
        "mapped_pages"
    }

    /// Bodies only when the map has `@content` (and then at least one level, whatever
    /// content_depth says, since the user asked for the text).
    fn depth(&self, content: bool) -> u32 {
        if content && self.mapping.wants_content() {
            crate::gucs::content_depth().max(1)
        } else {
            0
        }
    }

    fn hash(&self, page_hash: String) -> String {
        mapping::row_hash(&page_hash, &self.mapping)
    }

    fn existing(&self, ids: &[String]) -> Result<Stored> {
        existing(&self.mapping, &self.user, ids)
    }

    fn row(&mut self, p: Fetched, notes: &mut Vec<PageError>) -> std::result::Result<Row, String> {
        let Fetched {
            page,
            hash,
            edited,
            body,
            ..
        } = p;
        self.note_missing(&page, notes);
        let m = &self.mapping;
        let body = body.as_deref();
        let info = PageInfo {
            page: &page,
            body,
            user: &self.user,
        };
        let values = mapping::row(m, &info, &self.missing)?;
        let has_email = page.properties.values().any(|p| {
            p["type"] == "email" && p["value"].as_str().is_some_and(|e| !e.trim().is_empty())
        });
        Ok(Row {
            page_id: page.id.clone(),
            edited_ms: edited,
            values,
            meta: json!({
                "id": page.id, "title": page.title, "url": page.url, "hash": hash,
                "has_content": body.is_some_and(|b| !b.trim().is_empty()), "has_email": has_email,
                "doc": m.searchable.then(|| mapping::search_text(m, &info)),
                "edited": page.last_edited_time,
            }),
        })
    }

    fn upsert(&mut self, rows: Vec<Row>, keep_body: bool) -> Result<Written> {
        let m = &self.mapping;
        let mut skip = self.missing.clone();
        if keep_body {
            skip.extend(
                (0..m.columns.len())
                    .filter(|i| m.columns[*i].source == Source::Special(Special::Content)),
            );
        }
        upsert(m, &skip, &self.user, &self.db, rows)
    }

    fn mark_deleted(&mut self, seen: Vec<String>) -> Result<i64> {
        mark_deleted(&self.mapping, &self.user, &self.db, seen)
    }

    fn trash(&mut self, id: &str) -> Result<i64> {
        match live_database(&self.user, id)? {
            Some(_) => trash_one(Some(&self.mapping), &self.user, id),
            None => Ok(0),
        }
    }
}

/// `_check_target`'s body: the qualified table name of a valid mapping, or the error.
pub fn check(relid: pg_sys::Oid, map: &Value, tz: &str, role: &str) -> Result<String> {
    let role_oid = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1)",
        &[role.into()],
    )?
    .unwrap_or(pg_sys::InvalidOid);
    resolve(relid, map, tz, false, role_oid).map(|m| m.table)
}
