//! Write-back: changes made in Postgres reach Notion. The triggers of sql/writeback.sql queue
//! them in `notion_sync.outbox`; the worker pushes them here (`push`), a batch at a time, no
//! transaction open during HTTP, through the same per-token budget as the reads. Each change is
//! read back first (Notion has no If-Match and minute-rounded edit times): a property still at
//! the value the edit started from is patched, one already as wanted costs no write, any other
//! value is a conflict the registration's policy settles. Notion's answer is stored as a sync
//! would store it, so nothing echoes. `update_page` / `create_page` / `trash_page` are the same
//! writes, synchronous, for callers who want Notion's error in their own statement.

pub mod value;

use crate::error::SyncError;
use crate::gucs;
use crate::notion::client::{ApiError, Client, Interrupt};
use crate::notion::model;
use crate::storage::mapped;
use crate::storage::outbox::{self, Change, Failure, PushCounts, Registration, Settled};
use crate::sync::{self, Txn};
use pgrx::pg_sys::errcodes::PgSqlErrorCode as Code;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Whether this process is writing what Notion has (a sync, a webhook, write-back's own answer):
/// the write-back triggers skip those writes (`WHEN (NOT notion_sync._applying())`).
static APPLYING: AtomicBool = AtomicBool::new(false);

/// Marks this process's writes as the engine's until dropped.
pub struct Applying(bool);

impl Applying {
    pub fn begin() -> Applying {
        Applying(APPLYING.swap(true, Ordering::Relaxed))
    }
}

impl Drop for Applying {
    fn drop(&mut self) {
        APPLYING.store(self.0, Ordering::Relaxed);
    }
}

/// The worker writes nothing but what Notion has.
pub fn worker_applies() {
    APPLYING.store(true, Ordering::Relaxed);
}

#[pg_extern(volatile, parallel_safe)]
fn _applying() -> bool {
    APPLYING.load(Ordering::Relaxed)
}

thread_local! {
    static WAKE_REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Wakes the worker when this transaction commits (once per transaction, whatever the rows).
#[pg_extern(volatile, parallel_unsafe)]
fn _wake_writeback() {
    if WAKE_REGISTERED.get() {
        return;
    }
    WAKE_REGISTERED.set(true);
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, || {
        WAKE_REGISTERED.set(false);
        crate::shmem::wake_worker();
    });
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Abort, || {
        WAKE_REGISTERED.set(false)
    });
    // A prepared transaction commits later, elsewhere: the worker's 5 s look finds its changes.
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Prepare, || {
        WAKE_REGISTERED.set(false)
    });
}

fn refused(code: Code, msg: String) -> SyncError {
    SyncError::Target(code, msg)
}

/// A Notion error of a synchronous write, with a SQLSTATE that says whose it is.
fn notion_error(e: ApiError, what: &str) -> SyncError {
    let code = match &e {
        ApiError::Http { status: 400, .. } => Code::ERRCODE_INVALID_PARAMETER_VALUE,
        ApiError::Http { status: 401, .. } => Code::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        ApiError::Http { status: 403, .. } => Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
        ApiError::Http { status: 404, .. } => Code::ERRCODE_UNDEFINED_OBJECT,
        ApiError::Transport(_) => Code::ERRCODE_CONNECTION_FAILURE,
        _ => Code::ERRCODE_SYSTEM_ERROR,
    };
    refused(code, format!("{what}: {e}"))
}

/// Name -> {"id", "type"} of a schema or of a page's properties.
fn types(props: &Map<String, Value>) -> Map<String, Value> {
    props
        .iter()
        .map(|(n, p)| (n.clone(), json!({"id": p.get("id"), "type": p.get("type")})))
        .collect()
}

