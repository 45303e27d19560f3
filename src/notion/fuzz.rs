//! Fuzzing the JSON model with proptest: arbitrary JSON, and the recorded page with any property or
//! block replaced by arbitrary JSON, must never panic; a page either parses or gives a reason.
//! Pages with what Postgres would reject (impossible or out-of-range timestamps, ids that are not
//! Notion ids, NULs, numbers as titles) either parse into a `storable` page or give an Err, and
//! mapped date/timestamp columns only ever get values Postgres takes.
//! `PROPTEST_CASES=100000 cargo test -p notion_sync --lib notion::fuzz` runs it longer.

use super::model;
use crate::mapping::{self, Column, Kind, Source};
use chrono::{DateTime, Datelike, NaiveDate};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "title",
            "rich_text",
            "number",
            "select",
            "multi_select",
            "status",
            "date",
            "people",
            "relation",
            "formula",
            "rollup",
            "files",
            "checkbox",
            "url",
            "email",
            "unique_id",
            "plain_text",
            "type",
            "results",
            "children",
            "2026-01-01T00:00:00.000Z",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "type",
                    "id",
                    "name",
                    "plain_text",
                    "text",
                    "content",
                    "start",
                    "end",
                    "number",
                    "array",
                    "string",
                    "boolean",
                    "date",
                    "has_more",
                    "rich_text",
                    "title",
                    "properties",
                    "in_trash",
                    "archived",
                    "url",
                    "last_edited_time",
                    "prefix",
                ])
                .prop_map(String::from),
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn recorded_page() -> Value {
    let v: Value = serde_json::from_str(include_str!(
        "../../tests/fixtures/page-all-property-types-2025-09-03.json"
    ))
    .unwrap();
    v.get("page").cloned().unwrap_or(v)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_json_never_panics(v in any_json()) {
        let _ = model::parse_page(&v);
        let _ = model::block_text(&v);
        let _ = model::descend(&v);
        for kind in ["title", "rich_text", "number", "select", "multi_select", "date", "people",
                     "relation", "formula", "rollup", "files", "unique_id", "place", "verification", "x"] {
            let _ = model::property_value(kind, &v);
        }
    }

    #[test]
    fn any_property_of_a_real_page_may_be_garbage(index in 0usize..64, garbage in any_json()) {
        let mut page = recorded_page();
        let names: Vec<String> = page["properties"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        prop_assume!(!names.is_empty());
        let name = &names[index % names.len()];
        let kind = page["properties"][name]["type"].as_str().unwrap_or("").to_string();
        page["properties"][name][&kind] = garbage;
        if let Ok(p) = model::parse_page(&page) {
            let _ = model::page_hash(&p);
            // Nothing is dropped: every property is still there.
            prop_assert_eq!(p.properties.len(), names.len());
        }
    }
}

/// Timestamps, good and bad: recorded forms, the calendar out of range (month 13, day 45, hour 99,
/// minute 99), years 0 and 300000, a leap second, no zone, offsets of 16 h, NULs, and
/// anything of the ISO shape.
fn timestamp() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "2026-01-01T00:00:00.000Z",
            "2025-08-31T10:55:00.000+00:00",
            "2026-13-45T99:99:00.000Z",
            "2026-13-01T00:00:00.000Z",
            "2026-01-45T00:00:00.000Z",
            "2026-02-29T00:00:00.000Z",
            "2026-01-01T99:00:00.000Z",
            "2026-01-01T00:99:00.000Z",
            "0000-01-01T00:00:00.000Z",
            "300000-01-01T00:00:00.000Z",
            "2016-12-31T23:59:60.000Z",
            "2026-01-01T00:00:00.000",
            "2026-01-01T00:00:00",
            "2026-01-01",
            "2026-01-01T00:00:00+16:00",
            "2026-01-01T00:00:00-15:59",
            "0001-01-01T00:00:00+15:00",
            "9999-12-31T23:59:59-15:00",
            "2026-01-01T00:00:00.000Z\u{0}",
            "\u{0}",
            "",
        ])
        .prop_map(String::from),
        1 => "[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}(T[0-9]{1,2}:[0-9]{1,2}(:[0-9]{1,2}(\\.[0-9]{1,6})?)?)?(Z|[+-][0-9]{2}:[0-9]{2})?",
    ]
}

