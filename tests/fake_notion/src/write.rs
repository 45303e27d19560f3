//! Writes through the Notion API: `PATCH /v1/pages/{id}` and `POST /v1/pages`, validated the way
//! Notion validates them: first the shape of the body (the first error is the message, `body failed
//! validation: …`), then the properties against the schema (all such errors, joined by a space, as
//! Notion joins `X is not a property that exists. Y is expected to be rich_text.`). Nothing is
//! changed unless the whole request is valid.

use crate::api::{error, not_found, request_id, Fake};
use crate::http::Response;
use crate::store::{self, norm_id, now_ms, SchemaProp, Store};
use serde_json::{json, Map, Value};

/// Writable property types, in the order Notion lists them in a "Fix one:" message.
const WRITABLE: [&str; 14] = [
    "title",
    "rich_text",
    "number",
    "url",
    "select",
    "multi_select",
    "people",
    "email",
    "phone_number",
    "date",
    "checkbox",
    "relation",
    "files",
    "status",
];
/// Block types `children` may create (Notion's write format).
const BLOCKS: [&str; 12] = [
    "paragraph",
    "heading_1",
    "heading_2",
    "heading_3",
    "bulleted_list_item",
    "numbered_list_item",
    "to_do",
    "toggle",
    "quote",
    "callout",
    "code",
    "divider",
];

const ARCHIVED_BLOCK: &str =
    "Can't edit block that is archived. You must unarchive the block before editing.";

/// A value as Notion echoes it in validation messages (long ones cut, as Notion cuts them).
fn shown(v: Option<&Value>) -> String {
    match v {
        None => "undefined".into(),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > 50 {
                format!("{}...", s.chars().take(50).collect::<String>())
            } else {
                s
            }
        }
    }
}

fn failed(path: &str, expected: &str, got: Option<&Value>) -> String {
    format!(
        "body failed validation: {path} should be {expected}, instead was `{}`.",
        shown(got)
    )
}

fn too_long(path: &str, max: usize, n: usize) -> String {
    format!("body failed validation: {path}.length should be ≤ `{max}`, instead was `{n}`.")
}

fn fix_one(paths: &[String]) -> String {
    let mut s = "body failed validation. Fix one:".to_string();
    for p in paths {
        s.push_str(&format!(
            "\n{p} should be defined, instead was `undefined`."
        ));
    }
    s
}

/// Notion counts lengths in UTF-16 code units (its validator is JavaScript).
fn len16(s: &str) -> usize {
    s.encode_utf16().count()
}

fn check_keys(v: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), String> {
    for (k, x) in v {
        if !allowed.contains(&k.as_str()) {
            return Err(failed(&format!("{path}.{k}"), "not present", Some(x)));
        }
    }
    Ok(())
}

fn array<'a>(v: &'a Value, path: &str, max: usize) -> Result<&'a Vec<Value>, String> {
    let a = v
        .as_array()
        .ok_or_else(|| failed(path, "an array", Some(v)))?;
    if a.len() > max {
        return Err(too_long(path, max, a.len()));
    }
    Ok(a)
}

fn opt_string(v: &Value, path: &str, max: usize) -> Result<Value, String> {
    match v {
        Value::Null => Ok(Value::Null),
        Value::String(s) if len16(s) > max => Err(too_long(path, max, len16(s))),
        Value::String(_) => Ok(v.clone()),
        _ => Err(failed(path, "a string or `null`", Some(v))),
    }
}

