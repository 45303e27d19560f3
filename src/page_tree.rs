//! Pages outside databases (`register_pages`): a page and its sub-pages, or every page outside
//! databases the token can see, mirrored into `notion_pages_sync` with their parent and path.
//!
//! A page's sub-pages are the `child_page` blocks of its body (the block id is the sub-page's id),
//! so reading a page's blocks gives its body and its sub-pages at once: one request per page.
//! - A full run walks the tree from its root (the root's page object, then each sub-page made from
//!   its `child_page` block), level by level to `page_tree_depth`; a complete walk marks in trash
//!   what it no longer found, as a complete scan of a database does.
//! - An incremental run asks Notion's search for pages, most recently edited first, down to the
//!   watermark (less the overlap), and reads those whose parent is in the tree (and new sub-pages
//!   of those). Search is not exhaustive and indexes with a delay, so the daily full walk stays the
//!   reference.
//!
//! Everything here that talks to Notion runs on helper threads (no Postgres); `tree_places` is the
//! SPI lookup of where stored pages sit.

use crate::notion::client::{ApiError, Client, Stats};
use crate::notion::pool::{Flight, Lane};
use crate::storage::{Place, Result};
use pgrx::prelude::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// The root id of "every page outside databases" (`register_pages` without a root).
pub const WORKSPACE: &str = "00000000-0000-0000-0000-000000000000";

/// Pages read side by side in a batch of the walk, and pages per batch.
const READERS: usize = 6;
const BATCH: usize = 30;

/// A page of the tree to read.
pub struct Item {
    pub page: Value,
    pub place: Place,
    pub depth: u32,
}

/// A page read: its body and the sub-pages its blocks name.
pub struct Walked {
    pub page: Value,
    pub body: String,
    pub place: Place,
    pub depth: u32,
    pub subpages: Vec<Value>,
}

/// A page that could not be read: its id, its edit time (epoch ms; the watermark stays before
/// it), the error.
pub type Unread = (String, Option<i64>, ApiError);

/// A batch read, each page or why not, and the requests it took.
pub type WalkOut = (Vec<std::result::Result<Walked, Unread>>, Stats);

/// A page's title from its page object (`properties.title`) or its `child_page` block.
pub fn title(page: &Value) -> String {
    if let Some(t) = page.pointer("/child_page/title").and_then(|t| t.as_str()) {
        return t.to_string();
    }
    let props = page.get("properties").and_then(|p| p.as_object());
    props
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|v| v["type"] == "title")
        .flat_map(|v| v["title"].as_array().cloned().unwrap_or_default())
        .filter_map(|i| {
            i.get("plain_text")
                .and_then(|t| t.as_str())
                .map(String::from)
        })
        .collect()
}

/// The page object a `child_page` block stands for: id, times, parent and title are the page's.
pub fn page_from_block(block: &Value) -> Value {
    let id = block.get("id").cloned().unwrap_or(Value::Null);
    let url = id
        .as_str()
        .map(|i| format!("https://www.notion.so/{}", i.replace('-', "")));
    json!({
        "object": "page", "id": id,
        "created_time": block.get("created_time"), "last_edited_time": block.get("last_edited_time"),
        "parent": block.get("parent"), "in_trash": block.get("in_trash").cloned().unwrap_or(json!(false)),
        "url": url,
        "properties": {"title": {"id": "title", "type": "title",
            "title": [{"type": "text", "plain_text": title(block), "text": {"content": title(block)}}]}},
    })
}

/// The parent page id of a page object or block (None under the workspace, a database or a block).
pub fn parent_page(page: &Value) -> Option<String> {
    page.pointer("/parent/page_id")
        .and_then(|p| p.as_str())
        .map(String::from)
}

/// Whether a page sits at the top of the workspace (not under a page, a database or a block).
pub fn top_level(page: &Value) -> bool {
    page.pointer("/parent/type").and_then(|t| t.as_str()) == Some("workspace")
}

/// Whether a page object sits in a database (search gives those too).
pub fn in_database(page: &Value) -> bool {
    matches!(
        page.pointer("/parent/type").and_then(|t| t.as_str()),
        Some("database_id" | "data_source_id")
    )
}

