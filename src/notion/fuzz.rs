//! Fuzzing the JSON model with proptest: arbitrary JSON, and the recorded page with any property or
//! block replaced by arbitrary JSON, must never panic; a page either parses or gives a reason.
//! `PROPTEST_CASES=100000 cargo test -p notion_sync --lib notion::fuzz` runs it longer.

use super::model;
use proptest::prelude::*;
use serde_json::{json, Value};

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