/// Rich text items in Notion's write format (`text`, `equation`, `mention`) to the stored (read)
/// form: annotations filled in, `plain_text`, `href`.
pub fn rich_text_items(st: &Store, v: &Value, path: &str) -> Result<Value, String> {
    let items = array(v, path, 100)?;
    let mut out = vec![];
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let o = item
            .as_object()
            .ok_or_else(|| failed(&p, "an object", Some(item)))?;
        let kind = match o.get("type").and_then(|t| t.as_str()) {
            Some(t) => t.to_string(),
            None => match ["text", "mention", "equation"]
                .iter()
                .find(|k| o.contains_key(**k))
            {
                Some(k) => k.to_string(),
                None => {
                    return Err(fix_one(&[
                        format!("{p}.text"),
                        format!("{p}.mention"),
                        format!("{p}.equation"),
                    ]))
                }
            },
        };
        check_keys(
            o,
            &[
                "type",
                "text",
                "mention",
                "equation",
                "annotations",
                "plain_text",
                "href",
            ],
            &p,
        )?;
        let mut annotations = json!({"bold":false,"italic":false,"strikethrough":false,
            "underline":false,"code":false,"color":"default"});
        if let Some(a) = o.get("annotations").filter(|a| !a.is_null()) {
            let a = a
                .as_object()
                .ok_or_else(|| failed(&format!("{p}.annotations"), "an object", Some(a)))?;
            for (k, x) in a {
                let ap = format!("{p}.annotations.{k}");
                match k.as_str() {
                    "bold" | "italic" | "strikethrough" | "underline" | "code" => {
                        if !x.is_boolean() {
                            return Err(failed(&ap, "a boolean", Some(x)));
                        }
                    }
                    "color" => {
                        if !x.is_string() {
                            return Err(failed(&ap, "a string", Some(x)));
                        }
                    }
                    _ => return Err(failed(&ap, "not present", Some(x))),
                }
                annotations[k.as_str()] = x.clone();
            }
        }
        let inner = o
            .get(&kind)
            .ok_or_else(|| failed(&format!("{p}.{kind}"), "defined", None))?;
        let ip = format!("{p}.{kind}");
        let (body, plain, href) = match kind.as_str() {
            "text" => {
                let t = inner
                    .as_object()
                    .ok_or_else(|| failed(&ip, "an object", Some(inner)))?;
                check_keys(t, &["content", "link"], &ip)?;
                let content = match t.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    other => return Err(failed(&format!("{ip}.content"), "a string", other)),
                };
                if len16(&content) > 2000 {
                    return Err(too_long(&format!("{ip}.content"), 2000, len16(&content)));
                }
                let link = match t.get("link") {
                    None | Some(Value::Null) => Value::Null,
                    Some(l) => {
                        let lp = format!("{ip}.link");
                        let url = match l.get("url") {
                            Some(Value::String(u)) => u.clone(),
                            other => return Err(failed(&format!("{lp}.url"), "a string", other)),
                        };
                        if len16(&url) > 2000 {
                            return Err(too_long(&format!("{lp}.url"), 2000, len16(&url)));
                        }
                        json!({"url": url})
                    }
                };
                let href = link.get("url").cloned().unwrap_or(Value::Null);
                (
                    json!({"content": content, "link": link}),
                    content.clone(),
                    href,
                )
            }
            "equation" => {
                let e = match inner.get("expression") {
                    Some(Value::String(s)) => s.clone(),
                    other => return Err(failed(&format!("{ip}.expression"), "a string", other)),
                };
                if len16(&e) > 1000 {
                    return Err(too_long(&format!("{ip}.expression"), 1000, len16(&e)));
                }
                (json!({"expression": e}), e, Value::Null)
            }
            "mention" => {
                let m = inner
                    .as_object()
                    .ok_or_else(|| failed(&ip, "an object", Some(inner)))?;
                let mut m = Value::Object(m.clone());
                let mtype = ["user", "page", "database", "date", "link_preview"]
                    .into_iter()
                    .find(|k| m.get(*k).is_some())
                    .ok_or_else(|| {
                        fix_one(&[
                            format!("{ip}.user"),
                            format!("{ip}.page"),
                            format!("{ip}.database"),
                            format!("{ip}.date"),
                        ])
                    })?;
                m["type"] = json!(mtype);
                let plain = match mtype {
                    "user" => {
                        let id = norm_id(m["user"]["id"].as_str().unwrap_or(""));
                        let u = st.user_json(&id);
                        m["user"] = u.clone();
                        format!("@{}", u["name"].as_str().unwrap_or("Anonymous"))
                    }
                    "page" => {
                        let id = norm_id(m["page"]["id"].as_str().unwrap_or(""));
                        m["page"] = json!({"id": id});
                        match (st.pages.get(&id), st.wiki.get(&id)) {
                            (Some(p), _) => st.page_title(p),
                            (_, Some(w)) => store::plain_text(&w.title),
                            _ => "Untitled".into(),
                        }
                    }
                    "date" => m["date"]["start"].as_str().unwrap_or("").to_string(),
                    "link_preview" => m["link_preview"]["url"].as_str().unwrap_or("").to_string(),
                    _ => "Untitled".into(),
                };
                (m, plain, Value::Null)
            }
            other => {
                return Err(failed(
                    &format!("{p}.type"),
                    "`\"text\"`, `\"mention\"` or `\"equation\"`",
                    Some(&json!(other)),
                ))
            }
        };
        let mut item = json!({"type": kind});
        item[kind.as_str()] = body;
        item["annotations"] = annotations;
        item["plain_text"] = json!(plain);
        item["href"] = href;
        out.push(item);
    }
    Ok(Value::Array(out))
}

