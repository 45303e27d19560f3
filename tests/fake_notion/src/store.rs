//! The fake workspace: databases, data sources, pages and blocks, loaded from a compact seed format
//! and rendered in Notion's JSON shapes (as in the recorded responses of tests/fixtures/).

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const VERSIONS: [&str; 3] = ["2022-06-28", "2025-09-03", "2026-03-11"];

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Notion rounds `created_time`/`last_edited_time` down to the minute.
pub fn round_minute(ms: i64) -> i64 {
    ms - ms.rem_euclid(60_000)
}

pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Parses an RFC 3339 timestamp or a bare date (midnight UTC).
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc().timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis())
}

/// A stable UUID (version 4 layout) derived from a key, so seeds give the same ids every run.
pub fn uuid_from(key: &str) -> String {
    let h = Sha256::digest(key.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x: String = b.iter().map(|v| format!("{v:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// Accepts ids with or without dashes, as Notion does.
pub fn norm_id(id: &str) -> String {
    let hex: String = id
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_lowercase();
    if hex.len() != 32 {
        return id.to_lowercase();
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Property ids look like Notion's: four short characters, URL-encoded (`%3AXR%7C`).
fn property_id(key: &str) -> String {
    const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:|@[";
    let h = Sha256::digest(key.as_bytes());
    let mut s = String::new();
    for b in h.iter().take(4) {
        let c = ALPHA[(*b as usize) % ALPHA.len()] as char;
        match c {
            ':' => s.push_str("%3A"),
            '|' => s.push_str("%7C"),
            '@' => s.push_str("%40"),
            '[' => s.push_str("%5B"),
            c => s.push(c),
        }
    }
    s
}

pub fn rich_text(s: &str) -> Value {
    json!({"type":"text","text":{"content":s,"link":null},
        "annotations":{"bold":false,"italic":false,"strikethrough":false,"underline":false,"code":false,"color":"default"},
        "plain_text":s,"href":null})
}

pub fn rich_texts(v: &Value) -> Value {
    match v {
        Value::String(s) => json!([rich_text(s)]),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| match i {
                    Value::String(s) => rich_text(s),
                    other => other.clone(),
                })
                .collect(),
        ),
        Value::Null => json!([]),
        other => other.clone(),
    }
}

pub fn plain_text(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("plain_text").and_then(|p| p.as_str()))
                .collect::<String>()
        })
        .unwrap_or_default()
}

/// How values that depend on the moment of the read are rendered (set through `/admin/config`).
#[derive(Clone, Debug)]
pub struct Render {
    /// Lifetime of a presigned hosted-file URL (`X-Amz-Expires`, `expiry_time`); Notion's is 3600.
    pub file_url_ttl_s: i64,
    /// `now()` formulas are the current time floored to this (Notion: the minute).
    pub now_precision_ms: i64,
}

impl Default for Render {
    fn default() -> Self {
        Render {
            file_url_ttl_s: 3600,
            now_precision_ms: 60_000,
        }
    }
}

/// The workspace id in hosted-file paths and webhook events.
pub fn workspace_id() -> String {
    uuid_from("workspace")
}

/// Percent-encodes a file name for an S3 path (unreserved characters kept, like AWS does).
fn encode_path_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The stored form of a Notion-hosted file: `{"$hosted": "<workspace>/<file uuid>/<name>"}` in place of
/// the `{url, expiry_time}` object. Rendering replaces it with a freshly presigned URL on every read.
pub fn hosted_marker(owner: &str, name: &str, file_id: Option<&str>) -> Value {
    let file = file_id
        .map(norm_id)
        .unwrap_or_else(|| uuid_from(&format!("file:{owner}:{name}")));
    json!({"$hosted": format!("{}/{}/{}", workspace_id(), file, encode_path_segment(name))})
}

static SIGN_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn random_hex(bytes: usize, salt: &str) -> String {
    let n = SIGN_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut out = String::new();
    let mut round = 0u32;
    while out.len() < bytes * 2 {
        let h = Sha256::digest(format!("{salt}:{n}:{nanos}:{round}").as_bytes());
        out.extend(h.iter().map(|b| format!("{b:02x}")));
        round += 1;
    }
    out.truncate(bytes * 2);
    out
}

/// A presigned S3 URL in the shape Notion returns (notion_ruby_mapping page-retrieve recording):
/// the path (the file's identity) is stable, date, credential, token and signature change per read.
pub fn presign(path: &str, now: i64, ttl_s: i64) -> Value {
    let t = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
    let amz_date = t.format("%Y%m%dT%H%M%SZ").to_string();
    let day = t.format("%Y%m%d").to_string();
    let key: String = random_hex(8, path)
        .chars()
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let credential = format!("ASIA{key}%2F{day}%2Fus-west-2%2Fs3%2Faws4_request");
    let token = format!("IQoJb3JpZ2luX2Vj{}%3D%3D", random_hex(48, "token"));
    let url = format!(
        "https://prod-files-secure.s3.us-west-2.amazonaws.com/{path}?X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Content-Sha256=UNSIGNED-PAYLOAD&X-Amz-Credential={credential}&X-Amz-Date={amz_date}\
         &X-Amz-Expires={ttl_s}&X-Amz-Security-Token={token}&X-Amz-Signature={sig}\
         &X-Amz-SignedHeaders=host&x-amz-checksum-mode=ENABLED&x-id=GetObject",
        sig = random_hex(32, path),
    );
    // The URL is signed at a whole second; expiry_time carries the milliseconds of the read.
    json!({"url": url, "expiry_time": iso(now + ttl_s * 1000)})
}

/// Replaces every hosted-file marker in `v` with a new presigned URL.
pub fn sign_files(v: &mut Value, render: &Render) {
    match v {
        Value::Object(o) => {
            if let Some(path) = o.get("$hosted").and_then(|p| p.as_str()) {
                if o.len() == 1 {
                    *v = presign(path, now_ms(), render.file_url_ttl_s);
                    return;
                }
            }
            for x in o.values_mut() {
                sign_files(x, render);
            }
        }
        Value::Array(a) => {
            for x in a {
                sign_files(x, render);
            }
        }
        _ => {}
    }
}

/// Seed shorthand for a page `cover`/`icon`: a URL (external), `{"hosted": "name.png"}` (a
/// Notion-hosted file), a short string or `{"emoji": "…"}` (icon emoji), or a full object verbatim.
pub fn media_value(v: &Value, owner: &str) -> Value {
    match v {
        Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
            json!({"type":"external","external":{"url":s}})
        }
        Value::String(s) => json!({"type":"emoji","emoji":s}),
        Value::Object(o) if o.get("type").is_none() => {
            if let Some(name) = o.get("hosted").and_then(|h| h.as_str()) {
                let file = hosted_marker(owner, name, o.get("file_id").and_then(|f| f.as_str()));
                json!({"type":"file","file":file})
            } else if let Some(e) = o.get("emoji") {
                json!({"type":"emoji","emoji":e})
            } else if let Some(u) = o.get("url") {
                json!({"type":"external","external":{"url":u}})
            } else {
                v.clone()
            }
        }
        other => other.clone(),
    }
}

/// One element of a `files` value from the seed: a URL (external), `{"hosted": "name"}` or
/// `{"name", "hosted": true, "file_id"?}` (hosted), `{"name", "url"}` (external), or verbatim.
fn file_item(f: &Value, owner: &str) -> Value {
    match f {
        Value::String(url) => {
            let name = url.rsplit('/').next().unwrap_or(url);
            json!({"name":name,"type":"external","external":{"url":url}})
        }
        Value::Object(o) if o.get("type").is_none() => {
            let file_id = o.get("file_id").and_then(|x| x.as_str());
            let name = match o.get("hosted") {
                Some(Value::String(n)) => Some(n.clone()),
                Some(Value::Bool(true)) => Some(
                    o.get("name")
                        .and_then(|n| n.as_str())
                        .unwrap_or("file")
                        .to_string(),
                ),
                _ => None,
            };
            if let Some(name) = name {
                let display = o
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or(&name)
                    .to_string();
                json!({"name":display,"type":"file","file":hosted_marker(owner, &name, file_id)})
            } else if let Some(url) = o.get("url").and_then(|u| u.as_str()) {
                let name = o
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or_else(|| url.rsplit('/').next().unwrap_or(url));
                json!({"name":name,"type":"external","external":{"url":url}})
            } else {
                f.clone()
            }
        }
        other => other.clone(),
    }
}

#[derive(Clone)]
pub struct SchemaProp {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub config: Value,
}

pub struct DataSource {
    pub id: String,
    pub database_id: String,
    pub name: String,
    pub schema: Vec<SchemaProp>,
    pub created_ms: i64,
    pub edited_ms: i64,
    pub next_unique: i64,
}

pub struct Database {
    pub id: String,
    pub title: String,
    /// `{"type":"workspace","workspace":true}` or `{"type":"page_id","page_id":…}` (seed `parent_page_id`).
    pub parent: Value,
    pub data_sources: Vec<String>,
    pub created_ms: i64,
    pub edited_ms: i64,
    /// Seed `"in_trash": true`: a database in trash, which search still returns (as Notion does).
    pub in_trash: bool,
}

#[derive(Clone)]
pub struct Page {
    pub id: String,
    pub data_source_id: String,
    pub created_ms: i64,
    pub edited_ms: i64,
    pub in_trash: bool,
    pub created_by: String,
    pub edited_by: String,
    /// Property name -> the `<type>` value as Notion returns it (untruncated).
    pub values: HashMap<String, Value>,
    /// Properties whose stored value replaces the whole `{id,type,<type>}` object (malformed on purpose).
    pub raw: HashMap<String, Value>,
    pub children: Vec<String>,
    /// `cover` and `icon` as rendered (hosted files as markers), null when not set.
    pub cover: Value,
    pub icon: Value,
}

/// A page outside any database (a wiki/document page): its parent is the workspace or a page (a
/// standalone page or a database page), and its only property is `title`.
#[derive(Clone)]
pub struct WikiPage {
    pub id: String,
    /// None: a top-level page (`{"type":"workspace","workspace":true}`).
    pub parent_page_id: Option<String>,
    /// The title as rich text items.
    pub title: Value,
    pub created_ms: i64,
    pub edited_ms: i64,
    pub in_trash: bool,
    pub created_by: String,
    pub edited_by: String,
    /// Its own blocks (sub-pages are not blocks here: they are rendered as `child_page` after them).
    pub children: Vec<String>,
    pub cover: Value,
    pub icon: Value,
}

#[derive(Clone)]
pub struct Block {
    pub id: String,
    pub parent: Value,
    pub kind: String,
    pub body: Value,
    pub children: Vec<String>,
    pub created_ms: i64,
    pub edited_ms: i64,
}

#[derive(Default)]
pub struct Store {
    pub users: HashMap<String, Value>,
    pub bot_id: String,
    /// token -> shared database ids ("*" = every database).
    pub tokens: HashMap<String, Vec<String>>,
    pub databases: HashMap<String, Database>,
    pub database_order: Vec<String>,
    pub data_sources: HashMap<String, DataSource>,
    pub pages: HashMap<String, Page>,
    /// Page ids per data source in creation order.
    pub ds_pages: HashMap<String, Vec<String>>,
    pub blocks: HashMap<String, Block>,
    /// Standalone (wiki) pages, and their ids in creation order.
    pub wiki: HashMap<String, WikiPage>,
    pub wiki_order: Vec<String>,
    pub seq: u64,
    /// Bumped on every change; query result lists are cached per version.
    pub version: u64,
    pub render: Render,
}

impl Store {
    /// A seed page's created and edited times (edited defaults to created, created to `now`) and
    /// author (the integration's bot by default).
    fn seed_stamps(&self, p: &Value, now: i64) -> (i64, i64, String) {
        let time = |k: &str| p.get(k).and_then(|v| v.as_str()).and_then(parse_time);
        let created = time("created_time").unwrap_or(now);
        let edited = time("last_edited_time").unwrap_or(created);
        let author = p
            .get("created_by")
            .and_then(|v| v.as_str())
            .map(norm_id)
            .unwrap_or_else(|| self.bot_id.clone());
        (created, edited, author)
    }

    pub fn load(seed: &Value) -> Result<Store, String> {
        let mut st = Store {
            bot_id: uuid_from("bot"),
            ..Default::default()
        };
        st.users.insert(
            st.bot_id.clone(),
            json!({"object":"user","id":st.bot_id,"name":"notion_sync fake bot","avatar_url":null,"type":"bot","bot":{}}),
        );
        for u in seed
            .get("users")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let name = u.get("name").and_then(|v| v.as_str()).unwrap_or("User");
            let id = u
                .get("id")
                .and_then(|v| v.as_str())
                .map(norm_id)
                .unwrap_or_else(|| uuid_from(&format!("user:{name}")));
            let email = u.get("email").and_then(|v| v.as_str());
            st.users.insert(id.clone(), json!({"object":"user","id":id,"name":name,"avatar_url":null,"type":"person","person":{"email":email}}));
        }
        match seed.get("tokens") {
            Some(Value::Object(m)) => {
                for (tok, dbs) in m {
                    let list = dbs
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|d| d.as_str())
                                .map(|d| if d == "*" { d.to_string() } else { norm_id(d) })
                                .collect()
                        })
                        .unwrap_or_else(|| vec!["*".to_string()]);
                    st.tokens.insert(tok.clone(), list);
                }
            }
            _ => {
                st.tokens.insert("ntn_test".into(), vec!["*".into()]);
            }
        }
        let now = now_ms();
        for db in seed
            .get("databases")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let title = db
                .get("title")
                .and_then(|v| v.as_str())
                .unwrap_or("Untitled")
                .to_string();
            let id = db
                .get("id")
                .and_then(|v| v.as_str())
                .map(norm_id)
                .unwrap_or_else(|| uuid_from(&format!("db:{title}")));
            let created = db
                .get("created_time")
                .and_then(|v| v.as_str())
                .and_then(parse_time)
                .unwrap_or(now);
            let parent = match db.get("parent_page_id").and_then(|v| v.as_str()) {
                Some(pg) => json!({"type":"page_id","page_id":norm_id(pg)}),
                None => json!({"type":"workspace","workspace":true}),
            };
            let mut database = Database {
                id: id.clone(),
                title: title.clone(),
                parent,
                data_sources: vec![],
                created_ms: created,
                edited_ms: created,
                in_trash: db
                    .get("in_trash")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false),
            };
            // A database without `data_sources` is its own single data source.
            let (sources, explicit) = match db.get("data_sources").and_then(|v| v.as_array()) {
                Some(a) => (a.clone(), true),
                None => (vec![db.clone()], false),
            };
            for (i, ds) in sources.iter().enumerate() {
                let name = ds
                    .get("name")
                    .and_then(|v| v.as_str())
                    .unwrap_or(&title)
                    .to_string();
                let ds_id = ds
                    .get(if explicit { "id" } else { "data_source_id" })
                    .and_then(|v| v.as_str())
                    .map(norm_id)
                    .unwrap_or_else(|| uuid_from(&format!("ds:{id}:{i}")));
                let mut schema = vec![];
                if let Some(Value::Object(props)) = ds.get("properties") {
                    for (pname, def) in props {
                        let kind = def
                            .get("type")
                            .and_then(|v| v.as_str())
                            .unwrap_or("rich_text")
                            .to_string();
                        let pid = if kind == "title" {
                            "title".to_string()
                        } else {
                            def.get("id")
                                .and_then(|v| v.as_str())
                                .map(String::from)
                                .unwrap_or_else(|| property_id(&format!("{ds_id}:{pname}")))
                        };
                        schema.push(SchemaProp {
                            id: pid,
                            name: pname.clone(),
                            config: schema_config(&kind, def, &ds_id),
                            kind,
                        });
                    }
                }
                if !schema.iter().any(|p| p.kind == "title") {
                    schema.insert(
                        0,
                        SchemaProp {
                            id: "title".into(),
                            name: "Name".into(),
                            kind: "title".into(),
                            config: json!({}),
                        },
                    );
                }
                st.data_sources.insert(
                    ds_id.clone(),
                    DataSource {
                        id: ds_id.clone(),
                        database_id: id.clone(),
                        name,
                        schema,
                        created_ms: created,
                        edited_ms: created,
                        next_unique: 1,
                    },
                );
                st.ds_pages.insert(ds_id.clone(), vec![]);
                database.data_sources.push(ds_id.clone());
                for p in ds
                    .get("pages")
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                {
                    st.create_page(&ds_id, p)?;
                }
            }
            st.database_order.push(id.clone());
            st.databases.insert(id, database);
        }
        // Standalone pages after the databases, so that a parent may be a database page; parents may
        // come later in the list than their sub-pages.
        for (i, p) in seed
            .get("pages")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .enumerate()
        {
            st.create_wiki_page(p, Some(i), false)?;
        }
        for w in st.wiki.values() {
            if let Some(parent) = &w.parent_page_id {
                if !st.page_exists(parent) {
                    return Err(format!(
                        "page {}: parent_page_id {parent} is not a page of the workspace",
                        w.id
                    ));
                }
            }
        }
        for id in &st.wiki_order {
            if st.ancestors(id).is_none() {
                return Err(format!("page {id}: its parent_page_id chain is a cycle"));
            }
        }
        Ok(st)
    }

    /// A standalone page from the seed/admin shape: `{id?, title, parent_page_id?, created_time?,
    /// last_edited_time?, in_trash?, created_by?, children?, icon?, cover?}`. `index`: its place in
    /// the seed (for a stable id); `check_parent`: the parent must exist already (admin).
    pub fn create_wiki_page(
        &mut self,
        p: &Value,
        index: Option<usize>,
        check_parent: bool,
    ) -> Result<String, String> {
        if !p.is_object() {
            return Err("a page must be an object".into());
        }
        let title = match p.get("title") {
            None | Some(Value::Null) => json!([]),
            Some(t @ (Value::String(_) | Value::Array(_))) => rich_texts(t),
            Some(other) => return Err(format!("page title should be a string, not {other}")),
        };
        let parent_page_id = match p.get("parent_page_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(norm_id(s)),
            Some(other) => return Err(format!("parent_page_id should be a page id, not {other}")),
        };
        if check_parent {
            if let Some(parent) = &parent_page_id {
                if !self.page_exists(parent) {
                    return Err(format!("no page {parent}"));
                }
            }
        }
        self.seq += 1;
        self.version += 1;
        let seq = self.seq;
        let now = now_ms();
        let id = match (p.get("id").and_then(|v| v.as_str()), index) {
            (Some(id), _) => norm_id(id),
            (None, Some(i)) => uuid_from(&format!("wiki:{i}:{}", plain_text(&title))),
            (None, None) => uuid_from(&format!("wiki:{seq}:{now}")),
        };
        if self.page_exists(&id) || self.blocks.contains_key(&id) {
            return Err(format!("page {id} exists already"));
        }
        if parent_page_id.as_deref() == Some(id.as_str()) {
            return Err(format!("page {id} cannot be its own parent"));
        }
        let (created, edited, author) = self.seed_stamps(p, now);
        let children = match p.get("children").and_then(|v| v.as_array()) {
            Some(kids) => {
                let parent = json!({"type":"page_id","page_id":id});
                self.create_blocks(&parent, kids, created)
            }
            None => vec![],
        };
        let media = |key: &str| {
            p.get(key)
                .map(|c| media_value(c, &format!("{id}:{key}")))
                .unwrap_or(Value::Null)
        };
        let page = WikiPage {
            id: id.clone(),
            parent_page_id,
            title,
            created_ms: created,
            edited_ms: edited,
            in_trash: p.get("in_trash").and_then(|v| v.as_bool()).unwrap_or(false),
            created_by: author.clone(),
            edited_by: author,
            children,
            cover: media("cover"),
            icon: media("icon"),
        };
        self.wiki.insert(id.clone(), page);
        self.wiki_order.push(id.clone());
        Ok(id)
    }

    /// A database page or a standalone page.
    pub fn page_exists(&self, id: &str) -> bool {
        self.pages.contains_key(id) || self.wiki.contains_key(id)
    }

    /// The parent page ids of a standalone page, nearest first (None: a cycle).
    pub fn ancestors(&self, id: &str) -> Option<Vec<String>> {
        let mut out: Vec<String> = vec![];
        let mut cur = self.wiki.get(id)?.parent_page_id.clone();
        while let Some(p) = cur {
            if p == id || out.contains(&p) {
                return None;
            }
            cur = self.wiki.get(&p).and_then(|w| w.parent_page_id.clone());
            out.push(p);
        }
        Some(out)
    }

    /// Standalone sub-pages of a page (standalone or database page), not in trash, in creation order.
    pub fn sub_pages(&self, parent: &str) -> Vec<&WikiPage> {
        self.wiki_order
            .iter()
            .map(|id| &self.wiki[id])
            .filter(|w| !w.in_trash && w.parent_page_id.as_deref() == Some(parent))
            .collect()
    }

    /// Whether `token` may read the page `id` (either kind). A standalone page is seen by a token
    /// that sees `*`, that lists the page or one of its ancestors, or that sees the database of a
    /// database page it is under.
    pub fn can_read_page(&self, token: &str, id: &str) -> bool {
        if let Some(p) = self.pages.get(id) {
            return self.can_read_ds(token, &p.data_source_id);
        }
        if !self.wiki.contains_key(id) {
            return false;
        }
        let Some(list) = self.tokens.get(token) else {
            return false;
        };
        if list.iter().any(|d| d == "*" || d == id) {
            return true;
        }
        self.ancestors(id).unwrap_or_default().iter().any(|a| {
            list.contains(a)
                || self
                    .pages
                    .get(a)
                    .is_some_and(|p| self.can_read_ds(token, &p.data_source_id))
        })
    }

    pub fn wiki_parent(w: &WikiPage) -> Value {
        match &w.parent_page_id {
            Some(p) => json!({"type":"page_id","page_id":p}),
            None => json!({"type":"workspace","workspace":true}),
        }
    }

    /// A standalone page object: `parent` a page or the workspace, `title` its only property.
    pub fn wiki_json(&self, w: &WikiPage, version: &str) -> Value {
        let mut o = json!({
            "object":"page","id":w.id,
            "created_time": iso(round_minute(w.created_ms)),
            "last_edited_time": iso(round_minute(w.edited_ms)),
            "created_by":{"object":"user","id":w.created_by},
            "last_edited_by":{"object":"user","id":w.edited_by},
            "cover":w.cover,"icon":w.icon,"parent":Self::wiki_parent(w),
        });
        if version != "2026-03-11" {
            o["archived"] = json!(w.in_trash);
        }
        o["in_trash"] = json!(w.in_trash);
        if version != "2022-06-28" {
            o["is_archived"] = json!(false);
            o["is_locked"] = json!(false);
        }
        o["properties"] = json!({"title":{"id":"title","type":"title","title":w.title}});
        let slug: String = plain_text(&w.title)
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '-' })
            .collect();
        o["url"] = json!(format!(
            "https://www.notion.so/{}-{}",
            slug,
            w.id.replace('-', "")
        ));
        o["public_url"] = Value::Null;
        sign_files(&mut o, &self.render);
        o
    }

    /// The `child_page` block a sub-page is in its parent's children, keys in the recorded order
    /// (ultimate-notion block-children recording): the block id is the page id.
    pub fn child_page_json(&self, w: &WikiPage, version: &str) -> Value {
        let mut o = json!({
            "object":"block","id":w.id,"parent":Self::wiki_parent(w),
            "created_time": iso(round_minute(w.created_ms)),
            "last_edited_time": iso(round_minute(w.edited_ms)),
            "created_by":{"object":"user","id":w.created_by},
            "last_edited_by":{"object":"user","id":w.edited_by},
            "has_children":true,"in_trash":false,
            "type":"child_page","child_page":{"title":plain_text(&w.title)},
        });
        if version != "2026-03-11" {
            o["archived"] = json!(false);
        }
        o
    }

    pub fn user_json(&self, id: &str) -> Value {
        self.users
            .get(id)
            .cloned()
            .unwrap_or_else(|| json!({"object":"user","id":id}))
    }

    /// Turns the seed's shorthand for a property value into Notion's `<type>` value.
    /// `owner` (the page id) keys the identity of hosted files.
    fn expand_value(&mut self, ds_id: &str, owner: &str, prop: &SchemaProp, v: &Value) -> Value {
        match prop.kind.as_str() {
            "title" | "rich_text" => rich_texts(v),
            "select" | "status" => match v {
                Value::String(s) => option(s, &prop.config),
                other => other.clone(),
            },
            "multi_select" => match v {
                Value::Array(a) => Value::Array(
                    a.iter()
                        .map(|i| match i {
                            Value::String(s) => option(s, &prop.config),
                            o => o.clone(),
                        })
                        .collect(),
                ),
                Value::String(s) => json!([option(s, &prop.config)]),
                other => other.clone(),
            },
            "date" => match v {
                Value::String(s) => json!({"start":s,"end":null,"time_zone":null}),
                Value::Object(m) => {
                    json!({"start":m.get("start"),"end":m.get("end").cloned().unwrap_or(Value::Null),
                    "time_zone":m.get("time_zone").cloned().unwrap_or(Value::Null)})
                }
                other => other.clone(),
            },
            "people" => Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|u| match u {
                        Value::String(id) => self.user_json(&norm_id(id)),
                        o => o.clone(),
                    })
                    .collect(),
            ),
            "relation" => Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| match r {
                        Value::String(id) => json!({"id": norm_id(id)}),
                        o => o.clone(),
                    })
                    .collect(),
            ),
            "files" => Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| file_item(f, &format!("{owner}:{}", prop.id)))
                    .collect(),
            ),
            "formula" => match v {
                Value::Number(_) => json!({"type":"number","number":v}),
                Value::String(_) => json!({"type":"string","string":v}),
                Value::Bool(_) => json!({"type":"boolean","boolean":v}),
                other => other.clone(),
            },
            "rollup" => match v {
                Value::Number(_) => json!({"type":"number","number":v,"function":"sum"}),
                other => other.clone(),
            },
            "unique_id" => {
                let ds = self.data_sources.get_mut(ds_id).expect("data source");
                let n = v.as_i64().unwrap_or(ds.next_unique);
                ds.next_unique = ds.next_unique.max(n + 1);
                json!({"prefix": prop.config.get("prefix").cloned().unwrap_or(Value::Null), "number": n})
            }
            "button" => json!({}),
            _ => v.clone(),
        }
    }

    pub fn set_values(&mut self, page_id: &str, props: &Map<String, Value>) -> Result<(), String> {
        let ds_id = self.pages[page_id].data_source_id.clone();
        let schema = self.data_sources[&ds_id].schema.clone();
        for (name, v) in props {
            let Some(prop) = schema.iter().find(|p| &p.name == name || &p.id == name) else {
                return Err(format!("{name} is not a property that exists."));
            };
            if let Some(raw) = v
                .get("raw")
                .filter(|_| v.as_object().map(|o| o.len()) == Some(1))
            {
                self.pages
                    .get_mut(page_id)
                    .unwrap()
                    .raw
                    .insert(prop.name.clone(), raw.clone());
                continue;
            }
            let val = self.expand_value(&ds_id, page_id, prop, v);
            let page = self.pages.get_mut(page_id).unwrap();
            page.raw.remove(&prop.name);
            page.values.insert(prop.name.clone(), val);
        }
        Ok(())
    }

    /// Sets a page's `cover` or `icon` from the seed shorthand (null clears it).
    pub fn set_media(&mut self, page_id: &str, key: &str, v: &Value) {
        let value = media_value(v, &format!("{page_id}:{key}"));
        let page = self.pages.get_mut(page_id).expect("page");
        if key == "cover" {
            page.cover = value;
        } else {
            page.icon = value;
        }
    }

    /// Creates a page from the seed/admin shorthand: `{id?, created_time?, last_edited_time?, in_trash?,
    /// created_by?, properties:{Name: value}, children:[block shorthand]}`.
    pub fn create_page(&mut self, ds_id: &str, p: &Value) -> Result<String, String> {
        if !self.data_sources.contains_key(ds_id) {
            return Err(format!("no data source {ds_id}"));
        }
        self.seq += 1;
        self.version += 1;
        let seq = self.seq;
        let id = p
            .get("id")
            .and_then(|v| v.as_str())
            .map(norm_id)
            .unwrap_or_else(|| uuid_from(&format!("page:{ds_id}:{seq}:{}", now_ms())));
        let now = now_ms();
        let (created, edited, author) = self.seed_stamps(p, now);
        self.pages.insert(
            id.clone(),
            Page {
                id: id.clone(),
                data_source_id: ds_id.to_string(),
                created_ms: created,
                edited_ms: edited,
                in_trash: p.get("in_trash").and_then(|v| v.as_bool()).unwrap_or(false),
                created_by: author.clone(),
                edited_by: author,
                values: HashMap::new(),
                raw: HashMap::new(),
                children: vec![],
                cover: p
                    .get("cover")
                    .map(|c| media_value(c, &format!("{id}:cover")))
                    .unwrap_or(Value::Null),
                icon: p
                    .get("icon")
                    .map(|c| media_value(c, &format!("{id}:icon")))
                    .unwrap_or(Value::Null),
            },
        );
        self.ds_pages.get_mut(ds_id).unwrap().push(id.clone());
        // Every schema property has a value, as in Notion (empty when not given).
        let schema = self.data_sources[ds_id].schema.clone();
        let mut props = p
            .get("properties")
            .and_then(|v| v.as_object())
            .cloned()
            .unwrap_or_default();
        for sp in &schema {
            if !props.contains_key(&sp.name) && !props.contains_key(&sp.id) {
                props.insert(sp.name.clone(), empty_value(&sp.kind));
            }
        }
        self.set_values(&id, &props)?;
        if let Some(children) = p.get("children").and_then(|v| v.as_array()) {
            let parent = json!({"type":"page_id","page_id":id});
            let ids = self.create_blocks(&parent, children, created);
            self.pages.get_mut(&id).unwrap().children = ids;
        }
        Ok(id)
    }

    /// Block shorthand: `{"type":"paragraph","text":"…","children":[…]}`; see the README of the fake.
    pub fn create_blocks(&mut self, parent: &Value, items: &[Value], at: i64) -> Vec<String> {
        let mut ids = vec![];
        for b in items {
            self.seq += 1;
            let id = b
                .get("id")
                .and_then(|v| v.as_str())
                .map(norm_id)
                .unwrap_or_else(|| uuid_from(&format!("block:{}:{}", self.seq, at)));
            let kind = b
                .get("type")
                .and_then(|v| v.as_str())
                .unwrap_or("paragraph")
                .to_string();
            let text = b.get("text").map(rich_texts).unwrap_or_else(|| json!([]));
            let mut body = match kind.as_str() {
                "paragraph" | "bulleted_list_item" | "numbered_list_item" | "toggle" | "quote" => {
                    json!({"rich_text":text,"color":"default"})
                }
                "heading_1" | "heading_2" | "heading_3" => {
                    json!({"rich_text":text,"is_toggleable":b.get("is_toggleable").and_then(|v|v.as_bool()).unwrap_or(false),"color":"default"})
                }
                "to_do" => {
                    json!({"rich_text":text,"checked":b.get("checked").and_then(|v|v.as_bool()).unwrap_or(false),"color":"default"})
                }
                "callout" => {
                    json!({"rich_text":text,"icon":{"type":"emoji","emoji":b.get("icon").and_then(|v|v.as_str()).unwrap_or("💡")},"color":"default"})
                }
                "code" => {
                    json!({"rich_text":text,"caption":[],"language":b.get("language").and_then(|v|v.as_str()).unwrap_or("plain text")})
                }
                "child_page" | "child_database" => {
                    json!({"title": b.get("title").and_then(|v|v.as_str()).unwrap_or("Untitled")})
                }
                "equation" => {
                    json!({"expression": b.get("expression").and_then(|v|v.as_str()).unwrap_or("")})
                }
                "table" => {
                    let rows = b
                        .get("rows")
                        .and_then(|v| v.as_array())
                        .cloned()
                        .unwrap_or_default();
                    let width = rows
                        .first()
                        .and_then(|r| r.as_array())
                        .map(|r| r.len())
                        .unwrap_or(1);
                    json!({"table_width":width,"has_column_header":b.get("has_column_header").and_then(|v|v.as_bool()).unwrap_or(true),"has_row_header":false})
                }
                "image" | "video" | "pdf" | "file" | "audio" => {
                    // `"hosted": "name.png"` (or `true` with `"name"`): a Notion-hosted file,
                    // presigned anew on every read; otherwise an external `url`.
                    let hosted = match b.get("hosted") {
                        Some(Value::String(n)) => Some(n.clone()),
                        Some(Value::Bool(true)) => Some(
                            b.get("name")
                                .and_then(|v| v.as_str())
                                .unwrap_or("file")
                                .to_string(),
                        ),
                        _ => None,
                    };
                    let mut o = match &hosted {
                        Some(name) => {
                            let file = hosted_marker(
                                &format!("{id}:block"),
                                name,
                                b.get("file_id").and_then(|v| v.as_str()),
                            );
                            json!({"caption":[],"type":"file","file":file})
                        }
                        None => {
                            json!({"caption":[],"type":"external","external":{"url":b.get("url").and_then(|v|v.as_str()).unwrap_or("https://example.com/x")}})
                        }
                    };
                    if kind == "file" {
                        let name = b
                            .get("name")
                            .and_then(|v| v.as_str())
                            .map(String::from)
                            .or(hosted)
                            .or_else(|| {
                                b.get("url")
                                    .and_then(|v| v.as_str())
                                    .and_then(|u| u.rsplit('/').next())
                                    .map(String::from)
                            })
                            .unwrap_or_else(|| "x".into());
                        o["name"] = json!(name);
                    }
                    o
                }
                "bookmark" | "embed" | "link_preview" => {
                    json!({"caption":[],"url":b.get("url").and_then(|v|v.as_str()).unwrap_or("https://example.com")})
                }
                "divider" | "breadcrumb" | "table_of_contents" | "column_list" | "column" => {
                    json!({})
                }
                _ => b.get("raw").cloned().unwrap_or_else(|| json!({})),
            };
            if let Some(extra) = b.get("raw").filter(|_| body.is_object()) {
                if let (Some(o), Some(e)) = (body.as_object_mut(), extra.as_object()) {
                    for (k, v) in e {
                        o.insert(k.clone(), v.clone());
                    }
                }
            }
            let me = json!({"type":"block_id","block_id":id});
            let mut children = vec![];
            if kind == "table" {
                let rows = b
                    .get("rows")
                    .and_then(|v| v.as_array())
                    .cloned()
                    .unwrap_or_default();
                let row_blocks: Vec<Value> = rows
                    .iter()
                    .map(|r| {
                        let cells: Vec<Value> = r
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|c| json!([rich_text(c.as_str().unwrap_or(""))]))
                            .collect();
                        json!({"type":"table_row","raw":{"cells":cells}})
                    })
                    .collect();
                children = self.create_blocks(&me, &row_blocks, at);
            }
            if let Some(kids) = b.get("children").and_then(|v| v.as_array()) {
                let more = self.create_blocks(&me, kids, at);
                children.extend(more);
            }
            if kind == "table_row" {
                body = b.get("raw").cloned().unwrap_or_else(|| json!({"cells":[]}));
            }
            self.blocks.insert(
                id.clone(),
                Block {
                    id: id.clone(),
                    parent: parent.clone(),
                    kind,
                    body,
                    children,
                    created_ms: at,
                    edited_ms: at,
                },
            );
            ids.push(id);
        }
        ids
    }

    /// Whether `token` may read the database that owns `ds_id`.
    pub fn can_read_ds(&self, token: &str, ds_id: &str) -> bool {
        self.data_sources
            .get(ds_id)
            .map(|ds| self.can_read_db(token, &ds.database_id))
            .unwrap_or(false)
    }
    pub fn can_read_db(&self, token: &str, db_id: &str) -> bool {
        self.tokens
            .get(token)
            .map(|l| l.iter().any(|d| d == "*" || d == db_id))
            .unwrap_or(false)
    }

    pub fn page_title(&self, p: &Page) -> String {
        let ds = &self.data_sources[&p.data_source_id];
        ds.schema
            .iter()
            .find(|s| s.kind == "title")
            .and_then(|s| p.values.get(&s.name))
            .map(plain_text)
            .unwrap_or_default()
    }

    pub fn page_url(&self, p: &Page) -> String {
        let slug: String = self
            .page_title(p)
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '-' })
            .collect();
        format!("https://www.notion.so/{}-{}", slug, p.id.replace('-', ""))
    }

    /// The complete `<type>` value of a property at this moment: timestamps and authors from the
    /// page, `now()` formulas computed, hosted-file markers still unsigned.
    pub fn value_json(&self, p: &Page, sp: &SchemaProp) -> Value {
        match sp.kind.as_str() {
            "created_time" => json!(iso(round_minute(p.created_ms))),
            "last_edited_time" => json!(iso(round_minute(p.edited_ms))),
            "created_by" => self.user_json(&p.created_by),
            "last_edited_by" => self.user_json(&p.edited_by),
            "formula" if is_now_formula(sp) => {
                // Computed at every read, to the minute, as recorded (`…T10:55:00.000+00:00`).
                let step = self.render.now_precision_ms.max(1);
                let now = now_ms();
                let t = chrono::DateTime::from_timestamp_millis(now - now.rem_euclid(step))
                    .unwrap_or_default()
                    .format("%Y-%m-%dT%H:%M:%S%.3f+00:00")
                    .to_string();
                json!({"type":"date","date":{"start":t,"end":null,"time_zone":null}})
            }
            _ => p.values.get(&sp.name).cloned().unwrap_or(Value::Null),
        }
    }

    /// The property object (`{id,type,<type>}`) as Notion returns it in page objects: title and
    /// rich_text complete (recorded with 100 segments), relation cut at 25 with `has_more`, people
    /// cut at 25 (without `has_more`). Hosted files are signed by `page_json`.
    pub fn property_json(&self, p: &Page, sp: &SchemaProp) -> Value {
        if let Some(raw) = p.raw.get(&sp.name) {
            return raw.clone();
        }
        let mut value = self.value_json(p, sp);
        let mut obj = json!({"id": sp.id, "type": sp.kind});
        if matches!(sp.kind.as_str(), "people" | "relation") {
            let mut more = false;
            if let Some(a) = value.as_array_mut() {
                if a.len() > 25 {
                    a.truncate(25);
                    more = true;
                }
            }
            if sp.kind == "relation" {
                obj["has_more"] = json!(more);
            }
        }
        obj[sp.kind.as_str()] = value;
        obj
    }

    /// A page object. `retrieved`: the body of `GET /v1/pages/{id}`, whose parent on 2025-09-03+
    /// names only the data source (recorded); query and search results carry the database id too.
    pub fn page_json(
        &self,
        p: &Page,
        version: &str,
        only: Option<&[String]>,
        retrieved: bool,
    ) -> Value {
        let ds = &self.data_sources[&p.data_source_id];
        let mut props = Map::new();
        for sp in &ds.schema {
            if let Some(list) = only {
                if !list
                    .iter()
                    .any(|f| f == &sp.id || f == &sp.name || percent_eq(f, &sp.id))
                {
                    continue;
                }
            }
            props.insert(sp.name.clone(), self.property_json(p, sp));
        }
        let parent = if version == "2022-06-28" {
            json!({"type":"database_id","database_id":ds.database_id})
        } else if retrieved {
            json!({"type":"data_source_id","data_source_id":ds.id})
        } else {
            json!({"type":"data_source_id","data_source_id":ds.id,"database_id":ds.database_id})
        };
        let mut o = json!({
            "object":"page","id":p.id,
            "created_time": iso(round_minute(p.created_ms)),
            "last_edited_time": iso(round_minute(p.edited_ms)),
            "created_by":{"object":"user","id":p.created_by},
            "last_edited_by":{"object":"user","id":p.edited_by},
            "cover":p.cover,"icon":p.icon,"parent":parent,
        });
        if version != "2026-03-11" {
            o["archived"] = json!(p.in_trash);
        }
        o["in_trash"] = json!(p.in_trash);
        if version != "2022-06-28" {
            o["is_archived"] = json!(false);
            o["is_locked"] = json!(false);
        }
        o["properties"] = Value::Object(props);
        o["url"] = json!(self.page_url(p));
        o["public_url"] = Value::Null;
        sign_files(&mut o, &self.render);
        o
    }

    pub fn block_json(&self, b: &Block, version: &str) -> Value {
        let mut o = json!({
            "object":"block","id":b.id,"parent":b.parent,
            "created_time": iso(round_minute(b.created_ms)),
            "created_by":{"object":"user","id":self.bot_id},
            "last_edited_time": iso(round_minute(b.edited_ms)),
            "last_edited_by":{"object":"user","id":self.bot_id},
            "has_children": !b.children.is_empty(),
        });
        if version != "2026-03-11" {
            o["archived"] = json!(false);
        }
        o["in_trash"] = json!(false);
        o["type"] = json!(b.kind);
        o[b.kind.as_str()] = b.body.clone();
        sign_files(&mut o, &self.render);
        o
    }

    pub fn schema_json(&self, ds: &DataSource) -> Value {
        let mut props = Map::new();
        for sp in &ds.schema {
            let mut o = json!({"id":sp.id,"name":sp.name,"description":null,"type":sp.kind});
            o[sp.kind.as_str()] = sp.config.clone();
            props.insert(sp.name.clone(), o);
        }
        Value::Object(props)
    }

    pub fn data_source_json(&self, ds: &DataSource) -> Value {
        json!({
            "object":"data_source","id":ds.id,
            "title":[rich_text(&ds.name)],"description":[],
            "parent":{"type":"database_id","database_id":ds.database_id},
            "database_parent":self.databases.get(&ds.database_id).map(|d| d.parent.clone())
                .unwrap_or(json!({"type":"workspace","workspace":true})),
            "is_inline":false,"archived":false,
            "in_trash":self.databases.get(&ds.database_id).is_some_and(|d| d.in_trash),
            "created_time": iso(round_minute(ds.created_ms)),
            "last_edited_time": iso(round_minute(ds.edited_ms)),
            "created_by":{"object":"user","id":self.bot_id},
            "last_edited_by":{"object":"user","id":self.bot_id},
            "properties": self.schema_json(ds),
            "icon":null,"cover":null,
            "url": format!("https://www.notion.so/{}", ds.id.replace('-', "")),
            "public_url":null,
        })
    }

    pub fn database_json(&self, db: &Database, version: &str) -> Value {
        // Database containers come back unrounded with an offset (recorded behaviour).
        let ts = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S%.3f+00:00")
                .to_string()
        };
        let mut o = json!({
            "object":"database","id":db.id,
            "title":[rich_text(&db.title)],"description":[],
            "parent":db.parent,
            "is_inline":false,"in_trash":db.in_trash,"is_locked":false,
            "created_time": ts(db.created_ms),"last_edited_time": ts(db.edited_ms),
            "icon":null,"cover":null,
            "url": format!("https://www.notion.so/{}", db.id.replace('-', "")),
            "public_url":null,
        });
        if version != "2026-03-11" {
            // Recorded on 2025-09-03 too (notion-sdk-py database-retrieve); gone in 2026-03-11.
            o["archived"] = json!(db.in_trash);
        }
        if version == "2022-06-28" {
            let ds = &self.data_sources[&db.data_sources[0]];
            o["properties"] = self.schema_json(ds);
        } else {
            o["data_sources"] = Value::Array(
                db.data_sources
                    .iter()
                    .map(|d| json!({"id":d,"name":self.data_sources[d].name}))
                    .collect(),
            );
        }
        o
    }
}

