//! The five sync tables (`notion_sync.notion_*_sync`): which table a database goes to, how a page
//! becomes one of their rows (text, description and message-count rules), and the `Target` the
//! engine writes them through.

use super::{Fetched, PageError, Result, Row, Stored, Target, Written};
use crate::notion::model::{self, Page};
use crate::storage::Place;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{Map, Value};

/// How the engine fills one sync table. Columns differ per table as the seed apps had them.
pub struct TableSpec {
    pub table: &'static str,
    /// Database names (lowercase) that pick this table; the last table takes every other name.
    pub names: &'static [&'static str],
    pub name_col: &'static str,
    /// The column for the 'Description'-like text (falls back to the page body).
    pub text_col: &'static str,
    pub text_props: &'static [&'static str],
    /// A second text column and the properties it is filled from (the stories' `description`,
    /// 0.2.0; `content` keeps its rule).
    pub desc: Option<(&'static str, &'static [&'static str])>,
    pub message_count: bool,
    pub database_name: bool,
    /// `notion_parent_id` and `path`: pages of a page tree (register_pages) go here.
    pub tree: bool,
}

/// The sync tables, the one list of them in Rust (a pg_test holds it against the catalog).
pub const TABLES: [TableSpec; 5] = [
    TableSpec {
        table: "notion_characters_sync",
        names: &["characters"],
        name_col: "name",
        text_col: "description",
        text_props: &["Description", "Bio", "Summary"],
        desc: None,
        message_count: false,
        database_name: false,
        tree: false,
    },
    TableSpec {
        table: "notion_worlds_sync",
        names: &["worlds"],
        name_col: "name",
        text_col: "description",
        text_props: &["Description", "Summary"],
        desc: None,
        message_count: false,
        database_name: false,
        tree: false,
    },
    TableSpec {
        table: "notion_stories_sync",
        names: &["stories"],
        name_col: "title",
        text_col: "content",
        text_props: &["Content", "Summary", "Description"],
        desc: Some(("description", &["Description", "Summary"])),
        message_count: false,
        database_name: false,
        tree: false,
    },
    TableSpec {
        table: "notion_chat_sessions_sync",
        names: &["chat sessions", "chat_sessions"],
        name_col: "title",
        text_col: "transcript",
        text_props: &["Transcript", "Messages"],
        desc: None,
        message_count: true,
        database_name: false,
        tree: false,
    },
    TableSpec {
        table: "notion_pages_sync",
        names: &[],
        name_col: "title",
        text_col: "description",
        text_props: &["Description", "Summary", "Notes"],
        desc: None,
        message_count: false,
        database_name: true,
        tree: true,
    },
];

/// Number properties a chat session's message count is read from, before counting lines.
const MESSAGE_COUNT_PROPS: [&str; 3] = ["Message Count", "Messages Count", "Messages"];

/// Characters, Worlds, Stories, Chat Sessions by name (case-insensitive), else pages (README, "SQL
/// functions").
pub fn target_for_name(name: &str) -> &'static str {
    let name = name.trim().to_lowercase();
    TABLES
        .iter()
        .find(|t| t.names.contains(&name.as_str()))
        .unwrap_or(&TABLES[4])
        .table
}

pub fn spec(table: &str) -> &'static TableSpec {
    TABLES
        .iter()
        .find(|t| t.table == table)
        .unwrap_or(&TABLES[4])
}

/// The message count of a chat session: its number property (an int column: a count Postgres
/// would refuse is left out rather than failing the batch), else the non-blank lines of its text.
fn message_count(page: &Page, text: Option<&str>) -> Option<i64> {
    model::number_property(page, &MESSAGE_COUNT_PROPS)
        .filter(|n| n.is_finite() && n.abs() <= i32::MAX as f64)
        .map(|n| n as i64)
        .or_else(|| text.map(|t| t.lines().filter(|l| !l.trim().is_empty()).count() as i64))
}

fn text_or_null(s: Option<String>) -> Value {
    s.map_or(Value::Null, Value::String)
}