/// `{"name"}` or `{"id"}` of a select, multi_select or status option (checked, not yet resolved).
fn option_ref(v: &Value, path: &str) -> Result<Value, String> {
    let o = v
        .as_object()
        .ok_or_else(|| failed(path, "an object", Some(v)))?;
    check_keys(o, &["id", "name", "color", "description"], path)?;
    match (o.get("id"), o.get("name")) {
        (None, None) => Err(fix_one(&[format!("{path}.id"), format!("{path}.name")])),
        (Some(id), _) if !id.is_string() => {
            Err(failed(&format!("{path}.id"), "a string", Some(id)))
        }
        (_, Some(n)) if !n.is_string() => Err(failed(&format!("{path}.name"), "a string", Some(n))),
        (_, Some(Value::String(n))) if len16(n) > 100 => {
            Err(too_long(&format!("{path}.name"), 100, len16(n)))
        }
        _ => Ok(v.clone()),
    }
}

fn date_string(v: &Value, path: &str) -> Result<Value, String> {
    let s = v
        .as_str()
        .ok_or_else(|| failed(path, "a string", Some(v)))?;
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        // Notion answers datetimes with milliseconds and the offset given.
        return Ok(json!(t.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
    {
        return Ok(json!(t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()));
    }
    if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() {
        return Ok(json!(s));
    }
    Err(failed(path, "a valid ISO 8601 date string", Some(v)))
}

/// A Notion-hosted file URL back to the fake's marker (so a value read can be written back).
fn hosted_from_url(url: &str) -> Option<Value> {
    let rest = url.strip_prefix("https://prod-files-secure.s3.us-west-2.amazonaws.com/")?;
    let path = rest.split('?').next()?;
    Some(json!({"$hosted": path}))
}

fn file_items(v: &Value, path: &str, owner: &str) -> Result<Value, String> {
    let items = array(v, path, 100)?;
    let mut out = vec![];
    for (i, f) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let o = f
            .as_object()
            .ok_or_else(|| failed(&p, "an object", Some(f)))?;
        let kind = o
            .get("type")
            .and_then(|t| t.as_str())
            .map(String::from)
            .or_else(|| {
                ["external", "file_upload", "file"]
                    .into_iter()
                    .find(|k| o.contains_key(*k))
                    .map(String::from)
            })
            .ok_or_else(|| {
                fix_one(&[
                    format!("{p}.external"),
                    format!("{p}.file_upload"),
                    format!("{p}.file"),
                ])
            })?;
        check_keys(o, &["name", "type", "external", "file_upload", "file"], &p)?;
        let name = match o.get("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) if len16(n) > 100 => {
                return Err(too_long(&format!("{p}.name"), 100, len16(n)))
            }
            Some(Value::String(n)) => Some(n.clone()),
            Some(other) => return Err(failed(&format!("{p}.name"), "a string", Some(other))),
        };
        let url_of = |key: &str| -> Result<String, String> {
            match o.get(key).and_then(|x| x.get("url")) {
                Some(Value::String(u)) if len16(u) > 2000 => {
                    Err(too_long(&format!("{p}.{key}.url"), 2000, len16(u)))
                }
                Some(Value::String(u)) => Ok(u.clone()),
                other => Err(failed(&format!("{p}.{key}.url"), "a string", other)),
            }
        };
        let item = match kind.as_str() {
            "external" => {
                let url = url_of("external")?;
                let name = name.unwrap_or_else(|| url.rsplit('/').next().unwrap_or(&url).into());
                json!({"name": name, "type": "external", "external": {"url": url}})
            }
            "file" => {
                let url = url_of("file")?;
                let file = hosted_from_url(&url).unwrap_or_else(|| o["file"].clone());
                let name = name.unwrap_or_else(|| {
                    url.split('?')
                        .next()
                        .and_then(|u| u.rsplit('/').next())
                        .unwrap_or("file")
                        .to_string()
                });
                json!({"name": name, "type": "file", "file": file})
            }
            "file_upload" => {
                let id = match o.get("file_upload").and_then(|x| x.get("id")) {
                    Some(Value::String(id)) => id.clone(),
                    other => return Err(failed(&format!("{p}.file_upload.id"), "a string", other)),
                };
                let name = name.unwrap_or_else(|| "upload".into());
                json!({"name": name, "type": "file",
                    "file": store::hosted_marker(owner, &name, Some(&id))})
            }
            other => {
                return Err(failed(
                    &format!("{p}.type"),
                    "`\"external\"`, `\"file_upload\"` or `\"file\"`",
                    Some(&json!(other)),
                ))
            }
        };
        out.push(item);
    }
    Ok(Value::Array(out))
}