/// A formula property whose expression is `now()`: its value is the time of the read.
pub fn is_now_formula(sp: &SchemaProp) -> bool {
    sp.kind == "formula"
        && sp
            .config
            .get("expression")
            .and_then(|e| e.as_str())
            .map(|e| e.trim() == "now()")
            .unwrap_or(false)
}

pub fn percent_eq(a: &str, b: &str) -> bool {
    crate::http::percent_decode(a) == crate::http::percent_decode(b)
}

pub fn option(name: &str, config: &Value) -> Value {
    let color = config
        .get("options")
        .and_then(|o| o.as_array())
        .and_then(|a| {
            a.iter()
                .find(|o| o.get("name").and_then(|n| n.as_str()) == Some(name))
        })
        .and_then(|o| o.get("color").cloned())
        .unwrap_or(json!("default"));
    json!({"id": property_id(&format!("opt:{name}")), "name": name, "color": color})
}

fn empty_value(kind: &str) -> Value {
    match kind {
        "title" | "rich_text" | "multi_select" | "people" | "relation" | "files" => json!([]),
        "checkbox" => json!(false),
        "formula" => json!({"type":"string","string":null}),
        "rollup" => json!({"type":"number","number":null,"function":"count"}),
        "unique_id" => Value::Null,
        _ => Value::Null,
    }
}

