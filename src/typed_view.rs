//! Typed views: one column per Notion property over a database's sync table, named after the
//! property and typed from the data source schema, so apps write `SELECT "Name", "Age" FROM
//! characters_v ORDER BY "Age"` instead of digging in `properties` jsonb. The views are
//! `security_invoker`, so the sync table's row-level security applies to whoever reads them.
//! `notion_sync.typed_views` remembers each view and its columns (by property id): when the schema
//! changes (a full sync, a `data_source.schema_updated` webhook) the view is re-created, a renamed
//! property's column renamed, a removed one dropped, and the change logged.

use crate::error::SyncError;
use crate::notion::client::Client;
use crate::storage;
use crate::sync::{self, Txn};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};

/// Columns every typed view starts with (from the sync table itself).
const FIXED: [&str; 5] = [
    "notion_page_id",
    "url",
    "in_trash",
    "notion_created_time",
    "notion_last_edited_time",
];

/// Postgres truncates identifiers longer than this many bytes.
const MAX_IDENT: usize = 63;

/// One column of a typed view: the property it shows and the SQL that reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Col {
    pub property_id: String,
    pub property: String,
    pub column: String,
    /// The column's SQL type, as documented (text, numeric, boolean, timestamptz, text[], jsonb).
    pub sql_type: &'static str,
    pub expr: String,
}