/// The data source pages are created in, and its schema (enable_writeback, create_page).
fn schema_of(
    client: &mut Client,
    user: &str,
    db: &str,
) -> Result<(String, Map<String, Value>), SyncError> {
    let (_, sources) = client.sources(db).map_err(|e| match e {
        ApiError::Http {
            status: 404 | 403, ..
        } => SyncError::NotShared(db.to_string()),
        ApiError::Http { status: 401, .. } => SyncError::BadToken(user.to_string()),
        e => SyncError::Api(e),
    })?;
    let source = sources.first().cloned().ok_or_else(|| {
        refused(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("database {db} has no data source"),
        )
    })?;
    let props = client.schema(&source).map_err(SyncError::Api)?;
    Ok((source, types(&props)))
}

/// Internal (enable_writeback): the database's first data source and its property types.
#[pg_extern(volatile, parallel_unsafe)]
fn _writeback_schema(p_user_id: &str, p_database_id: &str) -> JsonB {
    let run = || {
        let mut client = sync::client_for(p_user_id, Txn::Caller, &sync::sql_interrupt)?;
        let db = sync::normalize_id(p_database_id)?;
        let (source, props) = schema_of(&mut client, p_user_id, &db)?;
        Ok::<_, SyncError>(json!({"data_source_id": source, "properties": props}))
    };
    JsonB(run().unwrap_or_else(|e| e.raise()))
}

/// The parent of a page created in `source` (a data source; the database itself before
/// 2025-09-03).
fn parent(client: &Client, source: &str) -> Value {
    if client.version() < "2025-09-03" {
        json!({"database_id": source})
    } else {
        json!({"data_source_id": source})
    }
}

fn answer_id(v: &Value) -> Option<String> {
    v.get("id").and_then(|i| i.as_str()).map(String::from)
}

/// Internal: update_page, create_page and trash_page. Notion's answer is stored (its row and
/// hash follow it); returns the page id, its URL and what was stored.
#[pg_extern(volatile, parallel_unsafe)]
fn _write_page(p_user_id: &str, p_op: &str, p_id: &str, p_properties: Option<JsonB>) -> JsonB {
    JsonB(
        write_page(p_user_id, p_op, p_id, p_properties.map(|j| j.0)).unwrap_or_else(|e| e.raise()),
    )
}

fn write_page(user: &str, op: &str, id: &str, props: Option<Value>) -> Result<Value, SyncError> {
    if !gucs::writeback_enabled() {
        return Err(refused(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "write-back is off: ALTER SYSTEM SET notion_sync.writeback_enabled = on; SELECT pg_reload_conf();".into(),
        ));
    }
    let given = match props {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(SyncError::InvalidArgument(
                "p_properties must be a JSON object: property name (or id) -> plain value".into(),
            ))
        }
    };
    let id = sync::normalize_id(id)?;
    let interrupt: &Interrupt = &sync::sql_interrupt;
    let mut client = sync::client_for(user, Txn::Caller, interrupt)?;
    let answer = match op {
        "update" | "trash" => {
            let mut body = json!({});
            if op == "trash" {
                body["in_trash"] = json!(true);
            } else {
                let page = client
                    .get(&format!("/pages/{id}"))
                    .map_err(|e| notion_error(e, &format!("reading page {id}")))?;
                let current = model::parse_page(&page).map_err(SyncError::Storage)?;
                body["properties"] = Value::Object(convert(&given, &types(&current.properties))?);
            }
            client
                .write("PATCH", &format!("/pages/{id}"), &body)
                .map_err(|e| notion_error(e, &format!("updating page {id}")))?
        }
        "create" => {
            let wb = outbox::registration(user, &id)?;
            let (source, schema) = match wb {
                Some(Registration {
                    data_source: Some(s),
                    properties,
                    ..
                }) if !properties.is_empty() => (s, properties),
                _ => schema_of(&mut client, user, &id)?,
            };
            let body = json!({"parent": parent(&client, &source), "properties": convert(&given, &schema)?});
            match client.write("POST", "/pages", &body) {
                Ok(a) => a,
                // Notion carried the create out and said so: that page is the answer.
                Err(_) if client.committed.is_some() => {
                    let made = client.committed.clone().unwrap_or_default();
                    client
                        .get(&format!("/pages/{made}"))
                        .map_err(|e| notion_error(e, &format!("reading created page {made}")))?
                }
                Err(e) if e.not_applied() => {
                    return Err(notion_error(e, &format!("creating a page in {id}")))
                }
                Err(e) => {
                    return Err(notion_error(
                        e,
                        &format!("creating a page in {id} (Notion may have created it: look before trying again)"),
                    ))
                }
            }
        }
        other => {
            return Err(SyncError::InvalidArgument(format!(
                "unknown write {other:?}"
            )))
        }
    };
    let page_id = answer_id(&answer).unwrap_or_default();
    let url = answer.get("url").cloned().unwrap_or(Value::Null);
    let stored = {
        let _applying = Applying::begin();
        sync::store_page(user, answer, Txn::Caller, interrupt)
    };
    Ok(
        json!({"page_id": page_id, "url": url, "stored": match stored {
            Ok(s) => s,
            Err(e) => format!("not stored: {e}"),
        }}),
    )
}