/// Where a sub-page of `parent` sits.
pub fn child_place(parent: &Value, place: &Place) -> Place {
    let mut path = place.path.clone();
    path.push(title(parent));
    Place {
        parent: parent.get("id").and_then(|i| i.as_str()).map(String::from),
        path,
    }
}

/// The walk of one run.
pub struct Walk {
    pub max_depth: u32,
    /// Block levels read for a body (at least 1: the sub-pages are among the first).
    pub content_depth: u32,
    pub frontier: VecDeque<Item>,
    /// Incremental: pages edited from then on (epoch ms) are read, found through search.
    pub since_ms: Option<i64>,
    pub cursor: Option<String>,
    pub searched: bool,
    /// Pages queued so far: each is read once per run.
    queued: HashSet<String>,
}

impl Walk {
    pub fn new(
        roots: Vec<Value>,
        max_depth: u32,
        content_depth: u32,
        since_ms: Option<i64>,
    ) -> Walk {
        let mut walk = Walk {
            max_depth,
            content_depth: content_depth.max(1),
            frontier: VecDeque::new(),
            since_ms,
            cursor: None,
            searched: since_ms.is_none(),
            queued: HashSet::new(),
        };
        for page in roots {
            walk.queue(page, Place::default(), 0);
        }
        walk
    }

    /// Adds a page to read, unless this run has it already.
    pub fn queue(&mut self, page: Value, place: Place, depth: u32) {
        let id = page.get("id").and_then(|i| i.as_str()).unwrap_or_default();
        if self.queued.insert(id.to_string()) {
            self.frontier.push_back(Item { page, place, depth });
        }
    }

    pub fn done(&self) -> bool {
        self.frontier.is_empty() && self.searched
    }

    /// The next batch of the frontier, read on helper threads.
    pub fn read_next(&mut self, client: &Client, lane: &Arc<Lane>) -> Option<Flight<WalkOut>> {
        if self.frontier.is_empty() {
            return None;
        }
        let n = self.frontier.len().min(BATCH);
        let items: Vec<Item> = self.frontier.drain(..n).collect();
        let depth = self.content_depth;
        let clients: Vec<Client<'static>> = (0..items.len().min(READERS))
            .map(|_| client.detached(lane))
            .collect();
        Some(Flight::spawn(move || read_batch(clients, items, depth)))
    }

    /// A page read: its sub-pages join the frontier while under `max_depth` (in an incremental
    /// walk only those edited since the watermark: the others are stored already).
    pub fn note_subpages(&mut self, w: &Walked) {
        if w.depth >= self.max_depth {
            return;
        }
        let place = child_place(&w.page, &w.place);
        for block in &w.subpages {
            let edited = block
                .get("last_edited_time")
                .and_then(|t| t.as_str())
                .and_then(ms);
            if let (Some(since), Some(e)) = (self.since_ms, edited) {
                if e < since {
                    continue;
                }
            }
            self.queue(page_from_block(block), place.clone(), w.depth + 1);
        }
    }
}

