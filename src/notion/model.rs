//! Notion's JSON, normalised: pages to plain property values, block trees to plain text in reading
//! order, and the hash that lets unchanged pages cost nothing. The shapes are those of the recorded
//! responses in tests/fixtures/.
//! Pure Rust: unit-tested with the recorded fixtures, no Postgres needed.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Timelike};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// A page as stored: plain values, the title, timestamps, and what still needs the property-item
/// endpoint because Notion truncated it at 25 items. Everything in it is storable as it is: the id
/// is a Notion id, the timestamps are valid `timestamptz` input, and no string holds a NUL.
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
    /// `(name, property id, type)` of values Notion truncated: a `relation` with `has_more: true`,
    /// `people` with 25 items or more, a `rollup` whose type is `incomplete`. Never `title` or
    /// `rich_text`: Notion returns those complete.
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
        // `{"name","url"}`; a Notion-hosted file (`type: "file"`) also keeps `expiry_time`, the
        // moment its presigned URL stops working.
        "files" => Value::Array(
            expect_array(v, kind)?
                .iter()
                .map(|f| {
                    let t = f.get("type").and_then(|t| t.as_str()).unwrap_or("external");
                    let body = f.get(t).unwrap_or(&Value::Null);
                    let mut o = json!({"name": f.get("name").cloned().unwrap_or(Value::Null),
                           "url": body.get("url").cloned().unwrap_or(Value::Null)});
                    if t == "file" {
                        o["expiry_time"] = body.get("expiry_time").cloned().unwrap_or(Value::Null);
                    }
                    o
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
        // Always a string: `"PREFIX-N"` with a prefix, `"N"` without one (mapped integer columns
        // take the digits after the last `-`).
        "unique_id" => match v {
            Value::Null => Value::Null,
            Value::Object(o) => {
                let n = match o.get("number") {
                    None | Some(Value::Null) => return Ok(Value::Null),
                    Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
                        (Some(u), _) => u,
                        (None, Some(f)) if f.fract() == 0.0 && (0.0..1e15).contains(&f) => f as u64,
                        _ => return Err(format!("unique_id: number {n} is not a whole number")),
                    },
                    Some(other) => {
                        return Err(format!("unique_id: number is a {}", kind_of(other)))
                    }
                };
                match o.get("prefix") {
                    Some(Value::String(p)) if !p.is_empty() => Value::String(format!("{p}-{n}")),
                    None | Some(Value::Null) | Some(Value::String(_)) => {
                        Value::String(n.to_string())
                    }
                    Some(other) => {
                        return Err(format!("unique_id: prefix is a {}", kind_of(other)))
                    }
                }
            }
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

/// Whether `s` is a Notion id: 32 hex digits, dashes optional (anywhere, as Notion accepts them).
pub fn is_notion_id(s: &str) -> bool {
    let mut hex = 0;
    for c in s.chars() {
        match c {
            '-' => {}
            c if c.is_ascii_hexdigit() => hex += 1,
            _ => return false,
        }
    }
    hex == 32
}

/// At most 40 characters of `s`, quoted, for an error message.
fn short(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{:?}...", s.chars().take(40).collect::<String>())
    } else {
        format!("{s:?}")
    }
}

/// A wall time Postgres takes as `timestamp`/`date` and that formats back the way it came: years
/// 0001..9999 (Postgres has no year 0, and chrono writes other years with a sign), no leap second.
pub fn check_wall_time(t: &NaiveDateTime) -> Result<(), String> {
    if !(1..=9999).contains(&t.year()) {
        return Err(format!("year {} is outside 0001..9999", t.year()));
    }
    if t.nanosecond() >= 1_000_000_000 {
        return Err("a leap second (:60) is not stored".into());
    }
    Ok(())
}

/// An RFC 3339 timestamp (date, time and zone) that Postgres accepts as `timestamptz`, parsed; Err
/// says why not. Checked: the calendar (no month 13, day 45, hour 99), years 0001..9999, no leap
/// second, offsets under 16 hours (Postgres' limit).
pub fn check_timestamp(s: &str) -> Result<DateTime<FixedOffset>, String> {
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("{} is not an RFC 3339 timestamp: {e}", short(s)))?;
    check_wall_time(&t.naive_local()).map_err(|e| format!("{}: {e}", short(s)))?;
    if t.offset().local_minus_utc().abs() >= 16 * 3600 {
        return Err(format!("{}: the offset is 16 hours or more", short(s)));
    }
    Ok(t)
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Removes every NUL from the strings and keys of `v` (Postgres text and jsonb cannot hold one).
fn strip_nul(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => s.retain(|c| c != '\0'),
        Value::Array(a) => a.iter_mut().for_each(strip_nul),
        Value::Object(o) if o.keys().any(|k| k.contains('\0')) => {
            for (k, mut v) in std::mem::take(o) {
                strip_nul(&mut v);
                o.insert(k.replace('\0', ""), v);
            }
        }
        Value::Object(o) => o.values_mut().for_each(strip_nul),
        _ => {}
    }
}

/// Normalises one page object. An `Err` means this page is malformed: the caller records and skips
/// it, and the other pages are synced. Rejected, so that nothing reaches SQL that Postgres would
/// refuse: an id that is not a Notion id (32 hex digits, dashes optional; kept as given), a
/// `created_time` / `last_edited_time` that is not a string or not valid `timestamptz` input (see
/// [`check_timestamp`]), `properties` that is not an object, and a property value of the wrong
/// JSON type (a title that is a number, ...).
///
/// NUL characters (`\u0000`), which Postgres text and jsonb cannot hold, are **removed** from every
/// string of the stored page (title, url, property names and values) instead of failing the page:
/// the rest of the text is still worth having.
pub fn parse_page(p: &Value) -> Result<Page, String> {
    let id = match p.get("id") {
        Some(Value::String(s)) if is_notion_id(s) => s.clone(),
        Some(Value::String(s)) if !s.is_empty() => {
            return Err(format!(
                "page id {} is not a Notion id (32 hex digits)",
                short(s)
            ))
        }
        None | Some(Value::Null) | Some(Value::String(_)) => {
            return Err("page without an id".into())
        }
        Some(other) => return Err(format!("page id is a {}, not a string", kind_of(other))),
    };
    let time = |k: &str| -> Result<Option<String>, String> {
        match p.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                check_timestamp(s).map_err(|e| format!("page {id}: {k}: {e}"))?;
                Ok(Some(s.clone()))
            }
            Some(other) => Err(format!(
                "page {id}: {k} is a {}, not a timestamp",
                kind_of(other)
            )),
        }
    };
    let created_time = time("created_time")?;
    let last_edited_time = time("last_edited_time")?;
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
        let mut value = property_value(kind, payload)
            .map_err(|e| format!("page {id}: property {name:?}: {e}"))?;
        if has_nul(&value) {
            strip_nul(&mut value);
        }
        if kind == "title" {
            title = value.as_str().unwrap_or("").to_string();
        }
        let more = prop.get("has_more").and_then(|h| h.as_bool()) == Some(true);
        let cut = match kind {
            "relation" => more,
            "people" => more || payload.as_array().is_some_and(|a| a.len() >= 25),
            "rollup" => payload.get("type").and_then(|t| t.as_str()) == Some("incomplete"),
            _ => false,
        };
        let clean = |s: &str| s.replace('\0', "");
        if cut {
            truncated.push((name.clone(), pid.clone(), kind.to_string()));
        }
        let mut entry = Map::new();
        entry.insert("id".into(), Value::String(clean(&pid)));
        entry.insert("type".into(), Value::String(clean(kind)));
        entry.insert("value".into(), value);
        properties.insert(clean(name), Value::Object(entry));
    }
    Ok(Page {
        url: p
            .get("url")
            .and_then(|v| v.as_str())
            .map(|u| u.replace('\0', "")),
        title,
        created_time,
        last_edited_time,
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
/// (`items` are the `results` of every page of that endpoint, in order; a response that is not a
/// list, a single property item, as the only item). Same as
/// `complete_property_with(page, name, kind, items, None)`.
pub fn complete_property(
    page: &mut Page,
    name: &str,
    kind: &str,
    items: &[Value],
) -> Result<(), String> {
    complete_property_with(page, name, kind, items, None)
}

/// [`complete_property`] with the `property_item` object of the last list response. A rollup read
/// through the property-item endpoint keeps its value there (`property_item.rollup`; `results` are
/// empty, or hold the items of an `array` rollup), so a rollup needs it: with `Some` and no
/// rollup in it (nor a single rollup item in `items`) this is an Err; with `None` and no single
/// rollup item the stored value is left as it is.
pub fn complete_property_with(
    page: &mut Page,
    name: &str,
    kind: &str,
    items: &[Value],
    property_item: Option<&Value>,
) -> Result<(), String> {
    let mut value = if kind == "rollup" {
        match rollup_value(items, property_item)? {
            Some(v) => v,
            None if property_item.is_none() => return Ok(()),
            None => {
                return Err("rollup: the property-item response has no property_item.rollup".into())
            }
        }
    } else {
        let payloads: Vec<Value> = items
            .iter()
            .map(|i| i.get(kind).cloned().unwrap_or(Value::Null))
            .collect();
        property_value(kind, &Value::Array(payloads))?
    };
    strip_nul(&mut value);
    if kind == "title" {
        page.title = value.as_str().unwrap_or("").to_string();
    }
    if let Some(p) = page.properties.get_mut(name) {
        p["value"] = value;
    }
    Ok(())
}

/// A rollup as the property-item endpoint gives it: the value in `property_item.rollup` (or in
/// the one non-list item), an `array` rollup's items possibly in `results`. None: no rollup found.
fn rollup_value(items: &[Value], property_item: Option<&Value>) -> Result<Option<Value>, String> {
    let is_rollup = |i: &&Value| i.get("type").and_then(|t| t.as_str()) == Some("rollup");
    let Some(rollup) = property_item
        .filter(is_rollup)
        .or_else(|| items.iter().find(is_rollup))
        .and_then(|i| i.get("rollup"))
        .filter(|r| !r.is_null())
    else {
        return Ok(None);
    };
    let listed = rollup.get("type").and_then(|t| t.as_str()) == Some("array")
        && rollup
            .get("array")
            .and_then(|a| a.as_array())
            .is_none_or(|a| a.is_empty());
    let from_results: Vec<Value> = items.iter().filter(|i| !is_rollup(i)).cloned().collect();
    if listed && !from_results.is_empty() {
        let mut r = rollup.clone();
        r["array"] = Value::Array(from_results);
        return property_value("rollup", &r).map(Some);
    }
    property_value("rollup", rollup).map(Some)
}

/// The names of the formula properties of a data source schema (its `properties`) whose value
/// changes without an edit: the expression calls `now()` or `today()` (any case, spaces allowed),
/// or references, directly or through other formulas, such a formula: as `prop("Name")` (old form)
/// or `{{notion:block_property:<property id>:...}}` (the API's current form). Give them to
/// [`page_hash_with`]. Other formulas, and rollups, count as usual.
pub fn volatile_properties(schema_properties: &Map<String, Value>) -> Vec<String> {
    let formulas: Vec<(&str, &str, &str)> = schema_properties
        .iter()
        .filter_map(|(name, p)| {
            if p.get("type")?.as_str()? != "formula" {
                return None;
            }
            let expr = p.pointer("/formula/expression")?.as_str()?;
            let id = p.get("id").and_then(|i| i.as_str()).unwrap_or("");
            Some((name.as_str(), id, expr))
        })
        .collect();
    let refs: Vec<Vec<Ref>> = formulas.iter().map(|f| references(f.2)).collect();
    let mut volatile: Vec<bool> = formulas.iter().map(|f| uses_clock(f.2)).collect();
    loop {
        let mut changed = false;
        for i in 0..formulas.len() {
            if volatile[i] {
                continue;
            }
            let hit = formulas
                .iter()
                .zip(&volatile)
                .any(|(f, v)| *v && refs[i].iter().any(|r| r.names(f.0, f.1)));
            if hit {
                volatile[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    formulas
        .iter()
        .zip(volatile)
        .filter(|(_, v)| *v)
        .map(|(f, _)| f.0.to_string())
        .collect()
}

/// A property a formula expression references.
enum Ref {
    Name(String),
    Id(String),
}

impl Ref {
    fn names(&self, name: &str, id: &str) -> bool {
        match self {
            Ref::Name(n) => n == name,
            Ref::Id(i) => !id.is_empty() && percent_decode(i) == percent_decode(id),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether an expression calls `now()` or `today()`.
fn uses_clock(expr: &str) -> bool {
    let lower = expr.to_lowercase();
    let b = lower.as_bytes();
    for f in ["now", "today"] {
        let mut from = 0;
        while let Some(at) = lower[from..].find(f) {
            let start = from + at;
            let mut j = start + f.len();
            from = j;
            let word_before =
                start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
            if word_before {
                continue;
            }
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if j >= b.len() || b[j] != b'(' {
                continue;
            }
            j += 1;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if j < b.len() && b[j] == b')' {
                return true;
            }
        }
    }
    false
}

/// The properties an expression references: `prop("Name")` and
/// `{{notion:block_property:<id>:...}}`.
fn references(expr: &str) -> Vec<Ref> {
    let mut out = vec![];
    const TAG: &str = "{{notion:block_property:";
    let mut rest = expr;
    while let Some(at) = rest.find(TAG) {
        rest = &rest[at + TAG.len()..];
        let end = rest.find([':', '}']).unwrap_or(rest.len());
        out.push(Ref::Id(rest[..end].to_string()));
    }
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i + 4 <= chars.len() {
        let word = chars[i..i + 4].iter().collect::<String>();
        let before_ok = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        i += 1;
        if word != "prop" || !before_ok {
            continue;
        }
        let mut j = i + 3;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        if j >= chars.len() || chars[j] != '(' {
            continue;
        }
        j += 1;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        let Some(&quote) = chars.get(j).filter(|c| **c == '"' || **c == '\'') else {
            continue;
        };
        let mut name = String::new();
        j += 1;
        while j < chars.len() && chars[j] != quote {
            if chars[j] == '\\' && j + 1 < chars.len() {
                j += 1;
            }
            name.push(chars[j]);
            j += 1;
        }
        out.push(Ref::Name(name));
    }
    out
}

/// The part before `?` of a presigned S3 URL (an `http(s)` URL with `X-Amz-` in its query), which
/// names the file; None for any other string.
fn presigned_base(s: &str) -> Option<&str> {
    let (base, query) = s.split_once('?')?;
    let web = base.starts_with("https://") || base.starts_with("http://");
    let amz = query
        .as_bytes()
        .windows(6)
        .any(|w| w.eq_ignore_ascii_case(b"x-amz-"));
    (web && amz).then_some(base)
}

/// A Notion-hosted file as stored: `{"url", "expiry_time", ...}`.
fn hosted_file(o: &Map<String, Value>) -> bool {
    o.contains_key("expiry_time") && o.get("url").is_some_and(|u| u.is_string())
}

/// Whether a value holds a signature that changes on every read (a presigned URL, a hosted file).
fn signed(v: &Value) -> bool {
    match v {
        Value::String(s) => presigned_base(s).is_some(),
        Value::Array(a) => a.iter().any(signed),
        Value::Object(o) => hosted_file(o) || o.values().any(signed),
        _ => false,
    }
}

/// `v` with every file named by its identity instead of its signature: a presigned URL cut at `?`,
/// a hosted file's URL cut at `?` and its `expiry_time` left out, and the `expiry_time` next to
/// any presigned URL left out.
fn unsigned(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(presigned_base(s).unwrap_or(s).to_string()),
        Value::Array(a) => Value::Array(a.iter().map(unsigned).collect()),
        Value::Object(o) => {
            let hosted = hosted_file(o)
                || o.values()
                    .any(|x| x.as_str().is_some_and(|s| presigned_base(s).is_some()));
            let mut out = Map::new();
            for (k, x) in o {
                match (hosted, k.as_str(), x) {
                    (true, "expiry_time", _) => {}
                    (true, "url", Value::String(u)) => {
                        let base = u.split_once('?').map_or(u.as_str(), |(b, _)| b);
                        out.insert(k.clone(), Value::String(base.to_string()));
                    }
                    _ => {
                        out.insert(k.clone(), unsigned(x));
                    }
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// SHA-256 over what the mirror stores of a page (before content). `last_edited_time` is part of it,
/// so an edit to the body alone also counts as a change. Files count by identity, not signature:
/// Notion re-signs hosted file URLs on every read, so a presigned URL counts without its query
/// and without the `expiry_time` next to it; another file (path, name) still changes the hash.
/// Pages without hosted files hash exactly as earlier versions did. Same as
/// `page_hash_with(page, &[])`.
pub fn page_hash(page: &Page) -> String {
    page_hash_with(page, &[])
}

/// [`page_hash`] with the values of the `volatile` properties (names, from
/// [`volatile_properties`]) left out: a formula over `now()` changes on every read, not on an edit.
pub fn page_hash_with(page: &Page, volatile: &[String]) -> String {
    /// Serialised from references (no copy of the properties); the field order is the key order
    /// of the JSON object hashed before, so stored hashes stay valid.
    #[derive(serde::Serialize)]
    struct Canonical<'a> {
        e: &'a Option<String>,
        p: &'a Map<String, Value>,
        t: bool,
        u: &'a Option<String>,
    }
    let leave_out = volatile.iter().any(|n| page.properties.contains_key(n));
    let resigned = page.properties.values().any(signed);
    let owned: Map<String, Value>;
    let p = if leave_out || resigned {
        owned = page
            .properties
            .iter()
            .map(|(k, v)| {
                let mut v = if resigned { unsigned(v) } else { v.clone() };
                if volatile.contains(k) {
                    if let Some(o) = v.as_object_mut() {
                        o.remove("value");
                    }
                }
                (k.clone(), v)
            })
            .collect();
        &owned
    } else {
        &page.properties
    };
    let canonical = Canonical {
        e: &page.last_edited_time,
        p,
        t: page.in_trash,
        u: &page.url,
    };
    hash_text(&serde_json::to_string(&canonical).unwrap_or_default())
}

/// SHA-256 of a text, in hex.
pub fn hash_text(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 hex digits in the dashed 8-4-4-4-12 form Notion returns.
/// A Notion id in the dashed lowercase form the API returns: 32 hex digits, dashes optional.
pub fn notion_id(raw: &str) -> Option<String> {
    let hex: String = raw.chars().filter(|c| *c != '-').collect();
    (hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| dashed(&hex.to_lowercase()))
}

/// [`notion_id`], or the id in a Notion URL: the last 32 hex digits of its path (URLs carry a
/// title slug before it; the query and fragment are left out).
pub fn notion_id_or_url(raw: &str) -> Option<String> {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    let hex: String = path
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_lowercase();
    let tail = hex.len()
        - hex
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
    let tail = &hex[tail..];
    (tail.len() >= 32).then(|| dashed(&tail[tail.len() - 32..]))
}

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

/// The text of one block (without its children), or None for blocks that carry no text. Headings
/// and list items are prefixed (`# `, `- `, `1. `, `[ ] `, ...) and give None when they hold no
/// text. `bookmark`, `embed` and `link_preview` give their URL, as `caption (url)` when captioned;
/// `link_to_page` gives the id of the page (or database) it points to; media blocks (hosted URLs
/// are re-signed on every read) give their caption only; `unsupported` blocks give their text when
/// Notion sends any (today it sends only `block_type`, a name, so nothing). NULs are removed.
pub fn block_text(block: &Value) -> Option<String> {
    let kind = block.get("type")?.as_str()?;
    let body = block.get(kind).unwrap_or(&Value::Null);
    let rt = |key: &str| rich_plain(body.get(key).unwrap_or(&Value::Null)).unwrap_or_default();
    let prefixed = |prefix: &str| {
        let t = rt("rich_text");
        (!t.trim().is_empty()).then(|| format!("{prefix}{t}"))
    };
    let text = match kind {
        "paragraph" | "quote" | "toggle" | "callout" | "code" | "unsupported" => rt("rich_text"),
        "heading_1" => prefixed("# ")?,
        "heading_2" => prefixed("## ")?,
        "heading_3" => prefixed("### ")?,
        "heading_4" => prefixed("#### ")?,
        "bulleted_list_item" => prefixed("- ")?,
        "numbered_list_item" => prefixed("1. ")?,
        "to_do" => {
            let done = body
                .get("checked")
                .and_then(|c| c.as_bool())
                .unwrap_or(false);
            prefixed(if done { "[x] " } else { "[ ] " })?
        }
        "equation" => body.get("expression")?.as_str()?.to_string(),
        "child_page" | "child_database" => body.get("title")?.as_str()?.to_string(),
        "table_row" => body
            .get("cells")?
            .as_array()?
            .iter()
            .map(|c| rich_plain(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" | "),
        "bookmark" | "embed" | "link_preview" => {
            let url = body
                .get("url")
                .and_then(|u| u.as_str())
                .unwrap_or("")
                .trim();
            let caption = rt("caption");
            match (caption.trim().is_empty(), url.is_empty()) {
                (true, _) => url.to_string(),
                (false, true) => caption,
                (false, false) => format!("{caption} ({url})"),
            }
        }
        "link_to_page" => {
            let t = body.get("type")?.as_str()?;
            body.get(t)?.as_str()?.to_string()
        }
        "image" | "video" | "file" | "pdf" | "audio" => rt("caption"),
        _ => return None,
    };
    let text = if text.contains('\0') {
        text.replace('\0', "")
    } else {
        text
    };
    (!text.trim().is_empty()).then_some(text)
}

/// Whether the reader should descend into this block's children. Child pages are only named: their
/// content belongs to the child page itself. The deprecated `template` block's children are the
/// template's, not the page's.
pub fn descend(block: &Value) -> bool {
    let has = block
        .get("has_children")
        .and_then(|h| h.as_bool())
        .unwrap_or(false);
    let kind = block.get("type").and_then(|t| t.as_str()).unwrap_or("");
    has && !matches!(kind, "child_page" | "child_database" | "template")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Notion id for hand-written pages.
    const ID: &str = "c1000000-0000-4000-8000-000000000001";

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
        let bad = json!({"id":ID,"properties":{"N":{"id":"a","type":"number","number":"seven"}}});
        assert!(parse_page(&bad).unwrap_err().contains("number"));
        let bad = json!({"id":ID,"properties":"garbage"});
        assert!(parse_page(&bad).is_err());
        let bad = json!({"properties":{}});
        assert!(parse_page(&bad).is_err());
    }

    #[test]
    fn unknown_types_are_kept_raw() {
        let p = json!({"id":ID,"properties":{"Where":{"id":"p","type":"place","place":{"lat":1.5,"lon":2.0,"name":"Home"}},
            "Future":{"id":"f","type":"hologram","hologram":{"beam":3}}}});
        let page = parse_page(&p).unwrap();
        assert_eq!(page.properties["Where"]["value"]["name"], "Home");
        assert_eq!(page.properties["Future"]["value"]["beam"], 3);
    }

    #[test]
    fn relation_with_more_is_marked_and_completed() {
        let rel: Vec<Value> = (0..25).map(|i| json!({"id": format!("r{i}")})).collect();
        let p = json!({"id":ID,"properties":{"Links":{"id":"L%3A","type":"relation","relation":rel,"has_more":true}}});
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
        let p = json!({"id":ID,"last_edited_time":"2026-01-01T00:00:00.000Z","url":"https://n/x","properties":{"Name":{"id":"title","type":"title","title":[{"plain_text":"A"}]}}});
        let page = parse_page(&p).unwrap();
        let before = json!({"p": page.properties, "t": page.in_trash, "e": page.last_edited_time, "u": page.url});
        let digest = Sha256::digest(before.to_string().as_bytes());
        let want: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(page_hash(&page), want);
    }

    #[test]
    fn hash_changes_with_values_and_edit_time_only() {
        let p = json!({"id":ID,"last_edited_time":"2026-01-01T00:00:00.000Z","properties":{"Name":{"id":"title","type":"title","title":[{"plain_text":"A"}]}}});
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

    fn real(name: &str) -> Value {
        fixture(&format!("real/{name}"))
    }

    const PAGE_A: &str = "notion_ruby_mapping__page-retrieve-21-types-hosted-file__2025-09-03.json";
    const QUERY_B: &str =
        "notion_ruby_mapping__data-source-query-same-page-8-months-later__2025-09-03.json";
    const SCHEMA: &str = "notion_ruby_mapping__data-source-retrieve-now-formula__2025-09-03.json";
    const FILES: &str = "File&MediaTitle";

    fn schema_volatile() -> Vec<String> {
        volatile_properties(real(SCHEMA)["properties"].as_object().unwrap())
    }

    #[test]
    fn hosted_file_keeps_expiry_time_and_hash_survives_resigning() {
        let a = real(PAGE_A);
        let b = real(QUERY_B)["results"][0].clone();
        let page_a = parse_page(&a).unwrap();
        let file = &page_a.properties[FILES]["value"][0];
        assert_eq!(file["name"], "nr.png");
        assert_eq!(file["expiry_time"], "2025-08-31T11:55:10.733Z");
        assert!(file["url"]
            .as_str()
            .unwrap()
            .contains("X-Amz-Date=20250831T105510Z"));
        // External files keep {name, url} only.
        let ext = parse_page(&fixture("page-all-property-types-2025-09-03.json")).unwrap();
        assert_eq!(
            ext.properties["Files"]["value"],
            json!([{"name": "My File", "url": "https://www.google.de/robots.txt"}])
        );

        // B' = A, re-signed as B was 8 months later, with B's now() formula value.
        let mut resigned = a.clone();
        resigned["properties"][FILES] = b["properties"][FILES].clone();
        let only_signature = parse_page(&resigned).unwrap();
        assert_ne!(page_a.properties, only_signature.properties);
        assert_eq!(page_hash(&page_a), page_hash(&only_signature));
        resigned["properties"]["FormulaTitle"] = b["properties"]["FormulaTitle"].clone();
        let page_b = parse_page(&resigned).unwrap();
        let volatile = schema_volatile();
        assert_ne!(
            page_hash(&page_a),
            page_hash(&page_b),
            "now() counts unless named"
        );
        assert_eq!(
            page_hash_with(&page_a, &volatile),
            page_hash_with(&page_b, &volatile)
        );
        // The real B also has a renamed database in a mention: a real change.
        let real_b = parse_page(&b).unwrap();
        assert_ne!(
            page_hash_with(&page_a, &volatile),
            page_hash_with(&real_b, &volatile)
        );

        // Another file is a change: other name, other path.
        let mut renamed = resigned.clone();
        renamed["properties"][FILES]["files"][0]["name"] = json!("other.png");
        let renamed = parse_page(&renamed).unwrap();
        assert_ne!(
            page_hash_with(&page_b, &volatile),
            page_hash_with(&renamed, &volatile)
        );
        let mut moved = resigned.clone();
        let url = b["properties"][FILES]["files"][0]["file"]["url"]
            .as_str()
            .unwrap()
            .replace("/nr.png?", "/other.png?");
        moved["properties"][FILES]["files"][0]["file"]["url"] = json!(url);
        let moved = parse_page(&moved).unwrap();
        assert_ne!(
            page_hash_with(&page_b, &volatile),
            page_hash_with(&moved, &volatile)
        );
    }

    #[test]
    fn presigned_urls_count_by_identity_wherever_they_are() {
        let signed = |date: &str, name: &str| {
            format!("https://prod-files-secure.s3.us-west-2.amazonaws.com/w/f/{name}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={date}&X-Amz-Expires=3600&X-Amz-Signature=s{date}")
        };
        let page = |date: &str, name: &str, expiry: &str| {
            parse_page(&json!({"id": ID, "last_edited_time": "2026-01-01T00:00:00.000Z", "properties": {
                "Roll": {"id": "r", "type": "rollup", "rollup": {"type": "array", "function": "show_original", "array": [
                    {"type": "files", "files": [{"name": name, "type": "file", "file": {"url": signed(date, name), "expiry_time": expiry}}]}]}},
                "Link": {"id": "f", "type": "formula", "formula": {"type": "string", "string": signed(date, name)}},
                "Raw": {"id": "x", "type": "hologram", "hologram": {"src": {"url": signed(date, name), "expiry_time": expiry}}}}}))
            .unwrap()
        };
        let a = page("20250831T105510Z", "a.png", "2025-08-31T11:55:10.733Z");
        let b = page("20260504T121335Z", "a.png", "2026-05-04T13:13:35.461Z");
        let c = page("20260504T121335Z", "c.png", "2026-05-04T13:13:35.461Z");
        assert_eq!(page_hash(&a), page_hash(&b));
        assert_ne!(page_hash(&a), page_hash(&c));
        // Query strings of other URLs still count.
        let q = |v: &str| {
            parse_page(&json!({"id": ID, "properties": {
                "U": {"id": "u", "type": "url", "url": format!("https://example.com/?page={v}")}}}))
            .unwrap()
        };
        assert_ne!(page_hash(&q("1")), page_hash(&q("2")));
        // A page without hosted files hashes its properties as they are stored.
        let plain = parse_page(&fixture("page-all-property-types-2025-09-03.json")).unwrap();
        let before = json!({"p": plain.properties, "t": plain.in_trash, "e": plain.last_edited_time, "u": plain.url});
        let digest = Sha256::digest(before.to_string().as_bytes());
        let want: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(page_hash(&plain), want);
    }

    #[test]
    fn volatile_formulas_are_found_in_the_schema() {
        assert_eq!(schema_volatile(), vec!["FormulaTitle".to_string()]);
        let f =
            |id: &str, e: &str| json!({"id": id, "type": "formula", "formula": {"expression": e}});
        let schema = json!({
            "Clock": f("c%3A1", "dateAdd(NOW ( ), 1, \"days\")"),
            "Today": f("t", "today()"),
            "Old": f("o", "prop(\"Clock\") > prop(\"Due\")"),
            "New": f("n", "{{notion:block_property:c%3A1:00000000-0000-0000-0000-000000000000:8994905a-074a-415f-9bcf-d1f8b4fa38e4}} + 1"),
            "Decoded": f("d", "{{notion:block_property:c:1:db:page}}"),
            "Chain": f("ch", "if(prop(\"New\"), 1, 2)"),
            "Plain": f("p", "prop(\"Due\") + 1"),
            "Snow": f("s", "snow() + prop(\"Nowhere\")"),
            "Due": {"id": "due", "type": "date", "date": {}},
            "Now": {"id": "w", "type": "rich_text", "rich_text": {}},
        });
        let mut got = volatile_properties(schema.as_object().unwrap());
        got.sort();
        assert_eq!(got, ["Chain", "Clock", "New", "Old", "Today"]);
    }

    #[test]
    fn page_hash_with_leaves_out_only_the_named_values() {
        let p = |clock: &str, n: i64| {
            parse_page(&json!({"id": ID, "last_edited_time": "2026-01-01T00:00:00.000Z", "properties": {
                "Clock": {"id": "c", "type": "formula", "formula": {"type": "date", "date": {"start": clock}}},
                "Sum": {"id": "s", "type": "formula", "formula": {"type": "number", "number": n}}}}))
            .unwrap()
        };
        let v = vec!["Clock".to_string()];
        let a = p("2026-01-01T10:00:00.000+00:00", 1);
        assert_eq!(page_hash(&a), page_hash_with(&a, &[]));
        assert_eq!(
            page_hash_with(&a, &v),
            page_hash_with(&p("2026-05-01T10:00:00.000+00:00", 1), &v)
        );
        assert_ne!(
            page_hash_with(&a, &v),
            page_hash_with(&p("2026-01-01T10:00:00.000+00:00", 2), &v)
        );
        assert_ne!(page_hash(&a), page_hash_with(&a, &v));
    }

    #[test]
    fn what_postgres_would_reject_fails_the_page() {
        let page = |extra: Value| {
            let mut p = json!({"id": ID, "properties": {"Name": {"id": "title", "type": "title", "title": [{"plain_text": "A"}]}}});
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            parse_page(&p)
        };
        for bad in [
            "2026-13-45T99:99:00.000Z",
            "2026-13-01T00:00:00.000Z",
            "2026-01-45T00:00:00.000Z",
            "2026-01-01T99:00:00.000Z",
            "0000-01-01T00:00:00.000Z",
            "300000-01-01T00:00:00.000Z",
            "2016-12-31T23:59:60.000Z",
            "2026-01-01T00:00:00.000",
            "2026-01-01T00:00:00.000+16:00",
            "yesterday",
        ] {
            for key in ["created_time", "last_edited_time"] {
                let e = page(json!({key: bad})).unwrap_err();
                assert!(e.contains(key) && e.contains(ID), "{bad}: {e}");
            }
        }
        assert!(page(json!({"last_edited_time": 1767225600})).is_err());
        for ok in [
            "2026-01-01T00:00:00.000Z",
            "2026-01-01T00:00:00+00:00",
            "2026-01-01T00:00:00.123456-15:59",
        ] {
            assert!(
                page(json!({"created_time": ok, "last_edited_time": ok})).is_ok(),
                "{ok}"
            );
        }
        for id in [
            "x",
            "c1000000-0000-4000-8000-00000000000",
            "c1000000-0000-4000-8000-0000000000012",
            "g1000000-0000-4000-8000-000000000001",
        ] {
            assert!(
                page(json!({"id": id}))
                    .unwrap_err()
                    .contains("not a Notion id"),
                "{id}"
            );
        }
        assert!(page(json!({"id": 7})).is_err());
        assert!(page(json!({"id": "C10000000000400080000000000000FF"})).is_ok());
        for title in [
            json!(5),
            json!("text"),
            json!({"plain_text": "A"}),
            json!(true),
        ] {
            let e = page(
                json!({"properties": {"Name": {"id": "title", "type": "title", "title": title}}}),
            )
            .unwrap_err();
            assert!(e.contains("Name"), "{e}");
        }
    }

    #[test]
    fn nul_characters_are_removed_from_what_is_stored() {
        let p = parse_page(&json!({"id": ID, "url": "https://n/\u{0}x", "properties": {
            "Na\u{0}me": {"id": "title", "type": "title", "title": [{"plain_text": "A\u{0}B"}]},
            "Text": {"id": "t", "type": "rich_text", "rich_text": [{"text": {"content": "\u{0}c"}}]},
            "Raw": {"id": "r\u{0}", "type": "hologram", "hologram": {"k\u{0}": ["v\u{0}"]}}}}))
        .unwrap();
        assert_eq!(p.title, "AB");
        assert_eq!(p.url.as_deref(), Some("https://n/x"));
        assert_eq!(p.properties["Name"]["value"], "AB");
        assert_eq!(p.properties["Text"]["value"], "c");
        assert_eq!(p.properties["Raw"]["id"], "r");
        assert_eq!(p.properties["Raw"]["value"], json!({"k": ["v"]}));
        let block =
            json!({"type": "paragraph", "paragraph": {"rich_text": [{"plain_text": "a\u{0}b"}]}});
        assert_eq!(block_text(&block).as_deref(), Some("ab"));
    }

    #[test]
    fn only_cut_relations_and_full_people_are_truncated() {
        let long = parse_page(&real(
            "ultimate-notion__page-100-rich-text-items-with-mentions__2025-09-03.json",
        ))
        .unwrap();
        assert!(long.truncated.is_empty(), "{:?}", long.truncated);
        let raw = real("ultimate-notion__page-100-rich-text-items-with-mentions__2025-09-03.json");
        let segments = raw["properties"]["Name"]["title"].as_array().unwrap();
        assert_eq!(segments.len(), 100);
        let whole: String = segments
            .iter()
            .map(|s| s["plain_text"].as_str().unwrap())
            .collect();
        assert_eq!(long.title, whole);

        let mut page = parse_page(&real(
            "ultimate-notion__page-relation-25-has_more__2025-09-03.json",
        ))
        .unwrap();
        assert_eq!(
            page.truncated,
            vec![(
                "Items Purchased".to_string(),
                "%3Djxv".to_string(),
                "relation".to_string()
            )]
        );
        let list = real("ultimate-notion__property-item-relation-list-complete__2025-09-03.json");
        complete_property_with(
            &mut page,
            "Items Purchased",
            "relation",
            list["results"].as_array().unwrap(),
            Some(&list["property_item"]),
        )
        .unwrap();
        let ids = page.properties["Items Purchased"]["value"]
            .as_array()
            .unwrap();
        assert_eq!(ids.len(), 30);
        assert_eq!(ids[0], "38c9ce7b-60a4-8138-b1f5-dafa86dfa1cc");
        assert!(ids.iter().all(|i| is_notion_id(i.as_str().unwrap())));

        let rel: Vec<Value> = (0..25).map(|i| json!({"id": format!("r{i}")})).collect();
        let people: Vec<Value> = (0..25).map(|i| json!({"id": format!("u{i}")})).collect();
        let p = parse_page(&json!({"id": ID, "properties": {
            "Rel25": {"id": "a", "type": "relation", "relation": rel, "has_more": false},
            "People25": {"id": "b", "type": "people", "people": people},
            "People24": {"id": "c", "type": "people", "people": people[..24]},
            "Text": {"id": "d", "type": "rich_text", "rich_text": people}}}))
        .unwrap();
        let names: Vec<&str> = p.truncated.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(names, ["People25"]);
    }

    #[test]
    fn a_rollup_is_completed_from_property_item() {
        let mut page = parse_page(&json!({"id": ID, "properties": {
            "Count": {"id": "WYH%3A", "type": "rollup", "rollup": {"type": "incomplete", "incomplete": {}, "function": "count"}}}}))
        .unwrap();
        assert_eq!(page.truncated[0].2, "rollup");
        let list = real("ultimate-notion__property-item-rollup-empty-results__2025-09-03.json");
        let results = list["results"].as_array().unwrap();
        assert!(results.is_empty());
        complete_property_with(
            &mut page,
            "Count",
            "rollup",
            results,
            Some(&list["property_item"]),
        )
        .unwrap();
        assert_eq!(page.properties["Count"]["value"], json!(0));
        // Without property_item there is nothing to complete from: left as it was.
        let mut same = page.clone();
        complete_property(&mut same, "Count", "rollup", &[]).unwrap();
        assert_eq!(same, page);
        // A property_item that has no rollup is an error.
        assert!(complete_property_with(
            &mut page,
            "Count",
            "rollup",
            &[],
            Some(&json!({"type": "rollup"}))
        )
        .is_err());
        // An array rollup with its items in results.
        let items = vec![json!({"object": "property_item", "type": "number", "number": 3})];
        let pi = json!({"type": "rollup", "rollup": {"type": "array", "array": [], "function": "show_original"}});
        complete_property_with(&mut page, "Count", "rollup", &items, Some(&pi)).unwrap();
        assert_eq!(page.properties["Count"]["value"], json!([3]));
    }

    #[test]
    fn unique_id_is_always_a_string() {
        let v = |u: Value| property_value("unique_id", &u);
        assert_eq!(
            v(json!({"prefix": "ST", "number": 12})).unwrap(),
            json!("ST-12")
        );
        assert_eq!(v(json!({"prefix": null, "number": 7})).unwrap(), json!("7"));
        assert_eq!(v(json!({"number": 7})).unwrap(), json!("7"));
        assert_eq!(
            v(json!({"prefix": "ST", "number": null})).unwrap(),
            Value::Null
        );
        assert!(v(json!({"prefix": "ST", "number": "7"})).is_err());
        assert!(v(json!({"prefix": 3, "number": 7})).is_err());
        let p = parse_page(&fixture("page-all-property-types-2025-09-03.json")).unwrap();
        assert_eq!(p.properties["ID"]["value"], "ALLCOLS881-2");
    }

    #[test]
    fn recorded_36_blocks_render_in_order() {
        let list = real("ultimate-notion__block-children-36-blocks-unsupported__2025-09-03.json");
        let blocks = list["results"].as_array().unwrap();
        assert_eq!(blocks.len(), 36);
        let texts: Vec<String> = blocks.iter().filter_map(block_text).collect();
        let want = [
            "# Headline 1",
            "## Headline 2",
            "### Headline 3",
            "# Toggle Headline 1",
            "## Toggle Headline 2",
            "### Toggle Headline 3",
            "- Item 1",
            "- Item 2\nwith a new line",
            "- Item 3",
            "[ ] ToDo1",
            "[ ] ToDo2\nwith a new line",
            "[x] Checked ToDo3",
            "1. First item",
            "1. Second item\nwith a new line",
            "1. Third item",
            "This is a quote\nwith a new line",
            "Callout!",
            "This is an emoji! \u{1F600}\u{1F600}",
            "|x|=\\begin{cases}x, &\\quad x \\geq 0\\\\-x, &\\quad x < 0\\end{cases}",
            "# Python Code\nimport ultimate_notion",
            "Caption (https://picsum.photos/300/300)",
            "## Unsupported Stuff in Markdown",
            "Markdown SubPage Test",
            "00000000-0000-4000-8000-000000000005",
        ];
        assert_eq!(texts, want);
        let down: Vec<&str> = blocks
            .iter()
            .filter(|b| descend(b))
            .map(|b| b["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            down,
            ["table", "column_list", "synced_block", "synced_block"]
        );
        // Unsupported blocks carry only a block_type: no text. With text, the text.
        let unsupported: Vec<&Value> = blocks
            .iter()
            .filter(|b| b["type"] == "unsupported")
            .collect();
        assert_eq!(unsupported.len(), 2);
        assert_eq!(
            unsupported[0]["unsupported"],
            json!({"block_type": "button"})
        );
        let with_text = json!({"type": "unsupported", "unsupported": {"block_type": "x", "rich_text": [{"plain_text": "Press"}]}});
        assert_eq!(block_text(&with_text).as_deref(), Some("Press"));
    }

    #[test]
    fn heading_4_links_templates_and_empty_to_dos() {
        let h4 = real("notion_ruby_mapping__block-heading_4__2026-03-11.json");
        assert_eq!(block_text(&h4).as_deref(), Some("#### Heading 4"));
        let b = |kind: &str, body: Value| json!({"type": kind, kind: body, "has_children": true});
        assert_eq!(
            block_text(&b(
                "link_preview",
                json!({"url": "https://github.com/a/b/pull/1"})
            ))
            .as_deref(),
            Some("https://github.com/a/b/pull/1")
        );
        assert_eq!(
            block_text(&b(
                "bookmark",
                json!({"caption": [], "url": "https://e.com"})
            ))
            .as_deref(),
            Some("https://e.com")
        );
        assert_eq!(
            block_text(&b(
                "bookmark",
                json!({"caption": [{"plain_text": "Docs"}], "url": "https://e.com"})
            ))
            .as_deref(),
            Some("Docs (https://e.com)")
        );
        assert_eq!(
            block_text(&b("bookmark", json!({"caption": [], "url": ""}))),
            None
        );
        assert_eq!(
            block_text(&b(
                "link_to_page",
                json!({"type": "database_id", "database_id": "d1"})
            ))
            .as_deref(),
            Some("d1")
        );
        assert_eq!(
            block_text(&b("to_do", json!({"rich_text": [], "checked": false}))),
            None
        );
        assert_eq!(
            block_text(&b(
                "to_do",
                json!({"rich_text": [{"plain_text": " "}], "checked": true})
            )),
            None
        );
        assert_eq!(block_text(&b("heading_2", json!({"rich_text": []}))), None);
        let template = b(
            "template",
            json!({"rich_text": [{"plain_text": "Add task"}]}),
        );
        assert!(!descend(&template));
        assert!(descend(&b("toggle", json!({"rich_text": []}))));
    }

    /// Every recorded page, query, property list and block list in tests/fixtures/real parses.
    #[test]
    fn every_real_fixture_parses() {
        let dir = format!("{}/tests/fixtures/real", env!("CARGO_MANIFEST_DIR"));
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let v = real(&name);
            let results = v["results"].as_array();
            match (v["object"].as_str(), v["type"].as_str()) {
                (Some("page"), _) => {
                    let p = parse_page(&v).unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(!p.properties.is_empty(), "{name}");
                    let _ = page_hash(&p);
                }
                (Some("list"), Some("page_or_data_source" | "page_or_database")) => {
                    for r in results.unwrap() {
                        parse_page(r).unwrap_or_else(|e| panic!("{name}: {e}"));
                    }
                }
                (Some("list"), Some("block")) => {
                    let blocks = results.unwrap();
                    let texts: Vec<String> = blocks.iter().filter_map(block_text).collect();
                    // In order: each text is found at or after the previous one's block.
                    let mut at = 0;
                    for t in &texts {
                        let i = blocks[at..]
                            .iter()
                            .position(|b| block_text(b).as_ref() == Some(t))
                            .unwrap();
                        at += i + 1;
                    }
                    blocks.iter().for_each(|b| {
                        let _ = descend(b);
                    });
                }
                (Some("block"), _) => {
                    assert!(block_text(&v).is_some(), "{name}");
                }
                (Some("list"), Some("property_item")) => {
                    let kind = v["property_item"]["type"].as_str().unwrap().to_string();
                    let mut p = parse_page(&json!({"id": ID, "properties": {"P": {"id": "p", "type": kind, kind.as_str(): null}}})).unwrap();
                    complete_property_with(
                        &mut p,
                        "P",
                        &kind,
                        results.unwrap(),
                        Some(&v["property_item"]),
                    )
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(!p.properties["P"]["value"].is_null(), "{name}");
                }
                (Some("data_source"), _) => {
                    let _ = volatile_properties(v["properties"].as_object().unwrap());
                }
                _ => continue,
            }
            seen += 1;
        }
        assert!(seen >= 10, "{seen} fixtures read from {dir}");
    }
}