/// Checks the value of one written type and converts it to the stored form. Options of select,
/// multi_select and status stay references here (they need the schema).
fn shape(st: &Store, kind: &str, v: &Value, path: &str, owner: &str) -> Result<Value, String> {
    match kind {
        "title" | "rich_text" => rich_text_items(st, v, path),
        "number" => match v {
            Value::Null | Value::Number(_) => Ok(v.clone()),
            _ => Err(failed(path, "a number or `null`", Some(v))),
        },
        "checkbox" => match v {
            Value::Bool(_) => Ok(v.clone()),
            _ => Err(failed(path, "a boolean", Some(v))),
        },
        "url" => opt_string(v, path, 2000),
        "email" | "phone_number" => opt_string(v, path, 200),
        "select" | "status" => match v {
            Value::Null => Ok(Value::Null),
            _ => option_ref(v, path),
        },
        "multi_select" => {
            let a = array(v, path, 100)?;
            let refs = a
                .iter()
                .enumerate()
                .map(|(i, o)| option_ref(o, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Array(refs))
        }
        "date" => match v {
            Value::Null => Ok(Value::Null),
            Value::Object(o) => {
                check_keys(o, &["start", "end", "time_zone"], path)?;
                let start = match o.get("start") {
                    Some(s) => date_string(s, &format!("{path}.start"))?,
                    None => return Err(failed(&format!("{path}.start"), "defined", None)),
                };
                let end = match o.get("end") {
                    None | Some(Value::Null) => Value::Null,
                    Some(e) => date_string(e, &format!("{path}.end"))?,
                };
                let tz = match o.get("time_zone") {
                    None | Some(Value::Null) => Value::Null,
                    Some(Value::String(z)) => json!(z),
                    Some(z) => {
                        return Err(failed(&format!("{path}.time_zone"), "a string", Some(z)))
                    }
                };
                Ok(json!({"start": start, "end": end, "time_zone": tz}))
            }
            _ => Err(failed(path, "an object or `null`", Some(v))),
        },
        "relation" | "people" => {
            let a = array(v, path, 100)?;
            let mut out = vec![];
            for (i, r) in a.iter().enumerate() {
                let id = match r.get("id") {
                    Some(Value::String(id)) => norm_id(id),
                    other => return Err(failed(&format!("{path}[{i}].id"), "a string", other)),
                };
                out.push(if kind == "people" {
                    st.user_json(&id)
                } else {
                    json!({"id": id})
                });
            }
            Ok(Value::Array(out))
        }
        "files" => file_items(v, path, owner),
        _ => Err(failed(path, "not present", Some(v))),
    }
}

/// A checked and converted set of property values, applied only when the whole request is valid.
#[derive(Default)]
pub struct Plan {
    /// (property name, stored `<type>` value)
    pub values: Vec<(String, Value)>,
    /// (property name, option name): select/multi_select options to add to the schema.
    pub new_options: Vec<(String, String)>,
}

fn find_option(config: &Value, key: &str, want: &str) -> Option<Value> {
    config
        .get("options")
        .and_then(|o| o.as_array())
        .and_then(|a| {
            a.iter()
                .find(|o| o.get(key).and_then(|n| n.as_str()) == Some(want))
        })
        .map(|o| json!({"id": o["id"], "name": o["name"], "color": o.get("color").cloned().unwrap_or(json!("default"))}))
}

/// Resolves an option reference against the schema: a select name that does not exist becomes a
/// new option; a status name that does not exist, or an id that does not, is an error.
fn resolve_option(
    sp: &SchemaProp,
    r: &Value,
    new: &mut Vec<(String, String)>,
) -> Result<Value, String> {
    let decoded = crate::http::percent_decode(&sp.id);
    if let Some(id) = r.get("id").and_then(|i| i.as_str()) {
        return find_option(&sp.config, "id", id).ok_or_else(|| {
            format!(
                "{decoded} is an invalid {} option \"{id}\".",
                sp.kind.replace("multi_", "")
            )
        });
    }
    let name = r["name"].as_str().unwrap_or_default();
    if let Some(o) = find_option(&sp.config, "name", name) {
        return Ok(o);
    }
    if sp.kind == "status" {
        return Err(format!(
            "Invalid status option. Status option \"{name}\" does not exist\"."
        ));
    }
    if !new.iter().any(|(p, n)| p == &sp.name && n == name) {
        new.push((sp.name.clone(), name.to_string()));
    }
    Ok(store::option(name, &sp.config))
}

/// Checks `properties` of a PATCH or POST against `schema` (a standalone page: only `title`).
/// Err: the message of a 400 `validation_error`.
pub fn plan(st: &Store, schema: &[SchemaProp], props: &Value, owner: &str) -> Result<Plan, String> {
    let Some(props) = props.as_object() else {
        return Err(failed("body.properties", "an object", Some(props)));
    };
    // Shape of every value first: the first error is the answer.
    let mut shaped: Vec<(&String, String, Value)> = vec![];
    for (key, v) in props {
        let path = format!("body.properties.{key}");
        let o = v
            .as_object()
            .ok_or_else(|| failed(&path, "an object", Some(v)))?;
        let writable_paths: Vec<String> = WRITABLE.iter().map(|k| format!("{path}.{k}")).collect();
        let kind = match o.get("type") {
            Some(Value::String(t)) => {
                if !WRITABLE.contains(&t.as_str()) {
                    return Err(fix_one(&writable_paths));
                }
                if !o.contains_key(t) {
                    return Err(failed(&format!("{path}.{t}"), "defined", None));
                }
                t.clone()
            }
            Some(t) => return Err(failed(&format!("{path}.type"), "a string", Some(t))),
            None => match WRITABLE.iter().find(|k| o.contains_key(**k)) {
                Some(k) => k.to_string(),
                // Notably a read-only type's value (formula, rollup, …), as Notion answers it.
                None => return Err(fix_one(&writable_paths)),
            },
        };
        for (k, x) in o {
            if k != "id" && k != "type" && *k != kind {
                return Err(failed(&format!("{path}.{k}"), "not present", Some(x)));
            }
        }
        let value = shape(st, &kind, &o[&kind], &format!("{path}.{kind}"), owner)?;
        shaped.push((key, kind, value));
    }
    // Then against the schema: every error, joined.
    let mut errors: Vec<String> = vec![];
    let mut out = Plan::default();
    for (key, kind, value) in shaped {
        let Some(sp) = schema
            .iter()
            .find(|s| &s.name == key)
            .or_else(|| schema.iter().find(|s| store::percent_eq(&s.id, key)))
        else {
            errors.push(format!("{key} is not a property that exists."));
            continue;
        };
        if sp.kind != kind {
            errors.push(format!("{} is expected to be {}.", sp.name, sp.kind));
            continue;
        }
        let value = match kind.as_str() {
            "select" | "status" if value.is_null() => {
                if kind == "status" {
                    // Notion does not empty a status: it goes back to the first (To-do) option.
                    sp.config["options"]
                        .as_array()
                        .and_then(|a| a.first())
                        .and_then(|o| o["name"].as_str())
                        .and_then(|n| find_option(&sp.config, "name", n))
                        .unwrap_or(Value::Null)
                } else {
                    Value::Null
                }
            }
            "select" | "status" => match resolve_option(sp, &value, &mut out.new_options) {
                Ok(o) => o,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            },
            "multi_select" => {
                let mut opts = vec![];
                let mut bad = false;
                for r in value.as_array().into_iter().flatten() {
                    match resolve_option(sp, r, &mut out.new_options) {
                        Ok(o) => {
                            if !opts.iter().any(|x: &Value| x["name"] == o["name"]) {
                                opts.push(o)
                            }
                        }
                        Err(e) => {
                            errors.push(e);
                            bad = true;
                            break;
                        }
                    }
                }
                if bad {
                    continue;
                }
                Value::Array(opts)
            }
            _ => value,
        };
        out.values.retain(|(n, _)| n != &sp.name);
        out.values.push((sp.name.clone(), value));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join(" "))
    }
}

