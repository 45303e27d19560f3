#!/usr/bin/env bash
# The demo (README: `make demo`): a throwaway cluster with notion_sync preloaded, the fake Notion
# serving the sample workspace, a sync, a character lookup, a search and the status. Cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
export PG_MAJOR="${PG_MAJOR:-15}"
bash scripts/setup.sh
PGBIN="/usr/lib/postgresql/$PG_MAJOR/bin"
TARGET="${CARGO_TARGET_DIR:-target}"
PORT="${DEMO_PG_PORT:-55432}"
FAKE_PORT="${DEMO_FAKE_PORT:-17811}"
RUN="$(pwd)/.run"; DATA="$RUN/demo-cluster"
mkdir -p "$RUN"; chmod 755 "$RUN"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

echo "== demo: building (first run compiles the extension: a few minutes)"
cargo build --release -q -p fake_notion
cargo pgrx install --release --pg-config "$PGBIN/pg_config" >"$RUN/demo-install.log" 2>&1 || { tail -30 "$RUN/demo-install.log"; exit 1; }

cleanup() {
  [ -n "${FAKE_PID:-}" ] && kill "$FAKE_PID" 2>/dev/null || true
  [ -d "$DATA" ] && as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$DATA"
  echo "== demo: stopped and cleaned up"
}
trap cleanup EXIT

"$TARGET/release/fake_notion" --port "$FAKE_PORT" --workspace tests/workspace/sample.json >"$RUN/demo-fake.log" 2>&1 &
FAKE_PID=$!

rm -rf "$DATA"; mkdir -p "$DATA"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DATA"
as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust --locale=C.UTF-8 >/dev/null
cat >>"$DATA/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DATA'
shared_preload_libraries = 'notion_sync'
notion_sync.database = 'postgres'
notion_sync.api_url = 'http://127.0.0.1:$FAKE_PORT/v1'
notion_sync.requests_per_second = 3
CONF
as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w start >/dev/null
PSQL=(psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -P pager=off)

run() { printf '\n\033[1m%s\033[0m\n' "$1"; shift; "${PSQL[@]}" -c "$@"; }
"${PSQL[@]}" -c "CREATE EXTENSION notion_sync CASCADE"
"${PSQL[@]}" -c "SELECT notion_sync.set_notion_token('alice', 'ntn_demo_alice')"
run "0. Discovery: every database alice's token can see (before registering any):" \
  "SELECT title, database_id, data_source_id, property_count, in_trash, registered FROM notion_sync.discover_databases('alice')"
"${PSQL[@]}" >/dev/null <<'SQL'
-- The application's own table: Clients goes here through a column map (README "Your own tables").
CREATE TABLE public.clients (
  id serial PRIMARY KEY, notion_id uuid UNIQUE, name text NOT NULL, slug varchar(80), contact_email text,
  products_services text[], monthly_fee numeric(10, 2), active boolean, client_page_info text,
  archived boolean NOT NULL DEFAULT false, notes_from_app text);
SELECT notion_sync.register_database('alice', 'a1b2c3d4-0000-4000-8000-0000000000c1', 'Characters');
SELECT notion_sync.register_database('alice', 'a1b2c3d4-0000-4000-8000-0000000000c2', 'Worlds', '0 */6 * * *', 'Europe/Paris');
SELECT notion_sync.register_database('alice', 'a1b2c3d4-0000-4000-8000-0000000000c3', 'Stories');
SELECT notion_sync.register_database('alice', 'a1b2c3d4-0000-4000-8000-0000000000c4', 'Chat Sessions');
SELECT notion_sync.register_database('alice', 'a1b2c3d4-0000-4000-8000-0000000000c5', 'Clients', '0 0 */2 9-18 * * 1-5', 'America/New_York',
  p_target => 'public.clients',
  p_columns => '{"notion_id": "@id", "name": "Name", "slug": "@slug", "contact_email": "Email",
                 "products_services": "Products/Services", "monthly_fee": "Monthly fee", "active": "Active",
                 "client_page_info": "@content", "archived": "@in_trash"}',
  p_searchable => true);
SELECT notion_sync.register_database('alice', 'https://www.notion.so/acme/Reading-List-a1b2c3d400004000800000000000c0de?v=1', 'Reading List', 'manual');
SQL

printf '\n\033[1m%s\033[0m\n' "1. Sync every registered database (fake Notion at 3 requests/s, like the real one); meanwhile another session watches notion_sync.sync_progress:"
"${PSQL[@]}" -c "SELECT database_name, mode, status, total, created, updated, skipped, deleted, duration_ms FROM notion_sync.sync_all_notion_databases('alice', 'full')" >"$RUN/demo-sync.out" &
SYNC_PID=$!
for _ in 1 2 3; do
  sleep 0.7
  "${PSQL[@]}" -c "SELECT database_id, phase, pages_read, written, requests, requests_per_s, elapsed_s FROM notion_sync.sync_progress" || true
done
wait "$SYNC_PID"
cat "$RUN/demo-sync.out"
run "2. Sync again: unchanged pages cost nothing:" \
  "SELECT database_name, status, total, skipped, duration_ms FROM notion_sync.sync_all_notion_databases('alice')"
run "3. Character lookup (typo-tolerant): get_notion_character('alice', 'aria stromwind')" \
  "SELECT name, match_score, left(description, 50) AS description, properties->'Role'->>'value' AS role FROM notion_sync.get_notion_character('alice', 'aria stromwind')"
run "4. Search across all sync tables (and searchable tables of your own): search_notion_content('alice', 'compass or bakery')" \
  "SELECT source_table, title, round(relevance_score::numeric, 3) AS score, left(content, 70) AS snippet FROM notion_sync.search_notion_content('alice', 'compass or bakery')"
run "4b. A typed view: one column per Notion property, typed from the schema (create_typed_view):" \
  "SELECT notion_sync.create_typed_view('alice', 'a1b2c3d4-0000-4000-8000-0000000000c1', 'characters_v') AS view"
run "    SELECT \"Name\", \"Role\", \"Age\", \"Traits\" FROM characters_v ORDER BY \"Age\"" \
  "SELECT \"Name\", \"Role\", \"Age\", \"Traits\" FROM characters_v ORDER BY \"Age\""
run "5. Your own table: Clients synced into public.clients through a column map, values typed:" \
  "SELECT name, slug, contact_email, products_services, monthly_fee, active, left(client_page_info, 40) AS client_page_info FROM public.clients ORDER BY name"
run "6. Status: notion_sync.status('alice')" \
  "SELECT key AS sync_table, value->>'total' AS pages, value->>'with_content' AS with_content, value->>'with_email' AS with_email, value->>'last_updated' AS last_updated FROM jsonb_each(notion_sync.status('alice')->'tables')"
run "7. Run history:" \
  "SELECT run_id, database_name, trigger, mode, status, total, created, skipped, http_requests, duration_ms FROM notion_sync.sync_runs ORDER BY run_id"
run "8. The background worker runs each database on its schedule, in its time zone (notion_sync.sync_status):" \
  "SELECT database_name, schedule, timezone, next_run, last_status, last_trigger, rows FROM notion_sync.sync_status ORDER BY next_run NULLS LAST"

echo
echo "The demo cluster is running. Connect with:"
echo "  psql -h 127.0.0.1 -p $PORT -U postgres"
echo "Fake Notion admin API: http://127.0.0.1:$FAKE_PORT/admin/state"
if [ -t 0 ]; then
  read -r -p "Press Enter to stop the demo and remove the cluster... " _
fi
