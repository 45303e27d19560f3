//! Notion's JSON, normalised: pages to plain property values (notion-api.md §6), block trees to
//! plain text in reading order (§7), and the hash that lets unchanged pages cost nothing.
//! Pure Rust: unit-tested with the recorded fixtures, no Postgres needed.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// A page as stored: plain values, the title, timestamps, and what still needs the property-item
/// endpoint because Notion truncated it at 25 items.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub id: String,
    pub url: Option<String>,
    pub title: String,
    pub created_time: Option<String>,
    pub last_edited_time: Option<String>,
    pub in_trash: bool,
    /// Property name -> `{"id","type","value"}`.
    pub properties: Map<String, Value>,
    /// `(name, property id, type)` of values Notion may have truncated.
    pub truncated: Vec<(String, String, String)>,
}

fn rich_plain(v: &Value) -> Result<String, String> {
    match v {
        Value::Null => Ok(String::new()),
        Value::Array(items) => Ok(items
            .iter()
            .map(|i| {
                i.get("plain_text")
                    .and_then(|p| p.as_str())
                    .or_else(|| i.pointer("/text/content").and_then(|p| p.as_str()))
                    .unwrap_or("")
            })
            .collect()),
        other => Err(format!(
            "expected a rich text array, got {}",
            kind_of(other)
        )),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn expect_array<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    static EMPTY: Vec<Value> = Vec::new();
    match v {
        Value::Array(a) => Ok(a),
        Value::Null => Ok(&EMPTY),
        other => Err(format!("{what}: expected an array, got {}", kind_of(other))),
    }
}

fn user(u: &Value) -> Value {
    let mut o = json!({"id": u.get("id").cloned().unwrap_or(Value::Null)});
    if let Some(n) = u.get("name").filter(|n| !n.is_null()) {
        o["name"] = n.clone();
    }
    if let Some(e) = u.pointer("/person/email").filter(|n| !n.is_null()) {
        o["email"] = e.clone();
    }
    o
}

fn date(v: &Value) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    let mut o = json!({"start": v.get("start").cloned().unwrap_or(Value::Null),
                       "end": v.get("end").cloned().unwrap_or(Value::Null)});
    if let Some(tz) = v.get("time_zone").filter(|t| !t.is_null()) {
        o["time_zone"] = tz.clone();
    }
    o
}

/// The plain JSON value of one property's `<type>` payload. Unknown types are kept as they came.
pub fn property_value(kind: &str, v: &Value) -> Result<Value, String> {
    Ok(match kind {
        "title" | "rich_text" => Value::String(rich_plain(v)?),
        "number" => match v {
            Value::Null | Value::Number(_) => v.clone(),
            other => return Err(format!("number: got {}", kind_of(other))),
        },
        "select" | "status" => match v {
            Value::Null => Value::Null,
            Value::Object(o) => o.get("name").cloned().unwrap_or(Value::Null),
            other => {
                return Err(format!(
                    "{kind}: expected an object, got {}",
                    kind_of(other)
                ))
            }
        },
        "multi_select" => Value::Array(
            expect_array(v, kind)?
                .iter()
                .map(|o| o.get("name").cloned().unwrap_or(Value::Null))
                .collect(),
        ),
        "date" => match v {
            Value::Null | Value::Object(_) => date(v),
            other => return Err(format!("date: expected an object, got {}", kind_of(other))),
        },
        "people" => Value::Array(expect_array(v, kind)?.iter().map(user).collect()),
        "created_by" | "last_edited_by" => match v {
            Value::Object(_) => user(v),
            Value::Null => Value::Null,
            other => return Err(format!("{kind}: expected a user, got {}", kind_of(other))),
        },
        "files" => Value::Array(
            expect_array(v, kind)?
                .iter()
                .map(|f| {
                    let t = f.get("type").and_then(|t| t.as_str()).unwrap_or("external");
                    json!({"name": f.get("name").cloned().unwrap_or(Value::Null),
                           "url": f.pointer(&format!("/{t}/url")).cloned().unwrap_or(Value::Null)})
                })
                .collect(),
        ),
        "checkbox" => match v {
            Value::Bool(_) => v.clone(),
            Value::Null => Value::Bool(false),
            other => return Err(format!("checkbox: got {}", kind_of(other))),
        },
        "url" | "email" | "phone_number" | "created_time" | "last_edited_time" => match v {
            Value::Null | Value::String(_) => v.clone(),
            other => return Err(format!("{kind}: expected a string, got {}", kind_of(other))),
        },
        "formula" => match v.get("type").and_then(|t| t.as_str()) {
            Some("date") => date(v.get("date").unwrap_or(&Value::Null)),
            Some(t) => v.get(t).cloned().unwrap_or(Value::Null),
            None if v.is_null() => Value::Null,
            None => return Err("formula: missing type".into()),
        },
        "relation" => Value::Array(
            expect_array(v, kind)?
                .iter()
                .map(|r| r.get("id").cloned().unwrap_or(Value::Null))
                .collect(),
        ),
        "rollup" => match v.get("type").and_then(|t| t.as_str()) {
            Some("array") => Value::Array(
                expect_array(v.get("array").unwrap_or(&Value::Null), "rollup")?
                    .iter()
                    .map(|item| {
                        let t = item.get("type").and_then(|t| t.as_str()).unwrap_or("");
                        property_value(t, item.get(t).unwrap_or(&Value::Null))
                            .unwrap_or_else(|_| item.clone())
                    })
                    .collect(),
            ),
            Some("date") => date(v.get("date").unwrap_or(&Value::Null)),
            Some("incomplete") | Some("unsupported") => Value::Null,
            Some(t) => v.get(t).cloned().unwrap_or(Value::Null),
            None if v.is_null() => Value::Null,
            None => return Err("rollup: missing type".into()),
        },
        "unique_id" => match v {
            Value::Null => Value::Null,
            Value::Object(o) => match (o.get("prefix").and_then(|p| p.as_str()), o.get("number")) {
                (Some(p), Some(n)) if !n.is_null() => Value::String(format!("{p}-{n}")),
                (_, Some(n)) => n.clone(),
                _ => Value::Null,
            },
            other => return Err(format!("unique_id: got {}", kind_of(other))),
        },
        "verification" => match v {
            Value::Null => Value::Null,
            Value::Object(_) => json!({"state": v.get("state").cloned().unwrap_or(Value::Null),
                "verified_by": v.get("verified_by").filter(|u| !u.is_null()).map(user),
                "date": date(v.get("date").unwrap_or(&Value::Null))}),
            other => return Err(format!("verification: got {}", kind_of(other))),
        },
        "button" => Value::Null,
        // place, AI and future types: kept raw, never dropped, never fatal.
        _ => v.clone(),
    })
}