/// A page `icon` or `cover` in Notion's write format to its stored form (null clears it).
fn media(v: &Value, path: &str, owner: &str, icon: bool) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let o = v
        .as_object()
        .ok_or_else(|| failed(path, "an object or `null`", Some(v)))?;
    let kinds: &[&str] = if icon {
        &["emoji", "external", "file_upload", "file"]
    } else {
        &["external", "file_upload", "file"]
    };
    let kind = o
        .get("type")
        .and_then(|t| t.as_str())
        .map(String::from)
        .or_else(|| {
            kinds
                .iter()
                .find(|k| o.contains_key(**k))
                .map(|k| k.to_string())
        })
        .filter(|k| kinds.contains(&k.as_str()) && o.contains_key(k))
        .ok_or_else(|| {
            fix_one(
                &kinds
                    .iter()
                    .map(|k| format!("{path}.{k}"))
                    .collect::<Vec<_>>(),
            )
        })?;
    let mut allowed = vec!["type"];
    allowed.push(&kind);
    check_keys(o, &allowed, path)?;
    let inner = &o[&kind];
    let ip = format!("{path}.{kind}");
    match kind.as_str() {
        "emoji" => match inner {
            Value::String(e) => Ok(json!({"type":"emoji","emoji":e})),
            _ => Err(failed(&ip, "a string", Some(inner))),
        },
        "external" | "file" => {
            let url = match inner.get("url") {
                Some(Value::String(u)) if len16(u) > 2000 => {
                    return Err(too_long(&format!("{ip}.url"), 2000, len16(u)))
                }
                Some(Value::String(u)) => u.clone(),
                other => return Err(failed(&format!("{ip}.url"), "a string", other)),
            };
            if kind == "external" {
                Ok(json!({"type":"external","external":{"url":url}}))
            } else {
                let file = hosted_from_url(&url).unwrap_or_else(|| inner.clone());
                Ok(json!({"type":"file","file":file}))
            }
        }
        _ => match inner.get("id") {
            Some(Value::String(id)) => {
                let key = if icon { "icon" } else { "cover" };
                Ok(
                    json!({"type":"file","file":store::hosted_marker(&format!("{owner}:{key}"), key, Some(id))}),
                )
            }
            other => Err(failed(&format!("{ip}.id"), "a string", other)),
        },
    }
}