/// Plain values as Notion property values, refused with a SQLSTATE naming the reason.
fn convert(
    given: &Map<String, Value>,
    schema: &Map<String, Value>,
) -> Result<Map<String, Value>, SyncError> {
    value::properties(given, schema).map_err(|e| {
        let code = if e.contains("computed by Notion") {
            Code::ERRCODE_GENERATED_ALWAYS
        } else {
            Code::ERRCODE_INVALID_PARAMETER_VALUE
        };
        refused(code, e)
    })
}

/// One batch of due changes pushed (the worker). Returns the seconds until the next change is
/// due: 0 when the batch was full, None when nothing is pending.
pub fn push(interrupt: &'static Interrupt) -> Option<f64> {
    const BATCH: i64 = 20;
    let claimed = Txn::PerBatch.run(|| outbox::claim(BATCH, gucs::max_delete_fraction()));
    let (batch, next) = match claimed {
        Ok(c) => c,
        Err(e) => {
            warning!("notion_sync worker: reading the write-back outbox failed: {e}");
            return Some(5.0);
        }
    };
    let full = batch.len() as i64 >= BATCH;
    let mut i = 0;
    while i < batch.len() {
        let (user, db) = (batch[i].user.clone(), batch[i].db.clone());
        let end = batch[i..]
            .iter()
            .position(|c| c.user != user || c.db != db)
            .map_or(batch.len(), |n| i + n);
        push_database(&user, &db, &batch[i..end], interrupt);
        i = end;
    }
    if full {
        Some(0.0)
    } else {
        next
    }
}

/// The changes of one database, in order, and their run record.
fn push_database(user: &str, db: &str, changes: &[Change], interrupt: &'static Interrupt) {
    let started = Instant::now();
    let mut counts = PushCounts {
        total: changes.len() as i64,
        created: 0,
        updated: 0,
        skipped: 0,
        trashed: 0,
        errors: 0,
        requests: 0,
        ms: 0,
        error: None,
    };
    let setup = Txn::PerBatch.run(|| {
        let reg = outbox::registration(user, db)?;
        let m = mapped::load(user, db)?;
        Ok::<_, SyncError>((reg, m))
    });
    let client = setup.and_then(|(reg, m)| {
        let reg =
            reg.ok_or_else(|| SyncError::Storage(format!("write-back of {db} is not enabled")))?;
        Ok((reg, m, sync::client_for(user, Txn::PerBatch, interrupt)?))
    });
    let (reg, mapping, mut client) = match client {
        Ok(x) => x,
        Err(e) => {
            let f = Failure {
                error: e.to_string(),
                ..Default::default()
            };
            // Without a token nothing will work until the user sets one; anything else may pass.
            let s = match e {
                SyncError::MissingToken(_) | SyncError::BadToken(_) => Settled::Failed(f),
                _ => Settled::Retry(f),
            };
            for c in changes {
                Txn::PerBatch
                    .run(|| outbox::settle(c, &s, 0))
                    .unwrap_or_else(|e| {
                        warning!("notion_sync worker: write-back change {}: {e}", c.id)
                    });
            }
            counts.errors = changes.len() as i64;
            counts.error = Some(e.to_string());
            record(user, db, &mut counts, started);
            return;
        }
    };
    let mut p = Pusher {
        client: &mut client,
        reg: &reg,
        mapping: mapping.as_ref(),
        user,
        interrupt,
    };
    for c in changes {
        let before = p.client.stats.requests;
        let settled = p.push(c);
        let requests = (p.client.stats.requests - before) as i64;
        counts.requests += requests;
        match &settled {
            Settled::Done { result, .. } if result.starts_with("created") => counts.created += 1,
            Settled::Done { result, .. } if result.starts_with("trashed") => counts.trashed += 1,
            Settled::Done { result, .. } if result.starts_with("patched") => counts.updated += 1,
            Settled::Done { .. } | Settled::Later(_) => counts.skipped += 1,
            Settled::Retry(f) | Settled::Failed(f) => {
                counts.errors += 1;
                counts.error = Some(f.error.clone());
            }
            Settled::Held { .. } | Settled::Ambiguous(_) => counts.errors += 1,
        }
        Txn::PerBatch
            .run(|| outbox::settle(c, &settled, requests))
            .unwrap_or_else(|e| warning!("notion_sync worker: write-back change {}: {e}", c.id));
    }
    record(user, db, &mut counts, started);
}