/// An SQL string literal (standard_conforming_strings: only quotes are doubled).
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `name`, cut to what Postgres keeps of an identifier, made unique with `_2`, `_3`... .
fn unique(name: &str, taken: &mut HashSet<String>) -> String {
    let cut = |s: &str, max: usize| -> String {
        let mut end = s.len().min(max);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    };
    let base = if name.trim().is_empty() {
        "property"
    } else {
        name
    };
    let mut candidate = cut(base, MAX_IDENT);
    let mut n = 2;
    while taken.contains(&candidate) {
        let suffix = format!("_{n}");
        candidate = format!("{}{suffix}", cut(base, MAX_IDENT - suffix.len()));
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// The SQL type and expression of a value of `kind` stored at `v` (a jsonb expression).
fn typed(kind: &str, v: &str) -> Option<(&'static str, String)> {
    let array = |v: &str| {
        format!("CASE WHEN pg_catalog.jsonb_typeof({v}) = 'array' THEN {v} ELSE '[]'::jsonb END")
    };
    Some(match kind {
        "title" | "rich_text" | "select" | "status" | "url" | "email" | "phone_number"
        | "unique_id" | "string" => ("text", format!("({v} #>> '{{}}')")),
        "number" => (
            "numeric",
            format!("CASE WHEN pg_catalog.jsonb_typeof({v}) = 'number' THEN ({v})::numeric END"),
        ),
        "checkbox" | "boolean" => (
            "boolean",
            format!("CASE WHEN pg_catalog.jsonb_typeof({v}) = 'boolean' THEN ({v})::boolean END"),
        ),
        "created_time" | "last_edited_time" => {
            ("timestamptz", format!("notion_sync._ts({v} #>> '{{}}')"))
        }
        "date" => ("timestamptz", format!("notion_sync._ts({v} ->> 'start')")),
        "multi_select" | "relation" => (
            "text[]",
            format!(
                "ARRAY(SELECT pg_catalog.jsonb_array_elements_text({}))",
                array(v)
            ),
        ),
        "people" => (
            "text[]",
            format!(
                "ARRAY(SELECT e ->> 'name' FROM pg_catalog.jsonb_array_elements({}) e)",
                array(v)
            ),
        ),
        "files" => (
            "text[]",
            format!(
                "ARRAY(SELECT e ->> 'url' FROM pg_catalog.jsonb_array_elements({}) e)",
                array(v)
            ),
        ),
        "created_by" | "last_edited_by" => ("text", format!("({v} ->> 'name')")),
        _ => return None,
    })
}

/// The columns of the view for a schema (`properties` of the data sources, merged by name) and
/// what the stored rows hold for formulas and rollups (`result`: property name -> `number`,
/// `string`, `boolean`, `date`, `array`...), whose type the schema does not give.
pub fn columns(schema: &Map<String, Value>, result: &HashMap<String, String>) -> Vec<Col> {
    let mut taken: HashSet<String> = FIXED.iter().map(|s| s.to_string()).collect();
    let mut names: Vec<&String> = schema.keys().collect();
    // The title first, then the others by name: a stable order whatever order the API gives.
    names.sort_by_key(|n| (schema[*n]["type"] != "title", n.to_lowercase()));
    let mut out = vec![];
    for name in names {
        let prop = &schema[name];
        let kind = prop["type"].as_str().unwrap_or("");
        let id = prop["id"].as_str().unwrap_or(name).to_string();
        let v = format!("t.properties -> {} -> 'value'", lit(name));
        let effective = match kind {
            "formula" | "rollup" => result.get(name).map(String::as_str).unwrap_or("string"),
            k => k,
        };
        let (sql_type, expr) = typed(effective, &v).unwrap_or(("jsonb", v.clone()));
        let column = unique(name, &mut taken);
        if effective == "date" {
            let end = unique(&format!("{column}_end"), &mut taken);
            out.push(Col {
                property_id: id.clone(),
                property: name.clone(),
                column,
                sql_type,
                expr,
            });
            out.push(Col {
                property_id: format!("{id}:end"),
                property: name.clone(),
                column: end,
                sql_type: "timestamptz",
                expr: format!("notion_sync._ts({v} ->> 'end')"),
            });
            continue;
        }
        out.push(Col {
            property_id: id,
            property: name.clone(),
            column,
            sql_type,
            expr,
        });
    }
    out
}

/// CREATE VIEW for `cols` over the rows of one user's database in `table`.
pub fn create_sql(view: &str, table: &str, user: &str, db: &str, cols: &[Col]) -> String {
    let mut select: Vec<String> = FIXED.iter().map(|c| format!("t.{c}")).collect();
    select.extend(
        cols.iter()
            .map(|c| format!("({})::{} AS {}", c.expr, c.sql_type, ident(&c.column))),
    );
    format!(
        "CREATE VIEW {view} WITH (security_invoker = true) AS SELECT {} FROM notion_sync.{table} t \
         WHERE t.user_id = {} AND t.notion_database_id = {}",
        select.join(", "),
        lit(user),
        lit(db)
    )
}

fn cols_json(cols: &[Col]) -> Value {
    Value::Array(
        cols.iter()
            .map(|c| json!({"id": c.property_id, "property": c.property, "column": c.column, "type": c.sql_type}))
            .collect(),
    )
}

/// What changed between two column lists, for the log: added, removed, renamed, retyped.
pub fn changes(old: &Value, new: &[Col]) -> Vec<String> {
    let old: Vec<(String, String, String)> = old
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
                    (s("id"), s("column"), s("type"))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = vec![];
    for c in new {
        match old.iter().find(|(id, _, _)| *id == c.property_id) {
            None => out.push(format!("added {}", c.column)),
            Some((_, col, _)) if *col != c.column => {
                out.push(format!("renamed {col} to {}", c.column))
            }
            Some((_, _, ty)) if ty != c.sql_type => {
                out.push(format!("{} is now {}", c.column, c.sql_type))
            }
            _ => {}
        }
    }
    for (id, col, _) in &old {
        if !new.iter().any(|c| c.property_id == *id) {
            out.push(format!("removed {col}"));
        }
    }
    out
}

/// The schema of a database's data sources, merged by property name: those in `cached` as they
/// are, the others read (one request each).
pub fn merged_schema(
    client: &mut Client,
    sources: &[String],
    cached: &HashMap<String, Map<String, Value>>,
) -> Result<Map<String, Value>, SyncError> {
    let mut merged = Map::new();
    for source in sources {
        let props = match cached.get(source) {
            Some(p) => p.clone(),
            None => client.schema(source).map_err(SyncError::Api)?,
        };
        for (k, p) in props {
            merged.entry(k).or_insert(p);
        }
    }
    Ok(merged)
}

/// The JSON type of the values stored for each formula and rollup (`date` for date objects),
/// read from the rows already synced.
fn stored_results(
    table: &str,
    user: &str,
    db: &str,
    schema: &Map<String, Value>,
) -> Result<HashMap<String, String>, SyncError> {
    let mut out = HashMap::new();
    for (name, p) in schema {
        if !matches!(p["type"].as_str(), Some("formula" | "rollup")) {
            continue;
        }
        let kind = storage::optional_text(
            &format!(
                "SELECT CASE WHEN jsonb_typeof(v) = 'object' AND v ? 'start' THEN 'date' ELSE jsonb_typeof(v) END
                   FROM (SELECT properties -> $3 -> 'value' AS v FROM notion_sync.{table}
                          WHERE user_id = $1 AND notion_database_id = $2) s
                  WHERE jsonb_typeof(v) <> 'null' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            ),
            &[user.into(), db.into(), name.as_str().into()],
        )?;
        if let Some(k) = kind {
            out.insert(name.clone(), k);
        }
    }
    Ok(out)
}

/// Schema-qualified, quoted name of the view: `p_view` as `schema.name` or `name` (then `public`).
fn qualified(view: &str) -> Result<(String, String), SyncError> {
    let parts: Vec<String> =
        Spi::get_one_with_args::<Vec<String>>("SELECT pg_catalog.parse_ident($1)", &[view.into()])
            .map_err(|e| SyncError::InvalidArgument(format!("p_view {view:?}: {e}")))?
            .unwrap_or_default();
    match parts.as_slice() {
        [name] => Ok(("public".into(), name.clone())),
        [schema, name] => Ok((schema.clone(), name.clone())),
        _ => Err(SyncError::InvalidArgument(format!(
            "p_view {view:?} must be a view name, optionally schema-qualified"
        ))),
    }
}

/// Internal (SQL: `notion_sync.create_typed_view`).
#[pg_extern(volatile, parallel_unsafe)]
fn _create_typed_view(p_user_id: &str, p_database_id: &str, p_view: &str) -> String {
    create(p_user_id, p_database_id, p_view).unwrap_or_else(|e| e.raise())
}

pub fn create(user: &str, raw_db: &str, view: &str) -> Result<String, SyncError> {
    let db = sync::normalize_id(raw_db)?;
    let (schema_name, name) = qualified(view)?;
    let reg = storage::registration(user, &db)?.ok_or_else(|| {
        SyncError::InvalidArgument(format!(
            "database {db} is not registered for {user}: register_database() first"
        ))
    })?;
    if reg.mapped.is_some() {
        return Err(SyncError::InvalidArgument(format!(
            "database {db} syncs into a table of your own ({}), which already has typed columns",
            reg.target_table
        )));
    }
    let full = format!("{}.{}", ident(&schema_name), ident(&name));
    let ours = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM notion_sync.typed_views WHERE view_schema = $1 AND view_name = $2)",
        &[schema_name.as_str().into(), name.as_str().into()],
    )?
    .unwrap_or(false);
    let exists = exists(&full)?;
    if exists && !ours {
        return Err(SyncError::Target(
            pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE,
            format!("{full} exists and is not a typed view of notion_sync: choose another name"),
        ));
    }
    let mut client = sync::client_for(user, Txn::Caller, &sync::sql_interrupt)?;
    let (_, sources) = client.sources(&db).map_err(SyncError::Api)?;
    let schema = merged_schema(&mut client, &sources, &HashMap::new())?;
    let cols = columns(
        &schema,
        &stored_results(&reg.target_table, user, &db, &schema)?,
    );
    install(&schema_name, &name, &reg.target_table, user, &db, &cols)?;
    Ok(full)
}