/// `children` of `POST /v1/pages` in Notion's block write format to the fake's block shorthand.
fn blocks(st: &Store, v: &Value, path: &str, depth: usize) -> Result<Vec<Value>, String> {
    let items = array(v, path, 100)?;
    let mut out = vec![];
    for (i, b) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let o = b
            .as_object()
            .ok_or_else(|| failed(&p, "an object", Some(b)))?;
        let kind = match o.get("type").and_then(|t| t.as_str()) {
            Some(t) if BLOCKS.contains(&t) => t.to_string(),
            Some(t) => {
                return Err(failed(
                    &format!("{p}.type"),
                    "a block type this fake creates (paragraph, heading_1-3, bulleted_list_item, numbered_list_item, to_do, toggle, quote, callout, code, divider)",
                    Some(&json!(t)),
                ))
            }
            None => match BLOCKS.iter().find(|k| o.contains_key(**k)) {
                Some(k) => k.to_string(),
                None => {
                    return Err(fix_one(
                        &BLOCKS.iter().map(|k| format!("{p}.{k}")).collect::<Vec<_>>(),
                    ))
                }
            },
        };
        let mut allowed = vec!["object", "type"];
        allowed.push(&kind);
        check_keys(o, &allowed, &p)?;
        let ip = format!("{p}.{kind}");
        let inner = o.get(&kind).ok_or_else(|| failed(&ip, "defined", None))?;
        let io = inner
            .as_object()
            .ok_or_else(|| failed(&ip, "an object", Some(inner)))?;
        let mut sh = json!({"type": kind});
        if kind != "divider" {
            let rt = io
                .get("rich_text")
                .ok_or_else(|| failed(&format!("{ip}.rich_text"), "defined", None))?;
            sh["text"] = rich_text_items(st, rt, &format!("{ip}.rich_text"))?;
        }
        for (k, x) in io {
            let kp = format!("{ip}.{k}");
            match k.as_str() {
                "rich_text" => {}
                "color" if x.is_string() => sh["raw"] = json!({"color": x}),
                "checked" if kind == "to_do" && x.is_boolean() => sh["checked"] = x.clone(),
                "is_toggleable" if kind.starts_with("heading_") && x.is_boolean() => {
                    sh["is_toggleable"] = x.clone()
                }
                "language" if kind == "code" && x.is_string() => sh["language"] = x.clone(),
                "caption" if kind == "code" => {
                    rich_text_items(st, x, &kp)?;
                }
                "icon" if kind == "callout" => {
                    if let Some(e) = x.get("emoji") {
                        sh["icon"] = e.clone();
                    }
                }
                "children" if kind != "divider" => {
                    if depth >= 2 {
                        return Err(failed(&kp, "not present", Some(x)));
                    }
                    sh["children"] = Value::Array(blocks(st, x, &kp, depth + 1)?);
                }
                _ => return Err(failed(&kp, "not present", Some(x))),
            }
        }
        out.push(sh);
    }
    Ok(out)
}

fn page_answer(st: &Store, id: &str, version: &str) -> Response {
    let mut v = match st.pages.get(id) {
        Some(p) => st.page_json(p, version, None, true),
        None => st.wiki_json(&st.wiki[id], version),
    };
    v["request_id"] = json!(request_id());
    Response::json(200, &v)
}

fn title_schema() -> Vec<SchemaProp> {
    vec![SchemaProp {
        id: "title".into(),
        name: "title".into(),
        kind: "title".into(),
        config: json!({}),
    }]
}

/// Adds the planned select options to a data source's schema and sets the values on a page.
fn apply(st: &mut Store, ds_id: Option<&str>, page_id: &str, plan: Plan) {
    if let Some(ds_id) = ds_id {
        if !plan.new_options.is_empty() {
            let ds = st.data_sources.get_mut(ds_id).expect("data source");
            for (prop, name) in &plan.new_options {
                if let Some(sp) = ds.schema.iter_mut().find(|s| &s.name == prop) {
                    let opt = store::option(name, &sp.config);
                    let list = sp.config["options"].as_array_mut();
                    match list {
                        Some(l) => {
                            if !l.iter().any(|o| o["name"] == json!(name)) {
                                l.push(json!({"id":opt["id"],"name":name,"color":"default","description":null}))
                            }
                        }
                        None => {
                            sp.config["options"] = json!([{"id":opt["id"],"name":name,"color":"default","description":null}])
                        }
                    }
                }
            }
            ds.edited_ms = now_ms();
        }
    }
    if let Some(p) = st.pages.get_mut(page_id) {
        for (name, v) in plan.values {
            p.raw.remove(&name);
            p.values.insert(name, v);
        }
    } else if let Some(w) = st.wiki.get_mut(page_id) {
        for (_, v) in plan.values {
            w.title = v;
        }
    }
}