fn record(user: &str, db: &str, counts: &mut PushCounts, started: Instant) {
    counts.ms = started.elapsed().as_millis() as i64;
    Txn::PerBatch
        .run(|| outbox::record_run(user, db, counts))
        .unwrap_or_else(|e| warning!("notion_sync worker: recording a write-back run: {e}"));
}

fn failure(e: &ApiError) -> Failure {
    match e {
        ApiError::Http {
            code, request_id, ..
        } => Failure {
            error: e.to_string(),
            code: Some(code.clone()),
            request_id: request_id.clone(),
            not_applied: e.not_applied(),
        },
        _ => Failure {
            error: e.to_string(),
            not_applied: e.not_applied(),
            ..Default::default()
        },
    }
}

/// A write's error: Notion refused it (failed, with its code), or it may have been carried out
/// (tried again later, read back first).
fn after_error(e: ApiError) -> Settled {
    match &e {
        ApiError::Http { status, .. }
            if (400..500).contains(status) && ![409, 429].contains(status) =>
        {
            Settled::Failed(failure(&e))
        }
        ApiError::Config(_) => Settled::Failed(failure(&e)),
        _ => Settled::Retry(failure(&e)),
    }
}

/// A change's wanted value of property `name` (type `kind`) into a write's `properties`, keyed
/// by property id (it survives renames); a value Notion would refuse fails the change.
fn add_property(
    props: &mut Map<String, Value>,
    name: &str,
    ch: &Value,
    kind: &str,
    to: &Value,
) -> Result<(), Settled> {
    let key = ch.get("id").and_then(|i| i.as_str()).unwrap_or(name);
    let v = value::to_notion(kind, to).map_err(|e| {
        Settled::Failed(Failure {
            error: format!("property {name:?}: {e}"),
            ..Default::default()
        })
    })?;
    props.insert(key.to_string(), v);
    Ok(())
}

struct Pusher<'a, 'c> {
    client: &'a mut Client<'c>,
    reg: &'a Registration,
    mapping: Option<&'a crate::mapping::Mapping>,
    user: &'a str,
    interrupt: &'static Interrupt,
}

/// What looking a create's page up by its key found.
enum Lookup {
    Found(String),
    NotThere,
    /// No key property, no key value in this row, or more than one page with it.
    CannotTell,
}

/// One property's value now in Notion against the change: what to do with it.
enum Verdict {
    Already,
    Send,
    Conflict(Value),
}