/// Whether a relation of that (qualified, quoted) name exists.
fn exists(full: &str) -> Result<bool, SyncError> {
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
        &[full.into()],
    )?
    .unwrap_or(false))
}

/// (Re-)creates one view and records it.
fn install(
    schema_name: &str,
    name: &str,
    table: &str,
    user: &str,
    db: &str,
    cols: &[Col],
) -> Result<(), SyncError> {
    let full = format!("{}.{}", ident(schema_name), ident(name));
    let exists = exists(&full)?;
    if exists {
        Spi::run(&format!("DROP VIEW {full}"))?;
    }
    Spi::run(&create_sql(&full, table, user, db, cols))?;
    Spi::run(&format!("GRANT SELECT ON {full} TO PUBLIC"))?;
    Spi::run_with_args(
        "INSERT INTO notion_sync.typed_views (view_schema, view_name, user_id, database_id, columns)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (view_schema, view_name) DO UPDATE SET user_id = EXCLUDED.user_id,
                database_id = EXCLUDED.database_id, columns = EXCLUDED.columns, updated_at = now()",
        &[
            schema_name.into(),
            name.into(),
            user.into(),
            db.into(),
            JsonB(cols_json(cols)).into(),
        ],
    )?;
    Ok(())
}

/// Whether a database has typed views (so a schema change has something to re-create).
pub fn has_views(user: &str, db: &str) -> Result<bool, SyncError> {
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM notion_sync.typed_views WHERE user_id = $1 AND database_id = $2)",
        &[user.into(), db.into()],
    )?
    .unwrap_or(false))
}

