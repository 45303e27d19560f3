//! Webhooks (README, "Webhooks"). `handle_webhook` verifies the signature over the raw body,
//! stores the event durably (deduplicated on its id) and returns at once, waking the worker at
//! commit; the worker applies queued events (`apply`, `settle`). Events are signals only: pages are
//! always read fresh from Notion.

use crate::error::SyncError;
use crate::notion::client::Interrupt;
use crate::shmem;
use crate::storage::queue::{Event, Settled};
use crate::sync::{self, Mode, Runs, SyncRequest, Trigger, Txn};
use hmac::{Hmac, Mac};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    mac
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body), as Notion sends it in `X-Notion-Signature`.
#[cfg(test)]
pub fn signature(secret: &str, body: &[u8]) -> String {
    let bytes = mac(secret, body).finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Checks the header against the raw body bytes in constant time (hmac's `verify_slice`).
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(sig) = header.trim().strip_prefix("sha256=").and_then(decode_hex) else {
        return false;
    };
    mac(secret, body).verify_slice(&sig).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// What the worker does with an event type.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Read the page again (its blocks too when `content`).
    Page {
        content: bool,
    },
    /// Check the page in Notion and mark it in trash.
    PageDeleted,
    /// An incremental sync of the database the entity belongs to.
    Database,
    Ignore,
}

pub fn action(kind: &str) -> Action {
    match kind {
        "page.content_updated" | "page.created" | "page.undeleted" => {
            Action::Page { content: true }
        }
        "page.properties_updated" | "page.moved" => Action::Page { content: false },
        "page.deleted" => Action::PageDeleted,
        k if k.starts_with("data_source.") || k.starts_with("database.") => Action::Database,
        _ => Action::Ignore,
    }
}

fn reject(msg: String) -> SyncError {
    shmem::count_rejected();
    SyncError::BadSignature(msg)
}

/// The user a handshake belongs to: the one named, else the only user with a token.
fn handshake_user(user: Option<&str>) -> Result<String, SyncError> {
    if let Some(u) = user.filter(|u| !u.trim().is_empty()) {
        return Ok(u.to_string());
    }
    let users: Vec<String> = Spi::connect(|c| {
        c.select(
            "SELECT user_id FROM notion_sync.tokens ORDER BY 1 LIMIT 2",
            None,
            &[],
        )?
        .map(|r| r.get::<String>(1).map(|u| u.unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()
    })?;
    match users.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(SyncError::InvalidArgument(
            "a webhook handshake must name its user: call handle_webhook(body, signature, p_user_id) \
             (several or no users have tokens)"
                .into(),
        )),
    }
}

/// The first `{"verification_token": ...}` POST of a subscription: stored as the user's secret
/// unless the user already has a verified one (then only `set_webhook_secret` replaces it, so a
/// forged handshake cannot take over a working subscription).
fn handshake(token: &str, user: Option<&str>) -> Result<Value, SyncError> {
    let user = handshake_user(user)?;
    let stored = Spi::get_one_with_args::<bool>(
        "WITH s AS (
           INSERT INTO notion_sync.webhook_secrets AS w (user_id, secret) VALUES ($1, $2)
           ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret, created_at = now()
            WHERE w.verified_at IS NULL OR w.secret = EXCLUDED.secret
           RETURNING 1)
         SELECT count(*) > 0 FROM s",
        &[user.as_str().into(), token.into()],
    )?
    .unwrap_or(false);
    if !stored {
        return Err(reject(format!(
            "user {user:?} already has a verified webhook subscription; replace its secret with \
             notion_sync.set_webhook_secret()"
        )));
    }
    Ok(json!({"status": "verification_pending", "verification_token": token, "user_id": user}))
}

/// Handles one delivery. Errors: 28000 bad or missing signature, 22P02 not JSON, 22023 no id/type.
/// `user`: whose subscription (optional for events: the secret that verifies tells).
pub fn handle(body: &str, header: Option<&str>, user: Option<&str>) -> Result<Value, SyncError> {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    if let Some(token) = parsed
        .as_ref()
        .filter(|v| v.get("type").is_none())
        .and_then(|v| v.get("verification_token"))
        .and_then(|t| t.as_str())
    {
        return handshake(token, user);
    }
    let Some(header) = header.filter(|h| !h.trim().is_empty()) else {
        return Err(reject("missing X-Notion-Signature".into()));
    };
    let secrets: Vec<(String, String)> = Spi::connect(|c| {
        c.select(
            "SELECT user_id, secret FROM notion_sync.webhook_secrets
              WHERE $1::text IS NULL OR user_id = $1 ORDER BY user_id",
            None,
            &[user.map(String::from).into()],
        )?
        .map(|r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
            ))
        })
        .collect::<Result<Vec<_>, pgrx::spi::SpiError>>()
    })?;
    let Some((user, _)) = secrets
        .iter()
        .find(|(_, secret)| verify(secret, body.as_bytes(), header))
    else {
        return Err(reject(
            "X-Notion-Signature does not match the body (it must be the raw request body, unchanged)".into(),
        ));
    };
    let Some(event) = parsed else {
        shmem::count_rejected();
        return Err(SyncError::BadRequest("the webhook body is not JSON".into()));
    };
    let s = |p: &str| event.pointer(p).and_then(|v| v.as_str()).map(String::from);
    let (Some(id), Some(kind)) = (s("/id"), s("/type")) else {
        return Err(SyncError::InvalidArgument(
            "a webhook event needs an id and a type".into(),
        ));
    };
    let inserted = Spi::get_one_with_args::<bool>(
        "WITH e AS (
           INSERT INTO notion_sync.webhook_events AS w
                  (id, user_id, type, entity_id, entity_type, parent_id, event_time, attempt_number, body)
           VALUES ($1, $2, $3, $4, $5, $6, $7::timestamptz, $8, $9)
           ON CONFLICT (id) DO UPDATE SET duplicates = w.duplicates + 1
           RETURNING (xmax = 0) AS fresh)
         SELECT fresh FROM e",
        &[
            id.as_str().into(),
            user.as_str().into(),
            kind.as_str().into(),
            s("/entity/id").into(),
            s("/entity/type").into(),
            s("/data/parent/id").into(),
            s("/timestamp").into(),
            event.get("attempt_number").and_then(|n| n.as_i64()).map(|n| n as i32).into(),
            JsonB(event.clone()).into(),
        ],
    )?
    .unwrap_or(false);
    Spi::run_with_args(
        "UPDATE notion_sync.webhook_secrets
            SET verified_at = coalesce(verified_at, now()), last_event_at = now(),
                subscription_id = coalesce($2, subscription_id)
          WHERE user_id = $1",
        &[user.as_str().into(), s("/subscription_id").into()],
    )?;
    if !inserted {
        return Ok(json!({"status": "duplicate", "id": id, "type": kind}));
    }
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, shmem::wake_worker);
    Ok(json!({"status": "accepted", "id": id, "type": kind}))
}

