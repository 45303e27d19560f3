//! Values on their way back to Notion: the plain form a change records (a sync table's property
//! value, or a mapped column as `to_jsonb` gives it) compared with what Notion has now, and
//! converted to Notion's write format: the inverse of the README's type table. Pure Rust.

use crate::notion::model::{self, Page};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

/// Notion's limit on one rich text piece, in UTF-16 units (as its JavaScript counts), and on the
/// pieces of one value.
const PIECE: usize = 2000;
const PIECES: usize = 100;

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(o) => o
            .get("name")
            .and_then(|n| n.as_str())
            .map(String::from)
            .or_else(|| Some(v.to_string())),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().filter_map(text).collect();
            (!items.is_empty()).then(|| items.join(", "))
        }
    }
}

fn names(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = match v {
        Value::Array(a) => a.iter().filter_map(text).collect(),
        Value::String(s) => s
            .split(", ")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        _ => vec![],
    };
    out.sort();
    out.dedup();
    out
}

fn ids(v: &Value) -> Vec<String> {
    let one = |v: &Value| {
        let raw = match v {
            Value::String(s) => s.as_str(),
            Value::Object(o) => o.get("id").and_then(|i| i.as_str()).unwrap_or(""),
            _ => "",
        };
        model::notion_id(raw)
    };
    let mut out: Vec<String> = match v {
        Value::Array(a) => a.iter().filter_map(one).collect(),
        Value::String(s) => s
            .split([',', ' '])
            .filter_map(|p| one(&Value::String(p.into())))
            .collect(),
        _ => vec![],
    };
    out.sort();
    out.dedup();
    out
}

/// A date or date-time as one canonical string: a date as it is, an instant in UTC with
/// milliseconds (a time without offset is read as UTC).
fn instant(s: &str) -> String {
    let s = s.trim();
    if !s.contains('T') && !s.contains(' ') {
        return s.to_string();
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(&s.replace(' ', "T")) {
        return t
            .with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&s.replace(' ', "T"), f) {
            return t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true);
        }
    }
    s.to_string()
}

fn date(v: &Value) -> Value {
    let (start, end) = match v {
        Value::String(s) if !s.is_empty() => match s.split_once('/') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (s.clone(), None),
        },
        Value::Object(o) => match o.get("start").and_then(|s| s.as_str()) {
            Some(s) => (
                s.to_string(),
                o.get("end").and_then(|e| e.as_str()).map(String::from),
            ),
            None => return Value::Null,
        },
        _ => return Value::Null,
    };
    json!({"start": instant(&start), "end": end.as_deref().map(instant)})
}

fn number(v: &Value) -> Value {
    match v {
        Value::Number(n) => n.as_f64().map_or(Value::Null, |f| json!(f)),
        Value::String(s) => s.trim().parse::<f64>().map_or(Value::Null, |f| json!(f)),
        _ => Value::Null,
    }
}

fn checkbox(v: &Value) -> Value {
    Value::Bool(match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.as_str(), "true" | "t" | "yes" | "on" | "1"),
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    })
}

/// The value of property type `kind` in one comparable form, whichever side it comes from.
pub fn canon(kind: &str, v: &Value) -> Value {
    match kind {
        "title" | "rich_text" | "url" | "email" | "phone_number" | "select" | "status" => {
            text(v).map_or(Value::Null, Value::String)
        }
        "number" => number(v),
        "checkbox" => checkbox(v),
        "multi_select" => json!(names(v)),
        "relation" | "people" => json!(ids(v)),
        "date" => date(v),
        _ => v.clone(),
    }
}

pub fn same(kind: &str, a: &Value, b: &Value) -> bool {
    canon(kind, a) == canon(kind, b)
}