impl Pusher<'_, '_> {
    fn push(&mut self, c: &Change) -> Settled {
        if c.create && c.page.is_none() {
            return self.create(c);
        }
        let page_id = match &c.page {
            Some(p) => p.clone(),
            None => match self.page_of_row(c) {
                Ok(Some(p)) => p,
                Ok(None) => {
                    return Settled::Later("its row's page is not created in Notion yet".into())
                }
                Err(e) => {
                    return Settled::Retry(Failure {
                        error: e.to_string(),
                        ..Default::default()
                    })
                }
            },
        };
        if c.create {
            // resolve_writeback(..., 'created', id), or a create whose commit Notion reported.
            return self.adopt(c, &page_id, "adopted");
        }
        self.update(c, &page_id)
    }

    fn page_of_row(&self, c: &Change) -> Result<Option<String>, SyncError> {
        let (Some(m), Some(key)) = (self.mapping, c.row_key.as_ref()) else {
            return Ok(None);
        };
        let id_col = m.columns[m.id_col].name.clone();
        Txn::PerBatch.run(|| outbox::page_of_row(&m.table, &id_col, key))
    }

    fn store(&self, page: Value) -> String {
        match sync::store_page(self.user, page, Txn::PerBatch, self.interrupt) {
            Ok(s) => s,
            Err(e) => format!("not stored: {e}"),
        }
    }

    /// `ch`: the change of one property (`from`, `to`, and `also`: values wanted in between, one
    /// of which may be in Notion already).
    fn verdict(&self, kind: &str, now: &Value, ch: &Value) -> Verdict {
        let (from, to) = (&ch["from"], &ch["to"]);
        let ours = |v: &Value| value::same(kind, now, v);
        let also = ch.get("also").and_then(|a| a.as_array());
        if ours(to) {
            Verdict::Already
        } else if ours(from) || also.is_some_and(|a| a.iter().any(ours)) {
            Verdict::Send
        } else {
            Verdict::Conflict(
                json!({"base": from, "local": to, "notion": now, "resolution":
                match self.reg.conflict.as_str() {
                    "postgres_wins" => "postgres_wins",
                    "manual" => "held",
                    _ => "notion_wins",
                }}),
            )
        }
    }

    fn update(&mut self, c: &Change, page_id: &str) -> Settled {
        let page = match self.client.get(&format!("/pages/{page_id}")) {
            Ok(p) => p,
            Err(e) => return after_error(e),
        };
        let current = match model::parse_page(&page) {
            Ok(p) => p,
            Err(e) => {
                return Settled::Retry(Failure {
                    error: format!("reading page {page_id} back: {e}"),
                    ..Default::default()
                })
            }
        };
        let mut props = Map::new();
        let mut trash = None;
        let mut conflicts = Map::new();
        // Relations and people of more than 25 items come truncated: read them whole first.
        let truncated: Vec<(String, String, String)> = current
            .truncated
            .iter()
            .filter(|(n, id, _)| {
                c.changes.iter().any(|(name, ch)| {
                    name == n || ch.get("id").and_then(|i| i.as_str()) == Some(id.as_str())
                })
            })
            .cloned()
            .collect();
        let mut current = current;
        for (name, id, kind) in truncated {
            let read = self
                .client
                .property_items(page_id, &id)
                .map_err(|e| e.to_string())
                .and_then(|(items, last)| {
                    model::complete_property_with(&mut current, &name, &kind, &items, last.as_ref())
                });
            if let Err(e) = read {
                return Settled::Retry(Failure {
                    error: format!("reading all of {name:?} back: {e}"),
                    ..Default::default()
                });
            }
        }
        for (name, ch) in &c.changes {
            let to = &ch["to"];
            let (kind, now) = if name == "@in_trash" {
                ("checkbox", Value::Bool(current.in_trash))
            } else {
                let id = ch.get("id").and_then(|i| i.as_str());
                match value::current(&current, id, name) {
                    Some((_, kind, v)) => (kind, v.clone()),
                    None => {
                        return Settled::Failed(Failure {
                            error: format!("property {name:?} is not in page {page_id} any more (deleted in Notion?)"),
                            ..Default::default()
                        })
                    }
                }
            };
            match self.verdict(kind, &now, ch) {
                Verdict::Already => continue,
                Verdict::Conflict(v) => {
                    let send = self.reg.conflict == "postgres_wins";
                    conflicts.insert(name.clone(), v);
                    if !send {
                        continue;
                    }
                }
                Verdict::Send => {}
            }
            if name == "@in_trash" {
                trash = Some(value::canon("checkbox", to) == Value::Bool(true));
                continue;
            }
            if let Err(s) = add_property(&mut props, name, ch, kind, to) {
                return s;
            }
        }
        let conflicts = (!conflicts.is_empty()).then_some(Value::Object(conflicts));
        if self.reg.conflict == "manual" {
            if let Some(conflicts) = conflicts {
                return Settled::Held { conflicts };
            }
        }
        if props.is_empty() && trash.is_none() {
            let result = if conflicts.is_some() {
                "Notion's values kept (conflict)"
            } else {
                "already as wanted"
            };
            let stored = self.store(page);
            return Settled::Done {
                result: format!("{result}; {stored}"),
                page: None,
                conflicts,
            };
        }
        let mut body = json!({});
        let n = props.len();
        if !props.is_empty() {
            body["properties"] = Value::Object(props);
        }
        if let Some(t) = trash {
            body["in_trash"] = json!(t);
        }
        match self
            .client
            .write("PATCH", &format!("/pages/{page_id}"), &body)
        {
            Ok(answer) => {
                let stored = self.store(answer);
                let result = match trash {
                    Some(true) => format!("trashed; {stored}"),
                    Some(false) if n == 0 => format!("restored; {stored}"),
                    _ => format!(
                        "patched {n} propert{}; {stored}",
                        if n == 1 { "y" } else { "ies" }
                    ),
                };
                Settled::Done {
                    result,
                    page: None,
                    conflicts,
                }
            }
            Err(e) => after_error(e),
        }
    }

