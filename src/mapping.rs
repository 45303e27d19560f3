//! Sync into a table of the user's own: which Notion value goes into which column, converted to
//! the column's real type. Pure Rust (unit-tested without Postgres); storage/mapped.rs writes it.
//!
//! A map is `{"column": "source"}` where a source is a Notion property name, a property id, or a
//! special: `@id @title @slug @content @url @created_time @last_edited_time @in_trash
//! @properties @user_id`.

use crate::notion::model::{self, Page};
use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Special {
    Id,
    Title,
    Slug,
    Content,
    Url,
    CreatedTime,
    LastEditedTime,
    InTrash,
    Properties,
    UserId,
}

pub const SPECIALS: [(&str, Special); 10] = [
    ("@id", Special::Id),
    ("@title", Special::Title),
    ("@slug", Special::Slug),
    ("@content", Special::Content),
    ("@url", Special::Url),
    ("@created_time", Special::CreatedTime),
    ("@last_edited_time", Special::LastEditedTime),
    ("@in_trash", Special::InTrash),
    ("@properties", Special::Properties),
    ("@user_id", Special::UserId),
];

#[derive(Clone, PartialEq, Debug)]
pub enum Source {
    Special(Special),
    /// A property name or id, as written in the map.
    Property(String),
}

impl Source {
    pub fn parse(s: &str) -> Result<Source, String> {
        if s.starts_with('@') {
            return SPECIALS
                .iter()
                .find(|(n, _)| *n == s)
                .map(|(_, sp)| Source::Special(*sp))
                .ok_or_else(|| {
                    let names: Vec<&str> = SPECIALS.iter().map(|(n, _)| *n).collect();
                    format!("unknown special {s:?}: use one of {}", names.join(", "))
                });
        }
        if s.trim().is_empty() {
            return Err("a property name must not be empty".into());
        }
        Ok(Source::Property(s.to_string()))
    }
}

/// What a column can take, from its base type in pg_type.
#[derive(Clone, PartialEq, Debug)]
pub enum Kind {
    /// text, varchar(n), char(n), citext; `max` characters when the type has a length.
    Text(Option<usize>),
    Int(i64, i64),
    Number,
    Bool,
    Date,
    /// timestamptz (true) or timestamp without time zone (false).
    Timestamp(bool),
    Json,
    Uuid,
    TextArray(Option<usize>),
    UuidArray,
    /// Anything else (an enum, a domain over an unknown type): the text form, Postgres casts.
    Other(bool),
}

impl Kind {
    /// `base`: the base type's name (domains resolved); `elem`: the element type of an array;
    /// `typmod`: the column's (varchar(n) has n + 4).
    pub fn from_pg(base: &str, elem: Option<&str>, typmod: i32) -> Kind {
        let len = || (typmod > 4).then(|| (typmod - 4) as usize);
        match (base, elem) {
            ("text" | "varchar" | "bpchar" | "name" | "citext", _) => Kind::Text(len()),
            ("int2", _) => Kind::Int(i16::MIN as i64, i16::MAX as i64),
            ("int4", _) => Kind::Int(i32::MIN as i64, i32::MAX as i64),
            ("int8", _) => Kind::Int(i64::MIN, i64::MAX),
            ("numeric" | "float4" | "float8", _) => Kind::Number,
            ("bool", _) => Kind::Bool,
            ("date", _) => Kind::Date,
            ("timestamptz", _) => Kind::Timestamp(true),
            ("timestamp", _) => Kind::Timestamp(false),
            ("json" | "jsonb", _) => Kind::Json,
            ("uuid", _) => Kind::Uuid,
            (_, Some("text" | "varchar" | "bpchar" | "citext")) => Kind::TextArray(len()),
            (_, Some("uuid")) => Kind::UuidArray,
            (_, Some(_)) => Kind::Other(true),
            _ => Kind::Other(false),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    /// `format_type()` of the column: the type the upsert declares.
    pub sql_type: String,
    pub kind: Kind,
    pub source: Source,
}

/// A registered mapping, checked against the table when a run starts.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// Schema-qualified, quoted as `regclass::text` gives it.
    pub table: String,
    pub columns: Vec<Column>,
    /// Index in `columns` of the `@id` column (the conflict key).
    pub id_col: usize,
    /// Zone of date-only values written into timestamptz columns (the registration's time zone).
    pub tz: Tz,
    pub searchable: bool,
    /// The role whose privileges write the table (the one that registered it).
    pub role: u32,
    /// The map as registered: part of every page's hash, so a changed map rewrites every row.
    pub raw: String,
}

impl Mapping {
    pub fn wants_content(&self) -> bool {
        self.columns
            .iter()
            .any(|c| c.source == Source::Special(Special::Content))
    }

