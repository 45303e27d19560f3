//! Discovery: every database (data source, under Notion-Version 2025-09-03) the user's token can
//! see, so nobody has to copy ids out of Notion by hand. Search returns trashed ones too: they are
//! flagged, never registered by `discover_databases` itself (it registers nothing).

use crate::error::SyncError;
use crate::notion::client::ApiError;
use crate::sync::{self, Txn};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

/// Internal (SQL: `notion_sync.discover_databases`): one JSON object per data source (or
/// database before 2025-09-03).
#[pg_extern(volatile, parallel_unsafe)]
fn _discover_databases(p_user_id: &str) -> JsonB {
    discover(p_user_id)
        .map(|v| JsonB(Value::Array(v)))
        .unwrap_or_else(|e| e.raise())
}

fn plain(v: Option<&Value>) -> String {
    v.and_then(|t| t.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("plain_text").and_then(|p| p.as_str()))
                .collect()
        })
        .unwrap_or_default()
}

/// One search result as a row: under 2025-09-03 a data source (its database is its parent, and
/// where the database lives is `database_parent`), before that a database.
pub fn row(found: &Value) -> Option<Value> {
    let id = sync::normalize_id(found.get("id")?.as_str()?).ok()?;
    let is_source = found.get("object").and_then(|o| o.as_str()) == Some("data_source");
    let (database_id, data_source_id, parent) = if is_source {
        let db = found
            .pointer("/parent/database_id")
            .and_then(|d| d.as_str())
            .and_then(|d| sync::normalize_id(d).ok())?;
        (db, Some(id), found.get("database_parent").cloned())
    } else {
        (id, None, found.get("parent").cloned())
    };
    Some(json!({
        "database_id": database_id,
        "data_source_id": data_source_id,
        "title": plain(found.get("title")),
        "url": found.get("url"),
        "parent": parent,
        "property_count": found.get("properties").and_then(|p| p.as_object()).map_or(0, |p| p.len()),
        "in_trash": found.get("in_trash").or_else(|| found.get("archived")).and_then(|t| t.as_bool()).unwrap_or(false),
    }))
}

pub fn discover(user: &str) -> Result<Vec<Value>, SyncError> {
    let mut client = sync::client_for(user, Txn::Caller, &sync::sql_interrupt)?;
    let found = client.search_containers().map_err(|e| match e {
        ApiError::Http { status: 401, .. } => SyncError::BadToken(user.to_string()),
        e => SyncError::Api(e),
    })?;
    Ok(found.iter().filter_map(row).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/real/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap()
    }

    #[test]
    fn a_recorded_data_source_names_its_database_and_where_that_lives() {
        let ds = fixture("notion-sdk-py__data-source-retrieve__2025-09-03.json");
        let r = row(&ds).unwrap();
        assert_eq!(
            r["database_id"].as_str().unwrap(),
            sync::normalize_id(ds["parent"]["database_id"].as_str().unwrap()).unwrap()
        );
        assert_eq!(
            r["data_source_id"].as_str().unwrap(),
            ds["id"].as_str().unwrap()
        );
        assert_eq!(r["parent"], ds["database_parent"]);
        assert_eq!(
            r["property_count"].as_u64().unwrap() as usize,
            ds["properties"].as_object().unwrap().len()
        );
        assert_eq!(r["in_trash"], json!(false));
    }

    #[test]
    fn a_2022_database_is_its_own_source_and_trash_is_flagged() {
        let db = json!({"object": "database", "id": "a1b2c3d40000400080000000000000c1",
            "title": [{"plain_text": "Char"}, {"plain_text": "acters"}], "archived": true,
            "parent": {"type": "workspace", "workspace": true}, "properties": {"Name": {}}});
        let r = row(&db).unwrap();
        assert_eq!(r["database_id"], "a1b2c3d4-0000-4000-8000-0000000000c1");
        assert_eq!(r["data_source_id"], Value::Null);
        assert_eq!(r["title"], "Characters");
        assert_eq!(r["in_trash"], json!(true));
    }
}