fn schema_config(kind: &str, def: &Value, ds_id: &str) -> Value {
    match kind {
        "select" | "multi_select" | "status" => {
            let opts: Vec<Value> = def
                .get("options")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .map(|o| match o {
                    Value::String(s) => json!({"id":property_id(&format!("opt:{s}")),"name":s,"color":"default","description":null}),
                    other => other.clone(),
                })
                .collect();
            json!({"options": opts})
        }
        "number" => json!({"format": def.get("format").cloned().unwrap_or(json!("number"))}),
        "relation" => {
            let target = def
                .get("data_source_id")
                .and_then(|v| v.as_str())
                .map(norm_id)
                .unwrap_or_else(|| ds_id.to_string());
            json!({"data_source_id":target,"database_id":def.get("database_id").cloned().unwrap_or(Value::Null),"type":"single_property","single_property":{}})
        }
        "formula" => json!({"expression": def.get("expression").cloned().unwrap_or(json!(""))}),
        "unique_id" => json!({"prefix": def.get("prefix").cloned().unwrap_or(Value::Null)}),
        "rollup" => json!({"function": def.get("function").cloned().unwrap_or(json!("count")),
            "relation_property_name": def.get("relation_property_name").cloned().unwrap_or(Value::Null),
            "rollup_property_name": def.get("rollup_property_name").cloned().unwrap_or(Value::Null)}),
        _ => json!({}),
    }
}