/// One page as the JSON record `upsert` reads (`jsonb_to_recordset`). Moved into the record, not
/// copied (json! would serialise a deep copy of each value).
pub fn record(
    spec: &TableSpec,
    page: Page,
    body: Option<String>,
    hash: String,
    place: Option<Place>,
) -> Map<String, Value> {
    let text = model::text_property(&page, spec.text_props)
        .or_else(|| body.clone().filter(|b| !b.trim().is_empty()));
    let desc = spec
        .desc
        .and_then(|(_, props)| model::text_property(&page, props));
    let message_count = message_count(&page, text.as_deref());
    let mut row = Map::new();
    row.insert("id".into(), Value::String(page.id));
    row.insert("name".into(), Value::String(page.title));
    row.insert("text".into(), text_or_null(text));
    row.insert("descr".into(), text_or_null(desc));
    row.insert(
        "message_count".into(),
        message_count.map_or(Value::Null, Value::from),
    );
    row.insert("properties".into(), Value::Object(page.properties));
    row.insert("hash".into(), Value::String(hash));
    row.insert("url".into(), text_or_null(page.url));
    row.insert("created".into(), text_or_null(page.created_time));
    row.insert("edited".into(), text_or_null(page.last_edited_time));
    row.insert("body".into(), text_or_null(body));
    if let Some(place) = place {
        row.insert("parent".into(), text_or_null(place.parent));
        row.insert("path".into(), Value::from(place.path));
    }
    row
}

/// A database synced into one of the sync tables.
pub struct SyncTable {
    pub spec: &'static TableSpec,
    pub user: String,
    pub db: String,
    pub db_name: String,
}

impl SyncTable {
    pub fn new(table: &str, user: &str, db: &str, db_name: &str) -> SyncTable {
        SyncTable {
            spec: spec(table),
            user: user.to_string(),
            db: db.to_string(),
            db_name: db_name.to_string(),
        }
    }
}

impl Target for SyncTable {
    fn stored_table(&self) -> &'static str {
        self.spec.table
    }

    fn depth(&self, content: bool) -> u32 {
        if content {
            crate::gucs::content_depth()
        } else {
            0
        }
    }

    fn hash(&self, page_hash: String) -> String {
        page_hash
    }

    fn existing(&self, ids: &[String]) -> Result<Stored> {
        super::existing(self.spec.table, &self.user, ids)
    }

    fn kept_body(&self, id: &str) -> Result<Option<String>> {
        super::optional_text(
            &format!(
                "SELECT body FROM notion_sync.{} WHERE user_id = $1 AND notion_page_id = $2",
                self.spec.table
            ),
            &[self.user.as_str().into(), id.into()],
        )
    }

    fn row(&mut self, p: Fetched, _notes: &mut Vec<PageError>) -> std::result::Result<Row, String> {
        Ok(Row {
            page_id: p.page.id.clone(),
            edited_ms: p.edited,
            values: record(
                self.spec,
                p.page,
                p.body,
                p.hash,
                p.place.filter(|_| self.spec.tree),
            ),
            meta: Value::Null,
        })
    }

    fn upsert(&mut self, rows: Vec<Row>, _keep_body: bool) -> Result<Written> {
        let rows: Vec<Value> = rows.into_iter().map(|r| Value::Object(r.values)).collect();
        let (created, updated) = upsert(self.spec, &self.user, &self.db, &self.db_name, rows)?;
        Ok(Written {
            created,
            updated,
            failed: vec![],
        })
    }

    fn mark_deleted(&mut self, seen: Vec<String>) -> Result<i64> {
        let sql = format!(
            "WITH gone AS (
               UPDATE notion_sync.{} t SET in_trash = true, content_hash = NULL, updated_at = now()
                WHERE t.user_id = $1 AND t.notion_database_id = $2 AND NOT t.in_trash
                  AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) s(id) WHERE s.id = t.notion_page_id)
               RETURNING 1)
             SELECT count(*) FROM gone",
            self.spec.table
        );
        let args = [
            self.user.as_str().into(),
            self.db.as_str().into(),
            seen.into(),
        ];
        Ok(Spi::get_one_with_args::<i64>(&sql, &args)?.unwrap_or(0))
    }

    fn trash(&mut self, id: &str) -> Result<i64> {
        trash(self.spec, &self.user, id)
    }
}

/// Marks one page in trash in one sync table. Returns the rows changed.
pub fn trash(spec: &TableSpec, user: &str, id: &str) -> Result<i64> {
    let sql = format!(
        "WITH t AS (UPDATE notion_sync.{} SET in_trash = true, content_hash = NULL, updated_at = now()
          WHERE user_id = $1 AND notion_page_id = $2 AND NOT in_trash RETURNING 1)
         SELECT count(*) FROM t",
        spec.table
    );
    Ok(Spi::get_one_with_args::<i64>(&sql, &[user.into(), id.into()])?.unwrap_or(0))
}