fn ms(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// On a helper thread: reads each item's blocks (body and sub-pages), several side by side.
fn read_batch(clients: Vec<Client<'static>>, items: Vec<Item>, depth: u32) -> WalkOut {
    let n = items.len();
    let work = Mutex::new(items.into_iter().enumerate().collect::<VecDeque<_>>());
    let out = Mutex::new((0..n).map(|_| None).collect::<Vec<_>>());
    let stats = Mutex::new(Stats::default());
    std::thread::scope(|s| {
        for mut client in clients {
            let (work, out, stats) = (&work, &out, &stats);
            s.spawn(move || {
                loop {
                    let next = work.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                    let Some((i, item)) = next else { break };
                    let id = item.page.get("id").and_then(|v| v.as_str()).unwrap_or("");
                    let id = id.to_string();
                    let edited = item
                        .page
                        .get("last_edited_time")
                        .and_then(|t| t.as_str())
                        .and_then(ms);
                    let r = match client.page_text_and_subpages(&id, depth) {
                        Ok((body, subpages)) => Ok(Walked {
                            page: item.page,
                            body,
                            place: item.place,
                            depth: item.depth,
                            subpages,
                        }),
                        Err(e) => Err((id, edited, e)),
                    };
                    out.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                }
                stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .add(client.stats);
            });
        }
    });
    let results = out.into_inner().unwrap_or_default();
    let results = results.into_iter().flatten().collect();
    (results, stats.into_inner().unwrap_or_default())
}

/// What a page tree's run starts from, on a helper thread: the root's page object (the title is
/// the tree's name), or for the workspace every top-level page search finds (a full run only).
pub fn roots(
    client: &mut Client,
    root: &str,
    full: bool,
) -> std::result::Result<(String, Vec<Value>), ApiError> {
    if root != WORKSPACE {
        let page = client.get(&format!("/pages/{root}"))?;
        return Ok((title(&page), vec![page]));
    }
    let mut out = vec![];
    let mut cursor: Option<String> = None;
    if !full {
        return Ok(("Workspace pages".into(), out));
    }
    loop {
        let mut v = client.search_pages(cursor.as_deref())?;
        if let Some(Value::Array(a)) = v.get_mut("results").map(Value::take) {
            out.extend(a.into_iter().filter(|p| {
                p.pointer("/parent/type").and_then(|t| t.as_str()) == Some("workspace")
                    && p.get("in_trash") != Some(&Value::Bool(true))
            }));
        }
        cursor = crate::notion::client::next_cursor(&v);
        if cursor.is_none() {
            break;
        }
    }
    Ok(("Workspace pages".into(), out))
}

/// One page of search results in an incremental walk: the pages edited since the watermark whose
/// parent is in the tree (or, for the workspace, at its top) join the frontier. Returns whether
/// search has more to give (false once a result is older than the watermark).
pub fn take_search(walk: &mut Walk, resp: &Value, user: &str, tree: &str) -> Result<bool> {
    let since = walk.since_ms.unwrap_or(i64::MIN);
    let results = resp.get("results").and_then(|r| r.as_array());
    let mut fresh = vec![];
    let mut older = false;
    for p in results.into_iter().flatten() {
        let edited = p
            .get("last_edited_time")
            .and_then(|t| t.as_str())
            .and_then(ms);
        if edited.is_some_and(|e| e < since) {
            older = true;
            break;
        }
        if !in_database(p) && p.get("in_trash") != Some(&Value::Bool(true)) {
            fresh.push(p.clone());
        }
    }
    // Where a page goes is decided by its current parent: only parents are looked up.
    let ids: Vec<String> = fresh.iter().filter_map(parent_page).collect();
    let stored = tree_places(user, tree, &ids)?;
    for page in fresh {
        let id = page["id"].as_str().unwrap_or_default().to_string();
        let parent = parent_page(&page);
        // Where it is now decides: under a parent of the tree (it may have moved there), the
        // tree's root, a top-level page of the workspace's tree; else it is not (or no longer) in
        // the tree, and the next full walk marks it.
        let item = match parent.as_ref().and_then(|p| stored.get(p)) {
            Some(p) => {
                let mut path = p.place.path.clone();
                path.push(p.title.clone());
                Some((Place { parent, path }, p.depth + 1))
            }
            None if id == tree || (tree == WORKSPACE && top_level(&page)) => {
                Some((Place::default(), 0))
            }
            None => None,
        };
        if let Some((place, depth)) = item.filter(|(_, d)| *d <= walk.max_depth) {
            walk.queue(page, place, depth);
        }
    }
    walk.cursor = crate::notion::client::next_cursor(resp);
    Ok(!older && walk.cursor.is_some())
}

/// A stored page of a tree.
pub struct StoredPage {
    pub place: Place,
    pub depth: u32,
    pub title: String,
}

/// Where the stored pages among `ids` sit in the tree `tree` of `user`.
pub fn tree_places(user: &str, tree: &str, ids: &[String]) -> Result<HashMap<String, StoredPage>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT notion_page_id, notion_parent_id, coalesce(path, '{}'), coalesce(title, '')
               FROM notion_sync.notion_pages_sync
              WHERE user_id = $1 AND notion_database_id = $2 AND notion_page_id = ANY($3) AND NOT in_trash",
            None,
            &[user.into(), tree.into(), ids.to_vec().into()],
        )?;
        let mut out = HashMap::new();
        for row in rows {
            let id = row.get::<String>(1)?.unwrap_or_default();
            let path = row.get::<Vec<String>>(3)?.unwrap_or_default();
            let depth = path.len() as u32;
            let place = Place {
                parent: row.get::<String>(2)?,
                path,
            };
            let title = row.get::<String>(4)?.unwrap_or_default();
            out.insert(
                id,
                StoredPage {
                    place,
                    depth,
                    title,
                },
            );
        }
        Ok(out)
    })
}

