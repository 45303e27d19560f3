-- What each public function and view is for, in the catalog (\df+, \dv+). The same statements
-- close the upgrade script that brings 0.2.0, so a fresh install and an upgrade describe alike.
COMMENT ON FUNCTION notion_sync.set_notion_token(text, text) IS
  'Stores (or replaces) the Notion integration token of an application user.';
COMMENT ON FUNCTION notion_sync.set_webhook_secret(text, text) IS
  'Stores the verification token of a user''s Notion webhook subscription; the signature of every event is checked against it.';
COMMENT ON FUNCTION notion_sync.handle_webhook(text, text, text) IS
  'One webhook delivery: the raw body and its X-Notion-Signature header. Verifies, queues the event for the worker and returns at once.';
COMMENT ON FUNCTION notion_sync.webhook_health() IS
  'Webhook subscriptions (without secrets), queue depth, oldest pending age, counts of applied, ignored, failed and rejected events, last error.';
COMMENT ON FUNCTION notion_sync.next_run(text, text, timestamptz) IS
  'When a schedule (cron in an IANA time zone) runs next after p_after; NULL for manual.';
COMMENT ON FUNCTION notion_sync.register_database(text, text, text, text, text, regclass, jsonb, boolean) IS
  'Registers a Notion database of a user for syncing on a schedule, into its sync table or (p_target, p_columns) a table of the caller''s own.';
COMMENT ON FUNCTION notion_sync.register_pages(text, text, text, text, int) IS
  'Registers a page and its sub-pages (or, without a root, every page outside databases the token can see) for syncing into notion_pages_sync on a schedule.';
COMMENT ON FUNCTION notion_sync.unregister_database(text, text) IS
  'Stops syncing a database; rows already synced stay.';
COMMENT ON FUNCTION notion_sync.sync_notion_database(text, text, text, text, int) IS
  'Syncs one Notion database now (full or incremental, optionally the last p_hours_back hours) and returns the run''s counts and errors.';
COMMENT ON FUNCTION notion_sync.sync_all_notion_databases(text, text) IS
  'Syncs every registered database (of one user, or all) now; one result per database, a failing one does not stop the others.';
COMMENT ON FUNCTION notion_sync.file_url(text, text, text, int) IS
  'A working URL of a file Notion hosts: the stored one while it is valid, else read again from Notion.';
COMMENT ON FUNCTION notion_sync.get_notion_character(text, text, int) IS
  'Characters by name: exact, prefix, substring, then typo-tolerant matches, best first, at most p_limit (NULL for all). Substring matches only when no name equals or starts with the query, typo-tolerant ones only when none equals, starts with or contains it (p_limit NULL: all tiers).';
COMMENT ON FUNCTION notion_sync.search_notion_content(text, text, int) IS
  'Full-text search (websearch syntax) across the sync tables and searchable tables of the user''s own, titles ranked above bodies, with snippets.';
COMMENT ON FUNCTION notion_sync.status(text) IS
  'Per table totals, the most recently updated pages and the most recent runs, of one user or all.';
COMMENT ON FUNCTION notion_sync.user_id_for_role(name) IS
  'The application user a database role reads as: notion_sync.role_users, else Supabase''s auth.uid() for its API roles.';
COMMENT ON FUNCTION notion_sync.current_user_id() IS
  'The application user of the current role (row-level security of the synced tables uses it).';
COMMENT ON FUNCTION notion_sync.normalize_notion_id(text) IS
  'A Notion id with or without dashes, or a Notion URL, in the dashed lowercase form the API returns.';
COMMENT ON FUNCTION notion_sync.target_table_for(text) IS
  'The sync table a database name goes to: Characters, Worlds, Stories, Chat Sessions, else notion_pages_sync.';
COMMENT ON VIEW notion_sync.sync_status IS
  'Per registered database: schedule, next run, last run and its status, lag since the last successful run, last error, watermark, rows.';
COMMENT ON FUNCTION notion_sync.discover_databases(text) IS
  'Every database and data source the user''s token can see (Notion search, all pages of it), trashed ones flagged, and whether each is registered.';
COMMENT ON FUNCTION notion_sync.create_typed_view(text, text, text) IS
  'Creates a view with one typed column per Notion property over a database''s sync table; re-created when the schema changes.';
COMMENT ON VIEW notion_sync.sync_progress IS
  'The syncs running now (from shared memory, so SQL calls show too): pages done, written, skipped, failed, requests, rate, elapsed, estimated remaining.';
COMMENT ON VIEW notion_sync.schedulers IS
  'One row per database of the cluster the launcher serves: its scheduler''s pid, state (starting, running, waiting, no extension, stopped, restarting, no worker slot) and since when, syncs running, Notion requests in flight and waiting.';