    pub fn column_for(&self, special: Special) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.source == Source::Special(special))
    }
}

/// The property a map value names: a property name first, else a property id (ids survive renames).
pub fn find_property<'p>(page: &'p Page, wanted: &str) -> Option<(&'p str, &'p Value)> {
    find_in(&page.properties, wanted)
}

/// [`find_property`] over a map of properties as stored (`name -> {"id","type","value"}`).
pub fn find_in<'p>(
    properties: &'p serde_json::Map<String, Value>,
    wanted: &str,
) -> Option<(&'p str, &'p Value)> {
    if let Some((k, v)) = properties.get_key_value(wanted) {
        return Some((k.as_str(), v));
    }
    properties
        .iter()
        .find(|(_, v)| v.get("id").and_then(|i| i.as_str()) == Some(wanted))
        .map(|(k, v)| (k.as_str(), v))
}

/// A URL-friendly slug of a title: lowercase letters and digits (Unicode ones kept), everything
/// else one dash, no dash at either end.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in title.chars() {
        if c.is_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.extend(c.to_lowercase());
        } else {
            dash = true;
        }
    }
    out
}

/// Everything a page gives to the specials.
pub struct PageInfo<'a> {
    pub page: &'a Page,
    pub body: Option<&'a str>,
    pub user: &'a str,
}

/// The `(type, value)` of a source for one page, in the shape of a normalised property; None for
/// a property the page does not have (renamed or deleted in Notion).
pub fn source_value(source: &Source, info: &PageInfo) -> Option<(String, Value)> {
    let p = info.page;
    let s = |v: Option<&str>| {
        v.map(|t| Value::String(t.to_string()))
            .unwrap_or(Value::Null)
    };
    let (kind, value) = match source {
        Source::Property(name) => {
            let (_, prop) = find_property(p, name)?;
            let kind = prop.get("type").and_then(|t| t.as_str()).unwrap_or("");
            return Some((
                kind.to_string(),
                prop.get("value").cloned().unwrap_or(Value::Null),
            ));
        }
        Source::Special(Special::Id) => ("id", json!(p.id)),
        Source::Special(Special::Title) => ("title", json!(p.title)),
        Source::Special(Special::Slug) => ("rich_text", json!(slug(&p.title))),
        Source::Special(Special::Content) => ("rich_text", s(info.body)),
        Source::Special(Special::Url) => ("url", s(p.url.as_deref())),
        Source::Special(Special::CreatedTime) => ("created_time", s(p.created_time.as_deref())),
        Source::Special(Special::LastEditedTime) => {
            ("last_edited_time", s(p.last_edited_time.as_deref()))
        }
        Source::Special(Special::InTrash) => ("checkbox", json!(p.in_trash)),
        Source::Special(Special::Properties) => ("properties", Value::Object(p.properties.clone())),
        Source::Special(Special::UserId) => ("rich_text", json!(info.user)),
    };
    Some((kind.to_string(), value))
}

fn describe(v: &Value) -> String {
    let t = v.to_string();
    if t.chars().count() > 60 {
        format!("{}...", t.chars().take(60).collect::<String>())
    } else {
        t
    }
}