/// After Notion's schema may have changed: re-creates the database's typed views whose columns
/// differ, and logs what changed. `schema` gives the merged schema (see `merged_schema`); it is
/// called only when the database has a typed view. Returns the changes, one line per view.
pub fn refresh(
    user: &str,
    db: &str,
    table: &str,
    txn: Txn,
    schema: &mut dyn FnMut() -> Result<Map<String, Value>, SyncError>,
) -> Result<Vec<String>, SyncError> {
    let views: Vec<(String, String, Value)> = txn.run(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT view_schema::text, view_name::text, columns FROM notion_sync.typed_views
                  WHERE user_id = $1 AND database_id = $2 ORDER BY 1, 2",
                None,
                &[user.into(), db.into()],
            )?
            .map(|r| {
                Ok((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<JsonB>(3)?.map(|j| j.0).unwrap_or(Value::Null),
                ))
            })
            .collect::<Result<Vec<_>, pgrx::spi::SpiError>>()
        })
    })?;
    if views.is_empty() {
        return Ok(vec![]);
    }
    let schema = schema()?;
    txn.run(|| {
        let cols = columns(&schema, &stored_results(table, user, db, &schema)?);
        let mut notes = vec![];
        for (s, n, old) in views {
            let changed = changes(&old, &cols);
            if changed.is_empty() {
                continue;
            }
            install(&s, &n, table, user, db, &cols)?;
            let note = format!("typed view {s}.{n} re-created: {}", changed.join(", "));
            pgrx::log!("notion_sync: {note}");
            notes.push(note);
        }
        Ok(notes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn every_type_gets_its_column_type() {
        let s = schema(json!({
            "Name": {"id": "title", "type": "title"}, "Age": {"id": "a", "type": "number"},
            "Active": {"id": "b", "type": "checkbox"}, "Born": {"id": "c", "type": "date"},
            "Tags": {"id": "d", "type": "multi_select"}, "Who": {"id": "e", "type": "people"},
            "Files": {"id": "f", "type": "files"}, "Code": {"id": "g", "type": "unique_id"},
            "Score": {"id": "h", "type": "formula"}, "Count": {"id": "i", "type": "rollup"},
            "Made": {"id": "j", "type": "created_time"}, "By": {"id": "k", "type": "created_by"},
            "Links": {"id": "l", "type": "relation"}, "Where": {"id": "m", "type": "place"}}));
        let result = HashMap::from([("Score".to_string(), "number".to_string())]);
        let cols = columns(&s, &result);
        let ty = |c: &str| cols.iter().find(|x| x.column == c).unwrap().sql_type;
        assert_eq!(cols[0].column, "Name", "the title comes first");
        assert_eq!(ty("Name"), "text");
        assert_eq!(ty("Age"), "numeric");
        assert_eq!(ty("Active"), "boolean");
        assert_eq!(ty("Born"), "timestamptz");
        assert_eq!(ty("Born_end"), "timestamptz");
        assert_eq!(ty("Tags"), "text[]");
        assert_eq!(ty("Who"), "text[]");
        assert_eq!(ty("Files"), "text[]");
        assert_eq!(ty("Links"), "text[]");
        assert_eq!(ty("Code"), "text");
        assert_eq!(ty("Score"), "numeric");
        assert_eq!(ty("Count"), "text", "no stored value says otherwise");
        assert_eq!(ty("Made"), "timestamptz");
        assert_eq!(ty("By"), "text");
        assert_eq!(ty("Where"), "jsonb");
    }

    #[test]
    fn colliding_and_long_names_are_made_unique() {
        let long = "x".repeat(70);
        let s = schema(
            json!({"url": {"id": "a", "type": "url"}, "Name": {"id": "t", "type": "title"},
            "When": {"id": "w", "type": "date"}, "When_end": {"id": "e", "type": "rich_text"},
            long.clone(): {"id": "l", "type": "number"}, format!("{long}y"): {"id": "m", "type": "number"}}),
        );
        let cols = columns(&s, &HashMap::new());
        let names: Vec<&str> = cols.iter().map(|c| c.column.as_str()).collect();
        assert!(names.contains(&"url_2"), "{names:?}");
        assert!(
            names.contains(&"When_end") && names.contains(&"When_end_2"),
            "{names:?}"
        );
        assert!(names.iter().all(|n| n.len() <= 63), "{names:?}");
        let set: HashSet<&&str> = names.iter().collect();
        assert_eq!(set.len(), names.len(), "{names:?}");
    }

    #[test]
    fn changes_name_renames_additions_and_removals() {
        let old = json!([{"id": "a", "column": "Age", "type": "numeric"},
                         {"id": "b", "column": "Gone", "type": "text"}]);
        let s = schema(
            json!({"Years": {"id": "a", "type": "number"}, "New": {"id": "c", "type": "checkbox"}}),
        );
        let got = changes(&old, &columns(&s, &HashMap::new()));
        assert!(got.contains(&"renamed Age to Years".to_string()), "{got:?}");
        assert!(got.contains(&"added New".to_string()), "{got:?}");
        assert!(got.contains(&"removed Gone".to_string()), "{got:?}");
        assert!(changes(
            &cols_json(&columns(&s, &HashMap::new())),
            &columns(&s, &HashMap::new())
        )
        .is_empty());
    }

    #[test]
    fn quotes_in_names_are_escaped() {
        let s = schema(json!({"It's \"x\"": {"id": "a", "type": "rich_text"}}));
        let sql = create_sql(
            "public.v",
            "notion_pages_sync",
            "o'brien",
            "db",
            &columns(&s, &HashMap::new()),
        );
        assert!(sql.contains("'It''s \"x\"'"), "{sql}");
        assert!(sql.contains("AS \"It's \"\"x\"\"\""), "{sql}");
        assert!(sql.contains("t.user_id = 'o''brien'"), "{sql}");
    }
}