/// After this many failed attempts an event ends `failed` (backoff 2, 4, 8, 16 s between them).
const MAX_ATTEMPTS: i32 = 5;

/// Applies one queued event: Ok(Some(note)) when handled, Ok(None) to try again shortly (its
/// database is being synced). A database event starts an incremental sync, a job of `jobs`.
pub fn apply(
    ev: &Event,
    runs: &mut Runs<'static>,
    interrupt: &'static Interrupt,
) -> Result<Option<String>, String> {
    let entity = ev.entity.as_deref().unwrap_or_default();
    let page = |content| {
        sync::apply_page(&ev.user, entity, content, Txn::PerBatch, interrupt)
            .map(Some)
            .map_err(|e| e.to_string())
    };
    match action(&ev.kind) {
        Action::Page { content } => page(content),
        // Notion is asked whether the page is in trash: a forged or stale event changes nothing.
        Action::PageDeleted => page(false),
        Action::Database => sync_database(ev, entity, runs, interrupt),
        Action::Ignore => Ok(Some(format!("ignored: {} is not used", ev.kind))),
    }
}

/// A `data_source.*` / `database.*` event: an incremental sync of its database.
fn sync_database(
    ev: &Event,
    entity: &str,
    runs: &mut Runs<'static>,
    interrupt: &'static Interrupt,
) -> Result<Option<String>, String> {
    let (user, kind) = (ev.user.as_str(), ev.kind.as_str());
    // A data source event names the data source; its parent is the database.
    let ids: Vec<&str> = [Some(entity), ev.parent.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let found = sync::database_for_event(user, &ids, Txn::PerBatch, interrupt)
        .map_err(|e| e.to_string())?;
    let Some(db) = found else {
        return Ok(Some(format!(
            "ignored: no registered database for {kind} on {entity}"
        )));
    };
    if runs.busy(user, &db) {
        return Ok(None);
    }
    // The schema changed: typed views follow at once (an incremental sync does not read it).
    if kind == "data_source.schema_updated" {
        sync::refresh_typed_views(user, &db, Txn::PerBatch, interrupt)
            .map_err(|e| e.to_string())?;
    }
    // Its data sources are read on a helper thread: the scheduler goes on meanwhile.
    let started = SyncRequest::new(user, &db, None, Mode::Incremental, None, Trigger::Webhook)
        .and_then(|req| runs.open(&req, interrupt));
    match started {
        Ok(Ok(id)) => Ok(Some(format!("incremental sync started (run {id})"))),
        Ok(Err(o)) => Ok(Some(format!(
            "sync run {} ended at once: {}",
            o.run_id.unwrap_or_default(),
            o.status.as_str()
        ))),
        Err(e) => Err(e.to_string()),
    }
}

/// How an attempt ended, from what `apply` returned (an ERROR it raised comes as `Err`).
pub fn settled(ev: &Event, result: Result<Option<String>, String>) -> Settled {
    match result {
        Ok(None) => Settled::Later,
        Ok(Some(note)) if note.starts_with("ignored") => Settled::Ignored(note),
        Ok(Some(note)) => Settled::Done(note),
        Err(e) if ev.attempts + 1 >= MAX_ATTEMPTS => Settled::Failed(e),
        Err(e) => Settled::Retry(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> Value {
        serde_json::from_str(include_str!(
            "../tests/fixtures/webhook-signature-test-vector.json"
        ))
        .unwrap()
    }

    #[test]
    fn notion_documented_example_verifies() {
        let v = vector();
        let (body, key) = (
            v["raw_body"].as_str().unwrap(),
            v["verification_token"].as_str().unwrap(),
        );
        let want = v["expected_header_value"].as_str().unwrap();
        assert_eq!(signature(key, body.as_bytes()), want);
        assert!(verify(key, body.as_bytes(), want));
    }

    #[test]
    fn anything_but_the_exact_body_and_key_is_rejected() {
        let v = vector();
        let (body, key) = (
            v["raw_body"].as_str().unwrap(),
            v["verification_token"].as_str().unwrap(),
        );
        let sig = signature(key, body.as_bytes());
        // Re-serialised JSON (a space after the colon), as a framework's JSON parser would give it.
        let reserialised = body.replace("\":\"", "\": \"");
        assert!(!verify(key, reserialised.as_bytes(), &sig));
        let mut flipped = body.as_bytes().to_vec();
        flipped[5] ^= 1;
        assert!(!verify(key, &flipped, &sig));
        assert!(!verify("secret_wrong", body.as_bytes(), &sig));
        assert!(!verify(key, body.as_bytes(), ""));
        assert!(!verify(key, body.as_bytes(), &sig[7..])); // no "sha256="
        assert!(!verify(key, body.as_bytes(), "sha256=zz"));
        assert!(!verify(key, body.as_bytes(), &sig[..sig.len() - 2])); // truncated
    }

    #[test]
    fn event_types_map_to_actions() {
        assert_eq!(
            action("page.content_updated"),
            Action::Page { content: true }
        );
        assert_eq!(
            action("page.properties_updated"),
            Action::Page { content: false }
        );
        assert_eq!(action("page.deleted"), Action::PageDeleted);
        assert_eq!(action("data_source.schema_updated"), Action::Database);
        assert_eq!(action("comment.created"), Action::Ignore);
    }

    #[test]
    fn a_failing_event_is_retried_until_its_fifth_attempt() {
        let ev = |attempts| Event {
            id: "e".into(),
            user: "alice".into(),
            kind: "page.created".into(),
            entity: None,
            parent: None,
            attempts,
        };
        assert_eq!(settled(&ev(0), Ok(None)), Settled::Later);
        assert_eq!(
            settled(&ev(0), Ok(Some("ignored: x".into()))),
            Settled::Ignored("ignored: x".into())
        );
        assert_eq!(settled(&ev(3), Err("e".into())), Settled::Retry("e".into()));
        assert_eq!(
            settled(&ev(4), Err("e".into())),
            Settled::Failed("e".into())
        );
    }
}