/// Ids: Notion's (dashed, bare, upper case) and not (too short, too long, not hex, NUL).
fn page_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => Just(json!("c1000000-0000-4000-8000-000000000001")),
        2 => Just(json!("c10000000000400080000000000000ff")),
        2 => Just(json!("C1000000-0000-4000-8000-0000000000FF")),
        1 => Just(json!("c1000000-0000-4000-8000-00000000000")),
        1 => Just(json!("c1000000-0000-4000-8000-0000000000011")),
        1 => Just(json!("g1000000-0000-4000-8000-000000000001")),
        1 => Just(json!("c1000000-0000-4000-8000-00000000000\u{0}")),
        1 => Just(json!("x")),
        1 => Just(json!("")),
        1 => Just(json!(7)),
        1 => Just(Value::Null),
        1 => "[0-9a-fA-F-]{30,36}".prop_map(Value::String),
    ]
}

/// Text with NULs in it.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,8}", "[a\u{0}]{0,6}", Just("\u{0}".to_string())]
}

fn rich(t: String) -> Value {
    json!([{"type": "text", "text": {"content": t.clone()}, "plain_text": t}])
}

/// A title payload: rich text (maybe with NULs), or a number, string, object, boolean.
fn title() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => text().prop_map(rich),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<f64>().prop_map(|n| json!(n)),
        1 => text().prop_map(Value::String),
        1 => Just(json!({"plain_text": "A"})),
        1 => Just(json!(true)),
        1 => Just(json!([5, null])),
        1 => Just(Value::Null),
    ]
}

/// A property of any type holding timestamps and text that Postgres may reject.
fn property() -> impl Strategy<Value = Value> {
    (timestamp(), timestamp(), text(), any::<i64>(), 0usize..9).prop_map(|(a, b, t, n, k)| {
        let date = json!({"start": a, "end": b, "time_zone": null});
        match k {
            0 => json!({"id": "d", "type": "date", "date": date}),
            1 => json!({"id": "f", "type": "formula", "formula": {"type": "date", "date": date}}),
            2 => json!({"id": "r", "type": "rollup", "rollup": {"type": "date", "date": date, "function": "latest_date"}}),
            3 => json!({"id": "c", "type": "created_time", "created_time": a}),
            4 => json!({"id": "t\u{0}", "type": "rich_text", "rich_text": rich(t)}),
            5 => json!({"id": "u", "type": "unique_id", "unique_id": {"prefix": t, "number": n}}),
            6 => json!({"id": "fi", "type": "files", "files": [{"name": t, "type": "file", "file": {"url": format!("https://s3/x?X-Amz-Date={a}"), "expiry_time": b}}]}),
            7 => json!({"id": "s", "type": "select", "select": {"name": t}}),
            _ => json!({"id": "x", "type": "place", "place": {"name\u{0}": t, "at": a}}),
        }
    })
}

/// Optional page fields: absent, null, or this value.
fn maybe<T: Strategy<Value = Value>>(s: T) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![Just(None), Just(Some(Value::Null)), s.prop_map(Some)]
}