/// One item of a list value as text: names of options and users, ids of relations, URLs of files.
fn item_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(o) => {
            if let Some(start) = o.get("start").and_then(|s| s.as_str()) {
                // A date (range): ISO 8601 start or start/end.
                return Some(match o.get("end").and_then(|e| e.as_str()) {
                    Some(end) => format!("{start}/{end}"),
                    None => start.to_string(),
                });
            }
            for key in ["name", "url", "id"] {
                if let Some(t) = o.get(key).and_then(|t| t.as_str()) {
                    return Some(t.to_string());
                }
            }
            Some(v.to_string())
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().filter_map(item_text).collect();
            (!items.is_empty()).then(|| items.join(", "))
        }
    }
}

fn items(v: &Value) -> Vec<Value> {
    match v {
        Value::Null => vec![],
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

/// An id as a UUID in its dashed form, or an error naming the value.
fn uuid(v: &Value) -> Result<String, String> {
    let raw = match v {
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("id").and_then(|i| i.as_str()).unwrap_or(""),
        _ => "",
    };
    model::notion_id(raw).ok_or_else(|| format!("{} is not a UUID", describe(v)))
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// The start of a date value (`{"start","end","time_zone"}`) or a timestamp string.
fn date_start(v: &Value) -> Option<(String, Option<String>)> {
    match v {
        Value::String(s) => Some((s.clone(), None)),
        Value::Object(o) => o.get("start").and_then(|s| s.as_str()).map(|s| {
            let tz = o
                .get("time_zone")
                .and_then(|t| t.as_str())
                .map(String::from);
            (s.to_string(), tz)
        }),
        _ => None,
    }
}

/// A date or a wall time without zone (`2024-03-15`, `2024-03-15T09:30:00`), checked to be one
/// Postgres takes (see `model::check_wall_time`); None when `start` has neither form.
fn wall_time(start: &str) -> Option<Result<NaiveDateTime, String>> {
    let parsed = match NaiveDate::parse_from_str(start, "%Y-%m-%d") {
        Ok(d) => d.and_hms_opt(0, 0, 0).unwrap_or_default(),
        Err(_) => NaiveDateTime::parse_from_str(start, "%Y-%m-%dT%H:%M:%S%.f").ok()?,
    };
    Some(model::check_wall_time(&parsed).map(|_| parsed))
}

/// A timestamp for a timestamptz column: offsets kept, a wall time read in its own time zone or
/// the registration's, a date alone at midnight there. Anything Postgres would reject (month 13,
/// year 0, a leap second, an offset of 16 h) is an error here, for this page only.
fn instant(start: &str, tz_name: Option<&str>, default_tz: Tz) -> Result<String, String> {
    let zoned = model::check_timestamp(start);
    if zoned.is_ok() {
        return Ok(start.to_string());
    }
    let tz = tz_name
        .and_then(|t| t.parse::<Tz>().ok())
        .unwrap_or(default_tz);
    let naive = match wall_time(start) {
        Some(w) => w.map_err(|e| format!("{start:?}: {e}"))?,
        None => {
            return Err(zoned
                .err()
                .unwrap_or_else(|| format!("{start:?} is not a date")))
        }
    };
    let t = tz
        .from_local_datetime(&naive)
        .earliest()
        .ok_or_else(|| format!("{start:?} does not exist in {tz}"))?;
    let t = t.to_rfc3339();
    model::check_timestamp(&t).map_err(|e| format!("{start:?} in {tz}: {e}"))?;
    Ok(t)
}

/// The calendar day of a date value for a date column: a date as written, the date part of a
/// timestamp as written (in its own zone), after checking the whole value is a valid one.
fn day(start: &str) -> Result<String, String> {
    let d = match model::check_timestamp(start) {
        Ok(t) => t.date_naive(),
        Err(zoned) => match wall_time(start) {
            Some(w) => w.map_err(|e| format!("{start:?}: {e}"))?.date(),
            None => return Err(zoned),
        },
    };
    Ok(d.format("%Y-%m-%d").to_string())
}

/// The number of a `unique_id` (`"PREFIX-N"` or `"N"`): the digits after the last `-`.
fn unique_number(v: &Value) -> Option<Value> {
    let s = v.as_str()?;
    let digits = s.rsplit('-').next()?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse::<u64>().ok().map(Value::from))
        .flatten()
}

/// Converts one value (a normalised property `kind` + plain `value`) for a column. `Err` says why
/// this page cannot go into this column; the page is then recorded and skipped. A `unique_id`
/// (stored as the string `"PREFIX-N"` or `"N"`) goes into a number column as N, into text as the
/// string. Dates and timestamps are checked to be ones Postgres takes before they reach SQL.
pub fn convert(kind: &str, value: &Value, col: &Column, tz: Tz) -> Result<Value, String> {
    let id_number;
    let value = match (kind, &col.kind) {
        ("unique_id", Kind::Int(..) | Kind::Number) if value.is_string() => {
            id_number = unique_number(value).ok_or_else(|| {
                format!(
                    "unique_id {} has no number for column {} {}",
                    describe(value),
                    col.name,
                    col.sql_type
                )
            })?;
            &id_number
        }
        _ => value,
    };
    // Files go into text as their URLs (their names are often just "file.pdf").
    let files;
    let value = if kind == "files" {
        files = Value::Array(
            items(value)
                .iter()
                .map(|f| {
                    f.get("url")
                        .or_else(|| f.get("name"))
                        .cloned()
                        .unwrap_or(Value::Null)
                })
                .collect(),
        );
        if matches!(col.kind, Kind::Json) {
            value
        } else {
            &files
        }
    } else {
        value
    };
    let what = || {
        format!(
            "{} ({kind}) for column {} {}",
            describe(value),
            col.name,
            col.sql_type
        )
    };
    let empty_text = |v: &Value| matches!(v, Value::String(s) if s.is_empty());
    if value.is_null() || (empty_text(value) && !matches!(col.kind, Kind::Json)) {
        return Ok(Value::Null);
    }
    Ok(match &col.kind {
        Kind::Text(max) => match item_text(value) {
            None => Value::Null,
            Some(t) => {
                let n = t.chars().count();
                if let Some(m) = max.filter(|m| n > *m) {
                    return Err(format!(
                        "{n} characters do not fit column {} {} (at most {m}): {}",
                        col.name,
                        col.sql_type,
                        describe(value)
                    ));
                }
                Value::String(t)
            }
        },
        Kind::Int(lo, hi) => {
            let n = number(value).ok_or_else(|| format!("not a number: {}", what()))?;
            if n.fract() != 0.0 || n < *lo as f64 || n > *hi as f64 {
                return Err(format!("not an integer in range: {}", what()));
            }
            json!(n as i64)
        }
        Kind::Number => match value {
            Value::Number(_) => value.clone(),
            _ => json!(number(value).ok_or_else(|| format!("not a number: {}", what()))?),
        },
        Kind::Bool => match value {
            Value::Bool(_) => value.clone(),
            Value::String(s) if matches!(s.as_str(), "true" | "false") => json!(s == "true"),
            _ => return Err(format!("not a checkbox: {}", what())),
        },
        Kind::Date => {
            let (start, _) = date_start(value).ok_or_else(|| format!("not a date: {}", what()))?;
            json!(day(&start).map_err(|e| format!("not a date ({e}): {}", what()))?)
        }
        Kind::Timestamp(with_tz) => {
            let (start, zone) =
                date_start(value).ok_or_else(|| format!("not a date: {}", what()))?;
            let t = instant(&start, zone.as_deref(), tz).map_err(|e| format!("{e}: {}", what()))?;
            if *with_tz {
                json!(t)
            } else {
                // Wall time as Notion shows it: the start without its offset.
                let local = chrono::DateTime::parse_from_rfc3339(&t)
                    .map(|d| d.naive_local().format("%Y-%m-%dT%H:%M:%S%.f").to_string())
                    .unwrap_or(t);
                json!(local)
            }
        }
        Kind::Json => value.clone(),
        Kind::Uuid => match items(value).as_slice() {
            [one] => json!(uuid(one).map_err(|e| format!("{e}: {}", what()))?),
            _ => return Err(format!("not exactly one id: {}", what())),
        },
        Kind::UuidArray => Value::Array(
            items(value)
                .iter()
                .map(|v| uuid(v).map(Value::String))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{e}: {}", what()))?,
        ),
        Kind::TextArray(max) => {
            let list: Vec<String> = items(value).iter().filter_map(item_text).collect();
            if let Some(m) = max {
                if let Some(long) = list.iter().find(|t| t.chars().count() > *m) {
                    return Err(format!(
                        "{long:?} does not fit column {} {} (at most {m} characters)",
                        col.name, col.sql_type
                    ));
                }
            }
            json!(list)
        }
        Kind::Other(true) => json!(items(value)
            .iter()
            .filter_map(item_text)
            .collect::<Vec<_>>()),
        Kind::Other(false) => match item_text(value) {
            Some(t) => Value::String(t),
            None => Value::Null,
        },
    })
}

/// The stored hash of a page in a mapped table: the page's, plus the table, the map, whether it is
/// searchable, the time zone and the column types, so a changed registration or an `ALTER COLUMN
/// ... TYPE` rewrites every row.
pub fn row_hash(page_hash: &str, m: &Mapping) -> String {
    use sha2::{Digest, Sha256};
    let types: Vec<&str> = m.columns.iter().map(|c| c.sql_type.as_str()).collect();
    let key = format!(
        "{page_hash}\n{}\n{}\n{}\n{}\n{}",
        m.table,
        m.raw,
        m.searchable,
        m.tz,
        types.join(",")
    );
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `search_notion_content` finds a page of a searchable mapped table by (after its title):
/// the text of every mapped property, then the body.
pub fn search_text(m: &Mapping, info: &PageInfo) -> String {
    let mut parts: Vec<String> = m
        .columns
        .iter()
        .filter(|c| matches!(c.source, Source::Property(_)))
        .filter_map(|c| source_value(&c.source, info))
        .filter_map(|(_, v)| item_text(&v))
        .collect();
    if let Some(b) = info.body.filter(|b| !b.trim().is_empty()) {
        parts.push(b.to_string());
    }
    parts.join("\n")
}

/// One page as a row of the mapped table (`{"column": value}`), or why it cannot be.
/// `skip`: columns left out of this run (a property gone from Notion; the body when unchanged).
pub fn row(m: &Mapping, info: &PageInfo, skip: &[usize]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (i, col) in m.columns.iter().enumerate() {
        if skip.contains(&i) {
            continue;
        }
        let v = match source_value(&col.source, info) {
            Some((kind, value)) => convert(&kind, &value, col, m.tz)?,
            None => Value::Null,
        };
        out.insert(col.name.clone(), v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notion::model::parse_page;

    fn col(kind: Kind, sql: &str) -> Column {
        Column {
            name: "c".into(),
            sql_type: sql.into(),
            kind,
            source: Source::Property("P".into()),
        }
    }

    fn conv(kind: &str, v: Value, k: Kind) -> Result<Value, String> {
        convert(kind, &v, &col(k, "t"), chrono_tz::America::New_York)
    }

    #[test]
    fn kinds_from_catalog_names() {
        assert_eq!(Kind::from_pg("varchar", None, 44), Kind::Text(Some(40)));
        assert_eq!(Kind::from_pg("text", None, -1), Kind::Text(None));
        assert_eq!(
            Kind::from_pg("_text", Some("text"), -1),
            Kind::TextArray(None)
        );
        assert_eq!(Kind::from_pg("_uuid", Some("uuid"), -1), Kind::UuidArray);
        assert_eq!(Kind::from_pg("mood", None, -1), Kind::Other(false));
        assert_eq!(
            Kind::from_pg("timestamptz", None, -1),
            Kind::Timestamp(true)
        );
    }

    #[test]
    fn specials_and_slugs() {
        assert_eq!(
            Source::parse("@slug").unwrap(),
            Source::Special(Special::Slug)
        );
        assert!(Source::parse("@sluggish").unwrap_err().contains("@content"));
        assert_eq!(slug("  Acme Bakery & Co. (NYC)  "), "acme-bakery-co-nyc");
        assert_eq!(slug("Crème Brûlée"), "crème-brûlée");
        assert_eq!(slug("!!!"), "");
    }

    #[test]
    fn every_property_type_into_text() {
        let t = Kind::Text(None);
        assert_eq!(
            conv("title", json!("Acme"), t.clone()).unwrap(),
            json!("Acme")
        );
        assert_eq!(
            conv("rich_text", json!(""), t.clone()).unwrap(),
            Value::Null
        );
        assert_eq!(
            conv("number", json!(149.5), t.clone()).unwrap(),
            json!("149.5")
        );
        assert_eq!(
            conv("select", json!("Hero"), t.clone()).unwrap(),
            json!("Hero")
        );
        assert_eq!(
            conv("multi_select", json!(["Web design", "Hosting"]), t.clone()).unwrap(),
            json!("Web design, Hosting")
        );
        assert_eq!(
            conv("multi_select", json!([]), t.clone()).unwrap(),
            Value::Null
        );
        assert_eq!(
            conv(
                "date",
                json!({"start":"2024-03-15","end":"2024-03-20"}),
                t.clone()
            )
            .unwrap(),
            json!("2024-03-15/2024-03-20")
        );
        assert_eq!(
            conv("people", json!([{"id":"u1","name":"Ada"}]), t.clone()).unwrap(),
            json!("Ada")
        );
        assert_eq!(
            conv(
                "files",
                json!([{"name":"c.pdf","url":"https://x/c.pdf"}]),
                t.clone()
            )
            .unwrap(),
            json!("https://x/c.pdf")
        );
        assert_eq!(
            conv("checkbox", json!(true), t.clone()).unwrap(),
            json!("true")
        );
        assert_eq!(
            conv("unique_id", json!("CH-7"), t.clone()).unwrap(),
            json!("CH-7")
        );
        assert_eq!(
            conv("place", json!({"lat":1.5,"lon":2}), t).unwrap(),
            json!("{\"lat\":1.5,\"lon\":2}")
        );
    }

    #[test]
    fn too_long_varchar_is_a_page_error() {
        let e = conv(
            "email",
            json!("a-very-long-address@example.com"),
            Kind::Text(Some(10)),
        )
        .unwrap_err();
        assert!(e.contains("31 characters do not fit column c"), "{e}");
        assert!(conv("email", json!("a@b.c"), Kind::Text(Some(10))).is_ok());
    }

    #[test]
    fn numbers_booleans_dates() {
        let int = Kind::Int(i32::MIN as i64, i32::MAX as i64);
        assert_eq!(conv("number", json!(80), int.clone()).unwrap(), json!(80));
        assert!(conv("number", json!(149.5), int.clone()).is_err());
        assert!(conv("number", json!(1e12), int.clone()).is_err());
        // unique_id is stored as "PREFIX-N" or "N": numbers take N, text the string.
        assert_eq!(
            conv("unique_id", json!("CH-7"), int.clone()).unwrap(),
            json!(7)
        );
        assert_eq!(
            conv("unique_id", json!("7"), Kind::Int(i64::MIN, i64::MAX)).unwrap(),
            json!(7)
        );
        assert_eq!(
            conv("unique_id", json!("A-B-12"), Kind::Number).unwrap(),
            json!(12)
        );
        assert_eq!(
            conv("unique_id", json!("7"), Kind::Text(None)).unwrap(),
            json!("7")
        );
        assert!(conv("unique_id", json!("CH-"), int.clone()).is_err());
        assert!(conv("unique_id", json!("CH-99999999999"), int.clone()).is_err());
        assert_eq!(conv("unique_id", json!(7), int).unwrap(), json!(7));
        assert_eq!(
            conv("number", json!(149.5), Kind::Number).unwrap(),
            json!(149.5)
        );
        assert_eq!(
            conv("formula", json!("12.5"), Kind::Number).unwrap(),
            json!(12.5)
        );
        assert!(conv("rich_text", json!("twelve"), Kind::Number).is_err());
        assert_eq!(
            conv("checkbox", json!(false), Kind::Bool).unwrap(),
            json!(false)
        );
        assert!(conv("number", json!(1), Kind::Bool).is_err());
        assert_eq!(
            conv(
                "date",
                json!({"start":"2024-03-15T10:00:00.000-05:00"}),
                Kind::Date
            )
            .unwrap(),
            json!("2024-03-15")
        );
        assert_eq!(
            conv(
                "created_time",
                json!("2026-01-02T10:00:00.000Z"),
                Kind::Date
            )
            .unwrap(),
            json!("2026-01-02")
        );
        // A date alone is midnight in the registration's zone (New York here).
        assert_eq!(
            conv("date", json!({"start":"2024-03-15"}), Kind::Timestamp(true)).unwrap(),
            json!("2024-03-15T00:00:00-04:00")
        );
        assert_eq!(
            conv(
                "date",
                json!({"start":"2024-01-15T09:30:00","time_zone":"Europe/Paris"}),
                Kind::Timestamp(true)
            )
            .unwrap(),
            json!("2024-01-15T09:30:00+01:00")
        );
        assert_eq!(
            conv(
                "date",
                json!({"start":"2024-03-15T10:00:00.000-05:00"}),
                Kind::Timestamp(false)
            )
            .unwrap(),
            json!("2024-03-15T10:00:00")
        );
        assert!(conv("rich_text", json!("soon"), Kind::Date).is_err());
    }

    #[test]
    fn dates_postgres_would_reject_are_page_errors() {
        let date = |start: &str| json!({"start": start, "end": null, "time_zone": null});
        for bad in [
            "2026-13-45T99:99:00.000Z",
            "2026-13-01",
            "2026-02-30",
            "2026-01-45",
            "0000-01-01",
            "0000-06-01T00:00:00.000Z",
            "300000-01-01",
            "2016-12-31T23:59:60.000Z",
            "2016-12-31T23:59:60",
            "2026-01-01T99:00:00",
            "2026-01-01T00:00:00.000+16:00",
            "2026-03-15Tnoon",
            "",
        ] {
            for k in [Kind::Date, Kind::Timestamp(true), Kind::Timestamp(false)] {
                for kind in ["date", "formula", "rollup"] {
                    let r = conv(kind, date(bad), k.clone());
                    // "" is an empty value (NULL), not an error.
                    assert!(
                        r.is_err() || (bad.is_empty() && r == Ok(Value::Null)),
                        "{bad} {k:?}: {r:?}"
                    );
                }
                assert!(conv("created_time", json!(bad), k.clone()).is_err() || bad.is_empty());
            }
        }
        assert_eq!(
            conv("date", date("2024-03-15T23:30:00.000-05:00"), Kind::Date).unwrap(),
            json!("2024-03-15")
        );
        assert_eq!(
            conv("date", date("0001-01-01"), Kind::Date).unwrap(),
            json!("0001-01-01")
        );
        assert_eq!(
            conv("date", date("9999-12-31T23:59:59Z"), Kind::Timestamp(true)).unwrap(),
            json!("9999-12-31T23:59:59Z")
        );
        // A wall time read in its zone at the ends of the years 0001..9999.
        assert_eq!(
            conv(
                "date",
                json!({"start": "9999-12-31T23:00:00", "time_zone": "Pacific/Kiritimati"}),
                Kind::Timestamp(true)
            )
            .unwrap(),
            json!("9999-12-31T23:00:00+14:00")
        );
        let early = conv(
            "date",
            json!({"start": "0001-01-01T00:00:00", "time_zone": "Pacific/Kiritimati"}),
            Kind::Timestamp(true),
        )
        .unwrap();
        assert!(
            early
                .as_str()
                .unwrap()
                .starts_with("0001-01-01T00:00:00-10:"),
            "{early}"
        );
    }

    #[test]
    fn json_arrays_and_uuids() {
        let people = json!([{"id":"6f1c2a4e-0b7d-4c1a-9e55-3a2f1d7c8b02","name":"Ada"}]);
        assert_eq!(
            conv("people", people.clone(), Kind::UuidArray).unwrap(),
            json!(["6f1c2a4e-0b7d-4c1a-9e55-3a2f1d7c8b02"])
        );
        assert_eq!(
            conv("people", people.clone(), Kind::TextArray(None)).unwrap(),
            json!(["Ada"])
        );
        assert_eq!(
            conv(
                "relation",
                json!(["6f1c2a4e0b7d4c1a9e553a2f1d7c8b02"]),
                Kind::Uuid
            )
            .unwrap(),
            json!("6f1c2a4e-0b7d-4c1a-9e55-3a2f1d7c8b02")
        );
        assert!(conv("relation", json!(["not-a-uuid"]), Kind::UuidArray).is_err());
        assert!(conv("relation", json!([]), Kind::Uuid).is_err());
        assert_eq!(
            conv("multi_select", json!(["SEO"]), Kind::TextArray(None)).unwrap(),
            json!(["SEO"])
        );
        assert_eq!(
            conv("select", json!("SEO"), Kind::TextArray(None)).unwrap(),
            json!(["SEO"])
        );
        assert_eq!(
            conv("multi_select", json!([]), Kind::TextArray(None)).unwrap(),
            json!([])
        );
        assert!(conv(
            "multi_select",
            json!(["Web design"]),
            Kind::TextArray(Some(3))
        )
        .is_err());
        assert_eq!(
            conv("date", json!({"start":"2024-03-15"}), Kind::Json).unwrap()["start"],
            "2024-03-15"
        );
        assert_eq!(conv("rich_text", json!(""), Kind::Json).unwrap(), json!(""));
    }

    #[test]
    fn rows_by_name_id_and_special() {
        let page = parse_page(&json!({"id":"c1000000-0000-4000-8000-000000000001",
            "url":"https://www.notion.so/x","created_time":"2026-01-02T10:00:00.000Z",
            "properties":{"Name":{"id":"title","type":"title","title":[{"plain_text":"Acme Bakery"}]},
                          "Mail":{"id":"%3AeM","type":"email","email":"o@acme.example"}}}))
        .unwrap();
        let c = |name: &str, src: &str, kind: Kind| Column {
            name: name.into(),
            sql_type: "t".into(),
            kind,
            source: Source::parse(src).unwrap(),
        };
        let m = Mapping {
            table: "public.clients".into(),
            columns: vec![
                c("notion_id", "@id", Kind::Uuid),
                c("name", "Name", Kind::Text(None)),
                c("email", "%3AeM", Kind::Text(None)),
                c("slug", "@slug", Kind::Text(None)),
                c("info", "@content", Kind::Text(None)),
                c("gone", "Phone", Kind::Text(None)),
            ],
            id_col: 0,
            tz: chrono_tz::UTC,
            searchable: false,
            role: 10,
            raw: String::new(),
        };
        let info = PageInfo {
            page: &page,
            body: Some("Family bakery."),
            user: "alice",
        };
        let r = row(&m, &info, &[5]).unwrap();
        assert_eq!(r["notion_id"], "c1000000-0000-4000-8000-000000000001");
        assert_eq!(r["email"], "o@acme.example");
        assert_eq!(r["slug"], "acme-bakery");
        assert_eq!(r["info"], "Family bakery.");
        assert!(!r.contains_key("gone"));
        assert!(m.wants_content());
        assert_eq!(find_property(&page, "%3AeM").unwrap().0, "Mail");
    }
}