/// The page tree a page outside databases belongs to, for a webhook: the tree of its stored row,
/// else of its stored parent, else the tree whose root it is, else the workspace's when it is a
/// top-level page. Returns (tree id, its place, its depth, the tree's depth).
pub fn tree_of(
    user: &str,
    page_id: &str,
    parent: Option<&str>,
) -> Result<Option<(String, Place, u32, u32)>> {
    let row = Spi::connect(|client| {
        let rows = client.select(
            "SELECT d.database_id, p.notion_page_id = $2, p.notion_page_id, coalesce(p.path, '{}'),
                    coalesce(p.title, ''), p.notion_parent_id, d.page_tree_depth
               FROM notion_sync.notion_pages_sync p
               JOIN notion_sync.databases d
                 ON d.user_id = p.user_id AND d.database_id = p.notion_database_id AND d.page_tree_depth IS NOT NULL
              WHERE p.user_id = $1 AND p.notion_page_id IN ($2, $3)
              ORDER BY p.notion_page_id = $2 DESC LIMIT 1",
            None,
            &[user.into(), page_id.into(), parent.into()],
        )?;
        let Some(r) = rows.into_iter().next() else {
            return Ok::<_, crate::error::SyncError>(None);
        };
        let tree = r.get::<String>(1)?.unwrap_or_default();
        let own = r.get::<bool>(2)?.unwrap_or(false);
        let path = r.get::<Vec<String>>(4)?.unwrap_or_default();
        let max = r.get::<i32>(7)?.unwrap_or(0).max(0) as u32;
        Ok(Some(if own {
            let depth = path.len() as u32;
            let place = Place {
                parent: r.get::<String>(6)?,
                path,
            };
            (tree, place, depth, max)
        } else {
            let mut path = path;
            path.push(r.get::<String>(5)?.unwrap_or_default());
            let depth = path.len() as u32;
            let place = Place {
                parent: parent.map(String::from),
                path,
            };
            (tree, place, depth, max)
        }))
    })?;
    if row.is_some() {
        return Ok(row);
    }
    // A root of its own tree, or a top-level page under the workspace's tree.
    let root = match parent {
        None => Spi::get_one_with_args::<String>(
            "SELECT database_id FROM notion_sync.databases WHERE user_id = $1 AND page_tree_depth IS NOT NULL
                AND database_id IN ($2, $3) ORDER BY database_id = $2 DESC LIMIT 1",
            &[user.into(), page_id.into(), WORKSPACE.into()],
        )?,
        Some(_) => Spi::get_one_with_args::<String>(
            "SELECT database_id FROM notion_sync.databases WHERE user_id = $1 AND page_tree_depth IS NOT NULL
                AND database_id = $2",
            &[user.into(), page_id.into()],
        )?,
    };
    let depth = |tree: &str| {
        Spi::get_one_with_args::<i32>(
            "SELECT page_tree_depth FROM notion_sync.databases WHERE user_id = $1 AND database_id = $2",
            &[user.into(), tree.into()],
        )
    };
    match root {
        Some(tree) => {
            let max = depth(&tree)?.unwrap_or(0).max(0) as u32;
            Ok(Some((tree, Place::default(), 0, max)))
        }
        None => Ok(None),
    }
}