/// Text as rich text pieces of at most 2,000 UTF-16 units each (never splitting a character),
/// at most 100 of them.
pub fn pieces(s: &str) -> Result<Vec<Value>, String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut units = 0;
    for c in s.chars() {
        if units + c.len_utf16() > PIECE {
            out.push(std::mem::take(&mut cur));
            units = 0;
        }
        units += c.len_utf16();
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    if out.len() > PIECES {
        return Err(format!(
            "a text of {} characters is over Notion's limit of {PIECES} pieces of {PIECE}",
            s.chars().count()
        ));
    }
    Ok(out
        .into_iter()
        .map(|p| json!({"type": "text", "text": {"content": p}}))
        .collect())
}

fn limited(what: &str, s: &str, max: usize) -> Result<(), String> {
    let n = s.encode_utf16().count();
    if n > max {
        return Err(format!(
            "{what} of {n} characters is over Notion's limit of {max}"
        ));
    }
    Ok(())
}

/// The property value Notion's PATCH / POST takes for `v`, a value of type `kind`.
pub fn to_notion(kind: &str, v: &Value) -> Result<Value, String> {
    let c = canon(kind, v);
    let s = c.as_str();
    Ok(match kind {
        "title" | "rich_text" => json!({kind: pieces(s.unwrap_or(""))?}),
        "number" => json!({"number": c}),
        "checkbox" => json!({"checkbox": c}),
        "select" | "status" => {
            if let Some(s) = s {
                limited("an option name", s, 100)?;
            }
            json!({kind: s.map(|n| json!({"name": n}))})
        }
        "multi_select" => {
            let items: Vec<Value> = names(v).into_iter().map(|n| json!({"name": n})).collect();
            if items.len() > PIECES {
                return Err(format!(
                    "{} options are over Notion's limit of {PIECES}",
                    items.len()
                ));
            }
            json!({"multi_select": items})
        }
        "url" => {
            if let Some(s) = s {
                limited("a URL", s, 2000)?;
            }
            json!({"url": c})
        }
        "email" | "phone_number" => {
            if let Some(s) = s {
                limited(kind, s, 200)?;
            }
            json!({kind: c})
        }
        "date" => json!({"date": c}),
        "relation" | "people" => {
            let items: Vec<Value> = ids(v).into_iter().map(|i| json!({"id": i})).collect();
            if items.len() > PIECES {
                return Err(format!(
                    "{} {kind} items are over Notion's limit of {PIECES} per request",
                    items.len()
                ));
            }
            json!({kind: items})
        }
        other => return Err(format!("property type {other} is not written back")),
    })
}

/// A page's current value of a property, found by id (it survives renames), else by name:
/// `(name, type, plain value)`.
pub fn current<'p>(
    page: &'p Page,
    id: Option<&str>,
    name: &str,
) -> Option<(&'p str, &'p str, &'p Value)> {
    let by_id = id.and_then(|id| {
        page.properties
            .iter()
            .find(|(_, p)| p.get("id").and_then(|i| i.as_str()) == Some(id))
    });
    let (n, p) = by_id.or_else(|| page.properties.get_key_value(name))?;
    Some((
        n.as_str(),
        p.get("type").and_then(|t| t.as_str()).unwrap_or(""),
        p.get("value").unwrap_or(&Value::Null),
    ))
}

/// Plain values keyed by property name or id (update_page / create_page) as a PATCH / POST
/// `properties` object, with the types of `schema` (name -> {"id", "type"}, or a page's own
/// properties). A read-only or unknown property is an error naming it.
pub fn properties(
    given: &Map<String, Value>,
    schema: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (key, v) in given {
        let found = schema.get_key_value(key).or_else(|| {
            schema
                .iter()
                .find(|(_, p)| p.get("id").and_then(|i| i.as_str()) == Some(key.as_str()))
        });
        let Some((name, p)) = found else {
            return Err(format!("{key:?} is not a property of this database"));
        };
        let kind = p.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if read_only(kind) {
            return Err(format!(
                "Notion property \"{name}\" of type {kind} is computed by Notion: it cannot be written"
            ));
        }
        let id = p.get("id").and_then(|i| i.as_str()).unwrap_or(name);
        out.insert(id.to_string(), to_notion(kind, v)?);
    }
    Ok(out)
}