/// Normalises one page object. An `Err` means this page is malformed: the caller records and skips it.
pub fn parse_page(p: &Value) -> Result<Page, String> {
    let id = p
        .get("id")
        .and_then(|i| i.as_str())
        .filter(|i| !i.is_empty())
        .ok_or("page without an id")?
        .to_string();
    let raw_props = match p.get("properties") {
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(format!(
                "page {id}: properties is a {}, not an object",
                kind_of(other)
            ))
        }
        None => return Err(format!("page {id}: no properties")),
    };
    let mut properties = Map::new();
    let mut truncated = vec![];
    let mut title = String::new();
    for (name, prop) in raw_props {
        let kind = prop
            .get("type")
            .and_then(|t| t.as_str())
            .ok_or_else(|| format!("page {id}: property {name:?} has no type"))?;
        let pid = prop
            .get("id")
            .and_then(|i| i.as_str())
            .unwrap_or("")
            .to_string();
        let payload = prop.get(kind).unwrap_or(&Value::Null);
        let value = property_value(kind, payload)
            .map_err(|e| format!("page {id}: property {name:?}: {e}"))?;
        if kind == "title" {
            title = value.as_str().unwrap_or("").to_string();
        }
        let long = payload.as_array().map(|a| a.len() >= 25).unwrap_or(false);
        let more = prop
            .get("has_more")
            .and_then(|h| h.as_bool())
            .unwrap_or(false);
        if more || (long && matches!(kind, "title" | "rich_text" | "people" | "relation")) {
            truncated.push((name.clone(), pid.clone(), kind.to_string()));
        }
        let mut entry = Map::new();
        entry.insert("id".into(), Value::String(pid));
        entry.insert("type".into(), Value::String(kind.to_string()));
        entry.insert("value".into(), value);
        properties.insert(name.clone(), Value::Object(entry));
    }
    let s = |k: &str| p.get(k).and_then(|v| v.as_str()).map(String::from);
    Ok(Page {
        url: s("url"),
        title,
        created_time: s("created_time"),
        last_edited_time: s("last_edited_time"),
        in_trash: p
            .get("in_trash")
            .or_else(|| p.get("archived"))
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        properties,
        truncated,
        id,
    })
}

/// Replaces a truncated value with the complete list read from the property-item endpoint
/// (`items` are the `results` of every page of that endpoint, in order).
pub fn complete_property(
    page: &mut Page,
    name: &str,
    kind: &str,
    items: &[Value],
) -> Result<(), String> {
    let payloads: Vec<Value> = items
        .iter()
        .map(|i| i.get(kind).cloned().unwrap_or(Value::Null))
        .collect();
    let value = property_value(kind, &Value::Array(payloads))?;
    if kind == "title" {
        page.title = value.as_str().unwrap_or("").to_string();
    }
    if let Some(p) = page.properties.get_mut(name) {
        p["value"] = value;
    }
    Ok(())
}