    /// The value of the registration's key property in a create: how its page is found again.
    fn key_value(&self, c: &Change) -> Option<String> {
        let key = self.reg.key_property.as_deref()?;
        c.changes.get(key).and_then(|ch| {
            value::canon("rich_text", &ch["to"])
                .as_str()
                .map(String::from)
        })
    }

    /// The page a lost create made, looked up by the key property.
    fn lookup(&mut self, c: &Change) -> Result<Lookup, ApiError> {
        let (Some(key), Some(value), Some(source)) = (
            self.reg.key_property.clone(),
            self.key_value(c),
            self.reg.data_source.clone(),
        ) else {
            return Ok(Lookup::CannotTell);
        };
        let kind = self
            .reg
            .properties
            .get(&key)
            .and_then(|p| p.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or("rich_text")
            .to_string();
        let body = json!({"page_size": 2, "filter": {"property": key, kind: {"equals": value}}});
        let found = self.client.query(&source, &body)?;
        let results = found.get("results").and_then(|r| r.as_array());
        Ok(match results.map(|r| r.as_slice()).unwrap_or_default() {
            [] => Lookup::NotThere,
            [one] => answer_id(one).map_or(Lookup::CannotTell, Lookup::Found),
            // The key is not unique: adopting one of them could be the wrong page.
            _ => Lookup::CannotTell,
        })
    }

    fn create(&mut self, c: &Change) -> Settled {
        let ambiguous = || {
            Settled::Ambiguous(format!(
                "an earlier attempt may have created the page; resolve with notion_sync.resolve_writeback(user, {}, 'created', page_id) or 'not_created'",
                c.id
            ))
        };
        if c.maybe_sent {
            // A stop after the id was written into the row, before the change was settled.
            if let Ok(Some(id)) = self.page_of_row(c) {
                return self.adopt(c, &id, "created earlier");
            }
            match self.lookup(c) {
                Ok(Lookup::Found(id)) => return self.adopt(c, &id, "found by its key"),
                Ok(Lookup::NotThere) => {}
                Ok(Lookup::CannotTell) => return ambiguous(),
                Err(e) => return after_error(e),
            }
        }
        let Some(source) = self.reg.data_source.clone() else {
            return Settled::Failed(Failure {
                error: "no data source to create pages in: enable_writeback again".into(),
                ..Default::default()
            });
        };
        let mut props = Map::new();
        for (name, ch) in &c.changes {
            if name == "@in_trash" {
                continue;
            }
            let kind = ch.get("type").and_then(|t| t.as_str()).unwrap_or("");
            if let Err(s) = add_property(&mut props, name, ch, kind, &ch["to"]) {
                return s;
            }
        }
        let body = json!({"parent": parent(self.client, &source), "properties": props});
        match self.client.write("POST", "/pages", &body) {
            Ok(answer) => {
                let id = answer_id(&answer).unwrap_or_default();
                self.created(c, &id, answer, "created")
            }
            Err(_) if self.client.committed.is_some() => {
                let id = self.client.committed.clone().unwrap_or_default();
                self.adopt(c, &id, "created (Notion reported the commit)")
            }
            Err(e) if e.not_applied() => after_error(e),
            // A 5xx or a lost answer: the page may exist. Never posted again blindly.
            Err(e) => match self.lookup(c) {
                Ok(Lookup::Found(id)) => self.adopt(c, &id, "created (found by its key)"),
                // Not there (yet: Notion's index may lag): tried again later, looked for first.
                Ok(Lookup::NotThere) => Settled::Retry(failure(&e)),
                _ => ambiguous(),
            },
        }
    }

    /// A page that exists already becomes the change's: read, its id written back, stored.
    fn adopt(&mut self, c: &Change, id: &str, how: &str) -> Settled {
        match self.client.get(&format!("/pages/{id}")) {
            Ok(page) => self.created(c, id, page, how),
            Err(e) => after_error(e),
        }
    }

    fn created(&mut self, c: &Change, id: &str, page: Value, how: &str) -> Settled {
        if let (Some(m), Some(key)) = (self.mapping, c.row_key.as_ref()) {
            if let Err(e) = Txn::PerBatch.run(|| mapped::set_page_id(m, key, id)) {
                // The page exists (and is recorded with the change): never created again.
                return Settled::Done {
                    result: format!("{how} {id}; writing its id into {} failed: {e}", m.table),
                    page: Some(id.to_string()),
                    conflicts: None,
                };
            }
        }
        let stored = self.store(page);
        Settled::Done {
            result: format!("{how} {id}; {stored}"),
            page: Some(id.to_string()),
            conflicts: None,
        }
    }
}

#[cfg(test)]
mod tests {
    const WRITEBACK_SQL: &str = include_str!("../../sql/writeback.sql");