fn hostile_page() -> impl Strategy<Value = Value> {
    (
        page_id(),
        maybe(timestamp().prop_map(Value::String)),
        maybe(prop_oneof![
            timestamp().prop_map(Value::String),
            any::<i64>().prop_map(|n| json!(n))
        ]),
        maybe(text().prop_map(Value::String)),
        title(),
        prop::collection::btree_map(text(), property(), 0..5),
    )
        .prop_map(|(id, created, edited, url, title, props)| {
            let mut p = Map::new();
            p.insert("object".into(), json!("page"));
            p.insert("id".into(), id);
            for (k, v) in [
                ("created_time", created),
                ("last_edited_time", edited),
                ("url", url),
            ] {
                if let Some(v) = v {
                    p.insert(k.into(), v);
                }
            }
            let mut properties: Map<String, Value> = props.into_iter().collect();
            properties.insert(
                "Name".into(),
                json!({"id": "title", "type": "title", "title": title}),
            );
            p.insert("properties".into(), Value::Object(properties));
            Value::Object(p)
        })
}

/// Whether Postgres takes `s` as `timestamptz`: RFC 3339 that chrono reads, a year it has (no
/// year 0; 4713 BC..294276 AD), an offset under 16 hours.
fn pg_timestamptz(s: &str) -> bool {
    let Ok(t) = DateTime::parse_from_rfc3339(s) else {
        return false;
    };
    let year_written = t.naive_local().year();
    let utc = t.naive_utc().year();
    year_written >= 1
        && (-4712..=294276).contains(&utc)
        && t.offset().local_minus_utc().abs() < 16 * 3600
}

/// Whether Postgres takes `s` as `date` (written `YYYY-MM-DD`, no year 0).
fn pg_date(s: &str) -> bool {
    s.len() == 10 && NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok_and(|d| d.year() >= 1)
}

fn no_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.contains('\0'),
        Value::Array(a) => a.iter().all(no_nul),
        Value::Object(o) => o.iter().all(|(k, v)| !k.contains('\0') && no_nul(v)),
        _ => true,
    }
}

/// What a parsed page must be before it goes to SQL: a Notion id, timestamps Postgres takes, no
/// NUL in any string.
fn storable(p: &model::Page) -> bool {
    let hex: String = p.id.chars().filter(|c| *c != '-').collect();
    let id = hex.len() == 32
        && hex.chars().all(|c| c.is_ascii_hexdigit())
        && p.id.chars().all(|c| c == '-' || c.is_ascii_hexdigit());
    let times = [&p.created_time, &p.last_edited_time]
        .iter()
        .all(|t| t.as_deref().is_none_or(pg_timestamptz));
    let text = !p.title.contains('\0')
        && !p.url.as_deref().unwrap_or("").contains('\0')
        && no_nul(&Value::Object(p.properties.clone()));
    id && times && text
}

fn column(kind: Kind) -> Column {
    Column {
        name: "c".into(),
        sql_type: "t".into(),
        kind,
        source: Source::Property("P".into()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn what_postgres_rejects_never_reaches_sql(page in hostile_page()) {
        match model::parse_page(&page) {
            Ok(p) => {
                prop_assert!(storable(&p), "not storable: {:?} from {}", p, page);
                let _ = model::page_hash(&p);
                for v in p.properties.values() {
                    let kind = v["type"].as_str().unwrap_or("");
                    for k in [Kind::Date, Kind::Timestamp(true), Kind::Timestamp(false), Kind::Int(i32::MIN as i64, i32::MAX as i64), Kind::Text(None)] {
                        let out = mapping::convert(kind, &v["value"], &column(k.clone()), chrono_tz::Pacific::Kiritimati);
                        if let Ok(Value::String(s)) = &out {
                            prop_assert!(!s.contains('\0'));
                            match k {
                                Kind::Date => prop_assert!(pg_date(s), "date {s:?} from {}", v),
                                Kind::Timestamp(true) => prop_assert!(pg_timestamptz(s), "timestamptz {s:?} from {}", v),
                                Kind::Timestamp(false) => prop_assert!(pg_timestamptz(&format!("{s}Z")), "timestamp {s:?} from {}", v),
                                _ => {}
                            }
                        }
                    }
                }
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    #[test]
    fn timestamps_either_check_or_fail(t in timestamp()) {
        if model::check_timestamp(&t).is_ok() {
            prop_assert!(pg_timestamptz(&t), "{t:?}");
        }
    }
}