/// SHA-256 over what the mirror stores of a page (before content). `last_edited_time` is part of it,
/// so an edit to the body alone also counts as a change.
pub fn page_hash(page: &Page) -> String {
    /// Serialised from references (no copy of the properties); the field order is the key order
    /// of the JSON object hashed before, so stored hashes stay valid.
    #[derive(serde::Serialize)]
    struct Canonical<'a> {
        e: &'a Option<String>,
        p: &'a Map<String, Value>,
        t: bool,
        u: &'a Option<String>,
    }
    let canonical = Canonical {
        e: &page.last_edited_time,
        p: &page.properties,
        t: page.in_trash,
        u: &page.url,
    };
    let text = serde_json::to_string(&canonical).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 hex digits in the dashed 8-4-4-4-12 form Notion returns.
pub fn dashed(h: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Text of a property by name, case-insensitively, if it holds any text.
pub fn text_property(page: &Page, names: &[&str]) -> Option<String> {
    page.properties.iter().find_map(|(k, v)| {
        if names.iter().any(|n| n.eq_ignore_ascii_case(k)) {
            match &v["value"] {
                Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
                _ => None,
            }
        } else {
            None
        }
    })
}

pub fn number_property(page: &Page, names: &[&str]) -> Option<f64> {
    page.properties.iter().find_map(|(k, v)| {
        if names.iter().any(|n| n.eq_ignore_ascii_case(k)) {
            v["value"].as_f64()
        } else {
            None
        }
    })
}

/// The text of one block (without its children), or None for blocks that carry no text.
pub fn block_text(block: &Value) -> Option<String> {
    let kind = block.get("type")?.as_str()?;
    let body = block.get(kind).unwrap_or(&Value::Null);
    let rt = |key: &str| rich_plain(body.get(key).unwrap_or(&Value::Null)).unwrap_or_default();
    let text = match kind {
        "paragraph" | "quote" | "toggle" | "callout" => rt("rich_text"),
        "heading_1" => format!("# {}", rt("rich_text")),
        "heading_2" => format!("## {}", rt("rich_text")),
        "heading_3" | "heading_4" => format!("### {}", rt("rich_text")),
        "bulleted_list_item" => format!("- {}", rt("rich_text")),
        "numbered_list_item" => format!("1. {}", rt("rich_text")),
        "to_do" => {
            let done = body
                .get("checked")
                .and_then(|c| c.as_bool())
                .unwrap_or(false);
            format!("[{}] {}", if done { "x" } else { " " }, rt("rich_text"))
        }
        "code" => rt("rich_text"),
        "equation" => body.get("expression")?.as_str()?.to_string(),
        "child_page" | "child_database" => body.get("title")?.as_str()?.to_string(),
        "table_row" => body
            .get("cells")?
            .as_array()?
            .iter()
            .map(|c| rich_plain(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" | "),
        "image" | "video" | "file" | "pdf" | "audio" | "bookmark" | "embed" => {
            let caption = rt("caption");
            if caption.is_empty() {
                return None;
            }
            caption
        }
        _ => return None,
    };
    if text.trim().is_empty() {
        None
    } else {
        Some(text)
    }
}

/// Whether the reader should descend into this block's children. Child pages are only named: their
/// content belongs to the child page itself.
pub fn descend(block: &Value) -> bool {
    let has = block
        .get("has_children")
        .and_then(|h| h.as_bool())
        .unwrap_or(false);
    let kind = block.get("type").and_then(|t| t.as_str()).unwrap_or("");
    has && !matches!(kind, "child_page" | "child_database")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap()
    }

    #[test]
    fn every_property_type_of_the_recorded_page() {
        let page = parse_page(&fixture("page-all-property-types-2025-09-03.json")).unwrap();
        let kinds: Vec<&str> = page
            .properties
            .values()
            .map(|v| v["type"].as_str().unwrap())
            .collect();
        for k in [
            "title",
            "rich_text",
            "number",
            "select",
            "multi_select",
            "date",
            "people",
            "files",
            "checkbox",
            "url",
            "email",
            "phone_number",
            "formula",
            "relation",
            "rollup",
            "created_time",
            "created_by",
            "last_edited_time",
            "last_edited_by",
            "unique_id",
        ] {
            assert!(kinds.contains(&k), "missing {k}");
        }
        for v in page.properties.values() {
            let value = &v["value"];
            match v["type"].as_str().unwrap() {
                "multi_select" | "relation" | "people" | "files" => assert!(value.is_array()),
                "checkbox" => assert!(value.is_boolean()),
                "title" | "rich_text" => assert!(value.is_string()),
                _ => {}
            }
        }
        assert!(!page.title.is_empty());
        assert_eq!(
            page.created_time
                .as_deref()
                .map(|t| t.ends_with(":00.000Z")),
            Some(true)
        );
    }

    #[test]
    fn recorded_query_pages_parse() {
        let list = fixture("data-source-query-2025-09-03.json");
        let results = list["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        for r in results {
            let p = parse_page(r).unwrap();
            assert_eq!(p.id.len(), 36);
            assert!(!p.in_trash);
        }
    }

    #[test]
    fn old_version_page_uses_archived() {
        let mut v = fixture("page-retrieve-2022-06-28.json");
        v["archived"] = json!(true);
        assert!(parse_page(&v).unwrap().in_trash);
    }

    #[test]
    fn wrong_typed_values_are_errors_not_panics() {
        let bad = json!({"id":"x","properties":{"N":{"id":"a","type":"number","number":"seven"}}});
        assert!(parse_page(&bad).unwrap_err().contains("number"));
        let bad = json!({"id":"x","properties":"garbage"});
        assert!(parse_page(&bad).is_err());
        let bad = json!({"properties":{}});
        assert!(parse_page(&bad).is_err());
    }

    #[test]
    fn unknown_types_are_kept_raw() {
        let p = json!({"id":"x","properties":{"Where":{"id":"p","type":"place","place":{"lat":1.5,"lon":2.0,"name":"Home"}},
            "Future":{"id":"f","type":"hologram","hologram":{"beam":3}}}});
        let page = parse_page(&p).unwrap();
        assert_eq!(page.properties["Where"]["value"]["name"], "Home");
        assert_eq!(page.properties["Future"]["value"]["beam"], 3);
    }

    #[test]
    fn relation_with_more_is_marked_and_completed() {
        let rel: Vec<Value> = (0..25).map(|i| json!({"id": format!("r{i}")})).collect();
        let p = json!({"id":"x","properties":{"Links":{"id":"L%3A","type":"relation","relation":rel,"has_more":true}}});
        let mut page = parse_page(&p).unwrap();
        assert_eq!(
            page.truncated,
            vec![(
                "Links".to_string(),
                "L%3A".to_string(),
                "relation".to_string()
            )]
        );
        let items: Vec<Value> = (0..40).map(|i| json!({"object":"property_item","type":"relation","relation":{"id": format!("r{i}")}})).collect();
        complete_property(&mut page, "Links", "relation", &items).unwrap();
        assert_eq!(
            page.properties["Links"]["value"].as_array().unwrap().len(),
            40
        );
    }

    #[test]
    fn hash_is_the_one_stored_by_earlier_versions() {
        let p = json!({"id":"x","last_edited_time":"2026-01-01T00:00:00.000Z","url":"https://n/x","properties":{"Name":{"id":"title","type":"title","title":[{"plain_text":"A"}]}}});
        let page = parse_page(&p).unwrap();
        let before = json!({"p": page.properties, "t": page.in_trash, "e": page.last_edited_time, "u": page.url});
        let digest = Sha256::digest(before.to_string().as_bytes());
        let want: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(page_hash(&page), want);
    }

    #[test]
    fn hash_changes_with_values_and_edit_time_only() {
        let p = json!({"id":"x","last_edited_time":"2026-01-01T00:00:00.000Z","properties":{"Name":{"id":"title","type":"title","title":[{"plain_text":"A"}]}}});
        let a = parse_page(&p).unwrap();
        let mut q = p.clone();
        q["request_id"] = json!("other");
        assert_eq!(page_hash(&a), page_hash(&parse_page(&q).unwrap()));
        q["last_edited_time"] = json!("2026-01-01T00:01:00.000Z");
        assert_ne!(page_hash(&a), page_hash(&parse_page(&q).unwrap()));
    }

    #[test]
    fn recorded_blocks_render_in_order() {
        let list = fixture("block-children-2022-06-28.trimmed.json");
        let texts: Vec<String> = list["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(block_text)
            .collect();
        assert!(texts.iter().any(|t| t.starts_with("# ")), "{texts:?}");
        assert!(texts.iter().any(|t| t.starts_with("- ")), "{texts:?}");
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("[ ] ") || t.starts_with("[x] ")),
            "{texts:?}"
        );
        let first_heading = texts.iter().position(|t| t.starts_with("# ")).unwrap();
        let first_bullet = texts.iter().position(|t| t.starts_with("- ")).unwrap();
        assert!(first_heading < first_bullet);
    }
}