    #[test]
    fn the_upgrade_script_carries_writeback_sql_verbatim() {
        let upgrade = include_str!("../../sql/notion_sync--0.1.0--0.2.0.sql");
        assert!(upgrade.contains(WRITEBACK_SQL));
    }

    /// The sync tables' trigger writes a text column to the properties the engine reads it from.
    #[test]
    fn the_trigger_follows_the_engines_text_rules() {
        let list = |props: &[&str]| {
            props
                .iter()
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for t in crate::storage::TABLES {
            let text = format!("\"{}\": [{}]", t.text_col, list(t.text_props));
            assert!(WRITEBACK_SQL.contains(&text), "{}: {text}", t.table);
            if let Some((col, props)) = t.desc {
                let desc = format!("\"{col}\": [{}]", list(props));
                assert!(WRITEBACK_SQL.contains(&desc), "{}: {desc}", t.table);
            }
        }
    }

    #[test]
    fn read_only_types_are_the_same_in_sql() {
        let line = WRITEBACK_SQL
            .lines()
            .skip_while(|l| !l.contains("FUNCTION notion_sync._read_only_type"))
            .take(5)
            .collect::<String>();
        for t in [
            "formula",
            "rollup",
            "created_time",
            "created_by",
            "last_edited_time",
            "last_edited_by",
            "unique_id",
            "button",
            "verification",
        ] {
            assert!(super::value::read_only(t));
            assert!(line.contains(&format!("'{t}'")), "{t}");
        }
        assert!(!super::value::read_only("rich_text"));
    }
}