impl Fake {
    /// `PATCH /v1/pages/{id}`: `{properties?, in_trash?, archived? (not on 2026-03-11), icon?, cover?}`.
    pub fn update_page(&self, token: &str, version: &str, id: &str, body: &Value) -> Response {
        let Some(o) = body.as_object() else {
            return error(
                400,
                "validation_error",
                &failed("body", "an object", Some(body)),
            );
        };
        let mut allowed = vec!["properties", "in_trash", "icon", "cover"];
        if version != "2026-03-11" {
            allowed.push("archived");
        }
        if let Err(e) = check_keys(o, &allowed, "body") {
            return error(400, "validation_error", &e);
        }
        let mut trash = None;
        for key in ["archived", "in_trash"] {
            match o.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Bool(b)) => trash = Some(*b),
                Some(other) => {
                    return error(
                        400,
                        "validation_error",
                        &failed(&format!("body.{key}"), "a boolean", Some(other)),
                    )
                }
            }
        }
        let mut st = self.store.lock().unwrap();
        let (ds_id, in_trash) = if let Some(p) = st.pages.get(id) {
            if !st.can_read_ds(token, &p.data_source_id) {
                return not_found("page", id);
            }
            (Some(p.data_source_id.clone()), p.in_trash)
        } else if let Some(w) = st.wiki.get(id) {
            if !st.can_read_page(token, id) {
                return not_found("page", id);
            }
            (None, w.in_trash)
        } else {
            return not_found("page", id);
        };
        let schema = match &ds_id {
            Some(d) => st.data_sources[d].schema.clone(),
            None => title_schema(),
        };
        let plan = match o.get("properties") {
            None => Plan::default(),
            Some(props) => match plan(&st, &schema, props, id) {
                Ok(p) => p,
                Err(e) => return error(400, "validation_error", &e),
            },
        };
        let mut media_values = vec![];
        for key in ["icon", "cover"] {
            if let Some(v) = o.get(key) {
                match media(v, &format!("body.{key}"), id, key == "icon") {
                    Ok(m) => media_values.push((key, m)),
                    Err(e) => return error(400, "validation_error", &e),
                }
            }
        }
        let edits = !plan.values.is_empty() || !media_values.is_empty();
        if in_trash && trash != Some(false) && edits {
            return error(400, "validation_error", ARCHIVED_BLOCK);
        }
        apply(&mut st, ds_id.as_deref(), id, plan);
        let now = now_ms();
        let bot = st.bot_id.clone();
        if let Some(p) = st.pages.get_mut(id) {
            for (key, m) in media_values {
                if key == "icon" {
                    p.icon = m;
                } else {
                    p.cover = m;
                }
            }
            if let Some(t) = trash {
                p.in_trash = t;
            }
            p.edited_ms = now;
            p.edited_by = bot;
        } else if let Some(w) = st.wiki.get_mut(id) {
            for (key, m) in media_values {
                if key == "icon" {
                    w.icon = m;
                } else {
                    w.cover = m;
                }
            }
            if let Some(t) = trash {
                w.in_trash = t;
            }
            w.edited_ms = now;
            w.edited_by = bot;
        }
        st.version += 1;
        page_answer(&st, id, version)
    }

    /// `POST /v1/pages`: `{parent, properties?, children?, icon?, cover?}`.
    pub fn create_page_api(&self, token: &str, version: &str, body: &Value) -> Response {
        let bad = |m: &str| error(400, "validation_error", m);
        let Some(o) = body.as_object() else {
            return bad(&failed("body", "an object", Some(body)));
        };
        if let Err(e) = check_keys(
            o,
            &["parent", "properties", "children", "icon", "cover"],
            "body",
        ) {
            return bad(&e);
        }
        let Some(parent) = o.get("parent") else {
            return bad(&failed("body.parent", "defined", None));
        };
        let Some(po) = parent.as_object() else {
            return bad(&failed("body.parent", "an object", Some(parent)));
        };
        let new_api = version != "2022-06-28";
        let mut kinds = vec!["database_id", "page_id", "workspace"];
        if new_api {
            kinds.insert(0, "data_source_id");
        }
        if let (false, Some(d)) = (new_api, po.get("data_source_id")) {
            // Data sources came with 2025-09-03.
            return bad(&failed(
                "body.parent.data_source_id",
                "not present",
                Some(d),
            ));
        }
        let kind = match po.get("type").and_then(|t| t.as_str()) {
            Some(t) if kinds.contains(&t) && po.contains_key(t) => t.to_string(),
            _ => match kinds.iter().find(|k| po.contains_key(**k)) {
                Some(k) => k.to_string(),
                None => {
                    return bad(&fix_one(
                        &kinds
                            .iter()
                            .map(|k| format!("body.parent.{k}"))
                            .collect::<Vec<_>>(),
                    ))
                }
            },
        };
        let mut allowed = vec!["type"];
        allowed.push(&kind);
        if let Err(e) = check_keys(po, &allowed, "body.parent") {
            return bad(&e);
        }
        if kind == "workspace" {
            return bad("Workspace-level pages can only be created by public integrations.");
        }
        let target = match po[&kind].as_str() {
            Some(s) => norm_id(s),
            None => {
                return bad(&failed(
                    &format!("body.parent.{kind}"),
                    "a string",
                    Some(&po[&kind]),
                ))
            }
        };
        let mut st = self.store.lock().unwrap();
        // The data source, or None for a page parent.
        let ds_id: Option<String> = match kind.as_str() {
            "data_source_id" => {
                if !st.data_sources.contains_key(&target) || !st.can_read_ds(token, &target) {
                    return not_found("data_source", &target);
                }
                Some(target.clone())
            }
            "database_id" => match st.databases.get(&target) {
                Some(db) if st.can_read_db(token, &target) => {
                    if db.data_sources.len() > 1 {
                        return bad(if new_api {
                            "Database has more than one data source. Use a data_source_id parent instead."
                        } else {
                            "Databases with multiple data sources are not supported in this API version."
                        });
                    }
                    Some(db.data_sources[0].clone())
                }
                _ => return not_found("database", &target),
            },
            _ => {
                if !st.page_exists(&target) || !st.can_read_page(token, &target) {
                    return not_found("page", &target);
                }
                let trashed = st
                    .pages
                    .get(&target)
                    .map(|p| p.in_trash)
                    .or_else(|| st.wiki.get(&target).map(|w| w.in_trash))
                    .unwrap_or(false);
                if trashed {
                    return bad(ARCHIVED_BLOCK);
                }
                None
            }
        };
        let schema = match &ds_id {
            Some(d) => st.data_sources[d].schema.clone(),
            None => title_schema(),
        };
        // The id of the new page keys its hosted files; take it before checking them.
        let pending = store::uuid_from(&format!("api-page:{}:{}", st.seq, now_ms()));
        let plan = match o.get("properties") {
            None => Plan::default(),
            Some(props) => match plan(&st, &schema, props, &pending) {
                Ok(p) => p,
                Err(e) => return bad(&e),
            },
        };
        let children = match o.get("children") {
            None => vec![],
            Some(c) => match blocks(&st, c, "body.children", 0) {
                Ok(b) => b,
                Err(e) => return bad(&e),
            },
        };
        let mut media_values = vec![];
        for key in ["icon", "cover"] {
            if let Some(v) = o.get(key) {
                match media(v, &format!("body.{key}"), &pending, key == "icon") {
                    Ok(m) => media_values.push((key, m)),
                    Err(e) => return bad(&e),
                }
            }
        }
        let now = now_ms();
        let id = match &ds_id {
            Some(d) => {
                let spec = json!({"id": pending, "created_time": store::iso(now)});
                match st.create_page(d, &spec) {
                    Ok(id) => id,
                    Err(e) => return error(500, "internal_server_error", &e),
                }
            }
            None => {
                let spec = json!({"id": pending, "parent_page_id": target, "created_time": store::iso(now)});
                match st.create_wiki_page(&spec, None, true) {
                    Ok(id) => id,
                    Err(e) => return error(500, "internal_server_error", &e),
                }
            }
        };
        apply(&mut st, ds_id.as_deref(), &id, plan);
        let parent_block = json!({"type":"page_id","page_id":id});
        let kids = st.create_blocks(&parent_block, &children, now);
        if let Some(p) = st.pages.get_mut(&id) {
            p.children = kids;
            for (key, m) in media_values {
                if key == "icon" {
                    p.icon = m;
                } else {
                    p.cover = m;
                }
            }
        } else if let Some(w) = st.wiki.get_mut(&id) {
            w.children = kids;
            for (key, m) in media_values {
                if key == "icon" {
                    w.icon = m;
                } else {
                    w.cover = m;
                }
            }
        }
        st.version += 1;
        page_answer(&st, &id, version)
    }
}