/// Upserts a batch: `rows` is a JSON array of {id,name,text,descr,message_count,properties,hash,
/// url,created,edited,body}. Returns (created, updated).
fn upsert(
    spec: &TableSpec,
    user: &str,
    db: &str,
    db_name: &str,
    rows: Vec<Value>,
) -> Result<(i64, i64)> {
    if rows.is_empty() {
        return Ok((0, 0));
    }
    // $3 (the database name) is used by the pages table only; its type comes with the datum.
    let (c, u) = Spi::get_two_with_args::<i64, i64>(
        &upsert_sql(spec),
        &[
            user.into(),
            db.into(),
            db_name.into(),
            JsonB(Value::Array(rows)).into(),
        ],
    )?;
    Ok((c.unwrap_or(0), u.unwrap_or(0)))
}

/// `(column list, value, SET clause)` of an optional column, empty when `spec` lacks it.
fn optional_column(on: bool, col: &str, val: &str) -> (String, String, String) {
    if on {
        (
            format!(", {col}"),
            format!(", {val}"),
            format!(", {col} = EXCLUDED.{col}"),
        )
    } else {
        Default::default()
    }
}

fn upsert_sql(spec: &TableSpec) -> String {
    let (mc_col, mc_val, mc_set) =
        optional_column(spec.message_count, "message_count", "r.message_count");
    let (dn_col, dn_val, dn_set) = optional_column(spec.database_name, "database_name", "$3");
    let (pa_col, pa_val, pa_set) = optional_column(spec.tree, "notion_parent_id", "r.parent");
    let (pt_col, pt_val, pt_set) = optional_column(spec.tree, "path", "r.path");
    let desc_col = spec.desc.map_or("", |(col, _)| col);
    let (ds_col, ds_val, ds_set) = optional_column(spec.desc.is_some(), desc_col, "r.descr");
    let name = spec.name_col;
    let text = spec.text_col;
    format!(
        "WITH up AS (
           INSERT INTO notion_sync.{table} AS t (user_id, notion_database_id, notion_page_id, {name}, {text}{ds_col}{mc_col}{dn_col}{pa_col}{pt_col},
                  properties, content_hash, url, in_trash, notion_created_time, notion_last_edited_time, body,
                  last_synced_at, updated_at)
           SELECT $1, $2, r.id, r.name, r.text{ds_val}{mc_val}{dn_val}{pa_val}{pt_val}, r.properties, r.hash, r.url, false,
                  r.created, r.edited, r.body, now(), now()
             FROM jsonb_to_recordset($4) AS r(id text, name text, text text, descr text, message_count int, properties jsonb,
                  hash text, url text, created timestamptz, edited timestamptz, body text, parent text, path text[])
           ON CONFLICT (user_id, notion_page_id) DO UPDATE SET
                  notion_database_id = EXCLUDED.notion_database_id, {name} = EXCLUDED.{name}, {text} = EXCLUDED.{text}
                  {ds_set}{mc_set}{dn_set}{pa_set}{pt_set}, properties = EXCLUDED.properties, content_hash = EXCLUDED.content_hash,
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
        dn_cmp = match (spec.database_name, spec.tree) {
            (true, true) => " OR t.database_name IS DISTINCT FROM EXCLUDED.database_name
                   OR t.notion_parent_id IS DISTINCT FROM EXCLUDED.notion_parent_id
                   OR t.path IS DISTINCT FROM EXCLUDED.path",
            (true, false) => " OR t.database_name IS DISTINCT FROM EXCLUDED.database_name",
            _ => "",
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pick_their_table_and_everything_else_goes_to_pages() {
        assert_eq!(target_for_name(" Characters "), "notion_characters_sync");
        assert_eq!(
            target_for_name("chat_sessions"),
            "notion_chat_sessions_sync"
        );
        assert_eq!(
            target_for_name("Chat Sessions"),
            "notion_chat_sessions_sync"
        );
        assert_eq!(target_for_name("Recipes"), "notion_pages_sync");
        assert_eq!(spec("nope").table, "notion_pages_sync");
    }
}