/// Types Notion computes (sql/writeback.sql `_read_only_type` lists the same).
pub fn read_only(kind: &str) -> bool {
    matches!(
        kind,
        "formula"
            | "rollup"
            | "created_time"
            | "created_by"
            | "last_edited_time"
            | "last_edited_by"
            | "unique_id"
            | "button"
            | "verification"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_compare_in_one_form() {
        assert!(same("select", &json!("Done"), &json!("Done")));
        assert!(same("rich_text", &json!(""), &Value::Null));
        assert!(same("number", &json!(3), &json!(3.0)));
        assert!(same("number", &json!("3.50"), &json!(3.5)));
        assert!(same("checkbox", &Value::Null, &json!(false)));
        assert!(same("multi_select", &json!(["b", "a"]), &json!("a, b")));
        assert!(same(
            "date",
            &json!({"start": "2026-02-01T10:30:00.000+00:00", "end": null}),
            &json!("2026-02-01T11:30:00+01:00")
        ));
        assert!(same(
            "date",
            &json!({"start": "2026-02-01"}),
            &json!("2026-02-01")
        ));
        assert!(!same(
            "date",
            &json!({"start": "2026-02-01"}),
            &json!("2026-02-02")
        ));
        let id = "2f1e0c3a-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
        assert!(same(
            "people",
            &json!([{"id": id, "name": "Ann"}]),
            &json!([id.replace('-', "")])
        ));
        assert!(!same("title", &json!("a"), &json!("A")));
    }

    #[test]
    fn write_formats() {
        assert_eq!(
            to_notion("select", &json!("Done")).unwrap(),
            json!({"select": {"name": "Done"}})
        );
        assert_eq!(
            to_notion("select", &json!("")).unwrap(),
            json!({"select": null})
        );
        assert_eq!(
            to_notion("multi_select", &json!(["x"])).unwrap(),
            json!({"multi_select": [{"name": "x"}]})
        );
        assert_eq!(
            to_notion("number", &json!("2")).unwrap(),
            json!({"number": 2.0})
        );
        assert_eq!(
            to_notion("date", &json!("2026-01-01")).unwrap(),
            json!({"date": {"start": "2026-01-01", "end": null}})
        );
        assert_eq!(
            to_notion("relation", &json!(["2f1e0c3a5b6d4e7f8a9b0c1d2e3f4a5b"])).unwrap(),
            json!({"relation": [{"id": "2f1e0c3a-5b6d-4e7f-8a9b-0c1d2e3f4a5b"}]})
        );
        assert!(to_notion("formula", &json!(1)).is_err());
        assert!(to_notion("email", &json!("a".repeat(201))).is_err());
    }

    #[test]
    fn long_text_in_pieces_of_2000_utf16_units() {
        let s = "é".repeat(4500);
        let p = pieces(&s).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[0]["text"]["content"].as_str().unwrap().chars().count(),
            2000
        );
        // An emoji is two UTF-16 units and is never cut in half.
        let e = "😀".repeat(1001);
        let p = pieces(&e).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[0]["text"]["content"].as_str().unwrap().chars().count(),
            1000
        );
        assert!(pieces(&"x".repeat(200_000)).is_ok());
        assert!(pieces(&"x".repeat(200_001)).is_err());
        assert_eq!(pieces("").unwrap(), Vec::<Value>::new());
    }

    #[test]
    fn plain_properties_by_name_or_id() {
        let schema = json!({"Status": {"id": "st%3A", "type": "status"}, "Calc": {"id": "c", "type": "formula"}});
        let schema = schema.as_object().unwrap();
        let given = json!({"Status": "Done"});
        let out = properties(given.as_object().unwrap(), schema).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"st%3A": {"status": {"name": "Done"}}})
        );
        let bad = json!({"Calc": 1});
        assert!(properties(bad.as_object().unwrap(), schema)
            .unwrap_err()
            .contains("computed"));
        let unknown = json!({"Nope": 1});
        assert!(properties(unknown.as_object().unwrap(), schema).is_err());
    }
}
