"""SQL API on a real cluster with the library preloaded: SQLSTATEs, cancel, privileges, RLS, NOTIFY."""
import json
import threading
import time

import psycopg
import pytest
from psycopg import errors

CHARACTERS = "a1b2c3d4-0000-4000-8000-0000000000c1"


def test_library_is_preloaded_and_settings_exist(db):
    assert "notion_sync" in db.execute("SHOW shared_preload_libraries").fetchone()[0]
    assert db.execute("SHOW notion_sync.database").fetchone()[0] == "postgres"
    assert db.execute("SHOW notion_sync.notion_version").fetchone()[0] == "2025-09-03"


@pytest.mark.parametrize("sql,state", [
    (f"SELECT notion_sync.sync_notion_database('alice', '{CHARACTERS}', NULL, 'sideways')", "22023"),
    ("SELECT notion_sync.sync_notion_database('alice', 'not-a-database')", "22023"),
    (f"SELECT notion_sync.sync_notion_database('alice', '{CHARACTERS}', NULL, 'full', -1)", "22023"),
    (f"SELECT notion_sync.sync_notion_database('nobody', '{CHARACTERS}')", "28000"),
    (f"SELECT notion_sync.register_database('alice', '{CHARACTERS}', 'Characters', 'every day')", "22023"),
    (f"SELECT notion_sync.register_database('alice', '{CHARACTERS}', 'Characters', '* * * * *', 'Mars/Olympus')", "22023"),
])
def test_bad_arguments_have_real_sqlstates(db, sql, state):
    with pytest.raises(psycopg.Error) as e:
        db.execute(sql)
    assert e.value.sqlstate == state, e.value


def test_bad_token_and_unshared_database_say_what_to_do(db):
    db.execute("SELECT notion_sync.set_notion_token('alice', 'ntn_wrong')")
    with pytest.raises(psycopg.Error) as e:
        db.execute(f"SELECT notion_sync.sync_notion_database('alice', '{CHARACTERS}')")
    assert e.value.sqlstate == "28000"
    assert "set_notion_token" in str(e.value)
    db.execute("SELECT notion_sync.set_notion_token('alice', 'ntn_demo_limited')")
    with pytest.raises(psycopg.Error) as e:
        db.execute(f"SELECT notion_sync.sync_notion_database('alice', '{CHARACTERS}')")
    assert e.value.sqlstate == "42704"
    assert "not shared with the integration" in str(e.value)


def _slow_sync(cluster, fake, cancel):
    """Starts a sync against a server that answers after 10 s; `cancel(conn, pid)` stops it."""
    fake.admin("POST", "faults", {"faults": [{"kind": "slow", "delay_ms": 10000, "path": "/query"}]})
    conn = psycopg.connect(cluster["dsn"], autocommit=True)
    pid = conn.info.backend_pid
    box = {}

    def run():
        t0 = time.monotonic()
        try:
            conn.execute(f"SELECT notion_sync.sync_notion_database('alice', '{CHARACTERS}', 'Characters', 'full')")
        except psycopg.Error as e:
            box["error"] = e
        box["elapsed"] = time.monotonic() - t0

    th = threading.Thread(target=run)
    th.start()
    time.sleep(0.5)
    t_cancel = time.monotonic()
    cancel(conn, pid)
    th.join(15)
    box["after_cancel"] = time.monotonic() - t_cancel
    conn.close()
    return box


def test_pg_cancel_backend_stops_a_sync_within_a_second(cluster, fake, db):
    box = _slow_sync(cluster, fake, lambda conn, pid: db.execute("SELECT pg_cancel_backend(%s)", (pid,)))
    print(f"cancel -> error in {box['after_cancel'] * 1000:.0f} ms")
    assert isinstance(box.get("error"), errors.QueryCanceled)
    assert box["after_cancel"] < 1.0
    assert db.execute("SELECT count(*) FROM notion_sync.notion_characters_sync").fetchone()[0] == 0


def test_statement_timeout_stops_a_sync(cluster, fake, db):
    fake.admin("POST", "faults", {"faults": [{"kind": "slow", "delay_ms": 10000, "path": "/query"}]})
    with psycopg.connect(cluster["dsn"], autocommit=True) as conn:
        conn.execute("SET statement_timeout = '700ms'")
        t0 = time.monotonic()
        with pytest.raises(errors.QueryCanceled):
            conn.execute(f"SELECT notion_sync.sync_notion_database('alice', '{CHARACTERS}', 'Characters', 'full')")
        assert time.monotonic() - t0 < 1.7
    assert db.execute("SELECT count(*) FROM notion_sync.notion_characters_sync").fetchone()[0] == 0


@pytest.fixture
def app_role(db, cluster):
    db.execute("DROP ROLE IF EXISTS ns_app_alice")
    db.execute("CREATE ROLE ns_app_alice LOGIN")
    db.execute("INSERT INTO notion_sync.role_users VALUES ('ns_app_alice', 'alice') ON CONFLICT DO NOTHING")
    conn = psycopg.connect(cluster["dsn"].replace("user=postgres", "user=ns_app_alice"), autocommit=True)
    yield conn
    conn.close()
    db.execute("DELETE FROM notion_sync.role_users WHERE role_name = 'ns_app_alice'")
    db.execute("DROP OWNED BY ns_app_alice")
    db.execute("DROP ROLE ns_app_alice")


def test_tokens_and_internals_are_closed_to_plain_roles(db, app_role):
    for sql in ["SELECT * FROM notion_sync.tokens",
                f"SELECT notion_sync.sync_notion_database('alice', '{CHARACTERS}')",
                f"SELECT notion_sync._sync_database('alice', '{CHARACTERS}', NULL, 'full', NULL, 'manual')",
                "SELECT notion_sync.set_notion_token('alice', 'x')"]:
        with pytest.raises(errors.InsufficientPrivilege):
            app_role.execute(sql)


def test_rls_shows_a_role_only_its_own_rows(db, app_role):
    db.execute("SELECT notion_sync.set_notion_token('bob', 'ntn_demo_alice')")
    db.execute(f"SELECT notion_sync.sync_notion_database('alice', '{CHARACTERS}', 'Characters', 'full')")
    db.execute(f"SELECT notion_sync.sync_notion_database('bob', '{CHARACTERS}', 'Characters', 'full')")
    assert db.execute("SELECT count(*) FROM notion_sync.notion_characters_sync").fetchone()[0] == 8
    assert app_role.execute("SELECT current_user").fetchone()[0] == "ns_app_alice"
    rows = app_role.execute("SELECT DISTINCT user_id FROM notion_sync.notion_characters_sync").fetchall()
    assert rows == [("alice",)]
    # Claims a plain role sets for itself change nothing.
    app_role.execute("""SET request.jwt.claims = '{"sub": "bob"}'""")
    rows = app_role.execute("SELECT DISTINCT user_id FROM notion_sync.notion_characters_sync").fetchall()
    assert rows == [("alice",)]


def test_a_committed_sync_notifies(cluster, db):
    with psycopg.connect(cluster["dsn"], autocommit=True) as listener:
        listener.execute("LISTEN notion_sync")
        db.execute(f"SELECT notion_sync.sync_notion_database('alice', '{CHARACTERS}', 'Characters', 'full')")
        got = next(listener.notifies(timeout=5, stop_after=1))
    payload = json.loads(got.payload)
    assert payload["database_id"] == CHARACTERS and payload["created"] == 4


def test_a_5xx_storm_is_retried(fake, db):
    fake.admin("POST", "faults", {"faults": [{"kind": "status", "status": 503, "count": 2, "path": "/query"}]})
    db.execute("SET notion_sync.max_retries = 3")
    r = db.execute(f"SELECT status, created FROM notion_sync.sync_notion_database('alice', '{CHARACTERS}', 'Characters', 'full')").fetchone()
    assert r == ("succeeded", 4)
    assert db.execute("SELECT retries FROM notion_sync.sync_runs ORDER BY run_id DESC LIMIT 1").fetchone()[0] == 2


def test_status_counts_content_email_and_recent_updates(db):
    db.execute("SELECT * FROM notion_sync.sync_notion_database('alice', 'a1b2c3d4-0000-4000-8000-0000000000c5',"
               " 'Clients', 'full')")
    st = db.execute("SELECT notion_sync.status('alice')").fetchone()[0]
    clients = st["tables"]["notion_pages_sync"]
    assert (clients["total"], clients["with_email"], clients["with_content"]) == (3, 2, 2)
    assert [r["table"] for r in st["recent_updates"]] == ["notion_pages_sync"] * 3
    assert st["last_runs"][0]["status"] == "succeeded" and st["last_runs"][0]["trigger"] == "manual"
    assert db.execute("SELECT notion_sync.status('nobody')").fetchone()[0]["tables"]["notion_pages_sync"]["total"] == 0


def test_two_sessions_share_one_request_budget_per_token(cluster, fake, db):
    """With the library preloaded the token bucket is in shared memory: two sessions syncing with the
    same token together stay within one budget (each with its own bucket would go twice as fast)."""
    import datetime
    import threading

    ds = "d5000000-0000-4000-8000-00000000c0de"
    fake.admin("POST", f"data_sources/{ds}/generate", {"count": 1000, "created_time": "2026-01-01T00:00:00Z"})
    db.execute("SELECT notion_sync.set_notion_token('bob', 'ntn_demo_alice')")
    fake.admin("DELETE", "requests")
    rps = 4

    def sync(user):
        with psycopg.connect(cluster["dsn"], autocommit=True) as c:
            c.execute(f"SET notion_sync.requests_per_second = {rps}")
            c.execute("SET notion_sync.content_depth = 0")
            r = c.execute("SELECT status FROM notion_sync.sync_notion_database(%s,"
                          " 'a1b2c3d4-0000-4000-8000-00000000c0de', 'Reading List', 'full')", (user,)).fetchone()
            assert r == ("succeeded",)

    threads = [threading.Thread(target=sync, args=(u,)) for u in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times = sorted(datetime.datetime.fromisoformat(r["time"].replace("Z", "+00:00")) for r in fake.requests()
                   if r["path"].startswith("/v1/"))
    span = (times[-1] - times[0]).total_seconds()
    # A bucket of `rps` with a burst of `rps`: n requests need at least (n - rps) / rps seconds.
    floor = (len(times) - rps) / rps
    worst = max(sum(1 for u in times if 0 <= (u - t).total_seconds() < 1) for t in times)
    print(f"\nFIGURE 2 sessions, 1 token at {rps} rps: {len(times)} requests in {span:.1f} s "
          f"(one shared budget needs >= {floor:.1f} s), busiest second {worst} requests")
    assert span >= floor * 0.9


def test_trojan_functions_in_public_are_never_picked_up(db, app_role):
    """search_path attack: a role that may create objects in public shadows the functions and names
    the extension uses; nothing of ours calls them (SECURITY DEFINER ones pin search_path, the read
    functions too, everything is schema-qualified)."""
    db.execute("GRANT CREATE ON SCHEMA public TO ns_app_alice")
    db.execute(f"SELECT notion_sync.sync_notion_database('alice', '{CHARACTERS}', 'Characters', 'full')")
    trojan = "RETURNS {r} LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'trojan {n} called'; END$$"
    for name, args, ret in [("lower", "text", "text"), ("btrim", "text", "text"), ("strpos", "text, text", "int"),
                            ("starts_with", "text, text", "boolean"),
                            ("now", "", "timestamptz"), ("unnest", "text[]", "SETOF text"),
                            ("websearch_to_tsquery", "regconfig, text", "tsquery"), ("count", "text", "bigint")]:
        app_role.execute(f"CREATE FUNCTION public.{name}({args}) " + trojan.format(r=ret, n=name))
    app_role.execute("CREATE TABLE public.tokens (user_id text, token text)")
    app_role.execute("CREATE TABLE public.notion_characters_sync (name text)")
    app_role.execute("SET search_path = public, pg_catalog")
    assert app_role.execute("SELECT name FROM notion_sync.get_notion_character('alice', 'aria')").fetchone() == \
        ("Aria Stormwind",)
    assert app_role.execute("SELECT count(*) FROM notion_sync.search_notion_content('alice', 'storm')").fetchone()[0] > 0
    # The admin functions and the engine, called with the same search_path by a superuser.
    db.execute("CREATE FUNCTION public.jsonb_to_recordset(jsonb) RETURNS SETOF record LANGUAGE plpgsql AS "
               "$$BEGIN RAISE EXCEPTION 'trojan jsonb_to_recordset called'; END$$")
    try:
        db.execute("SET search_path = public, pg_catalog")
        db.execute("SELECT notion_sync.set_notion_token('alice', 'ntn_demo_alice')")
        db.execute(f"SELECT notion_sync.register_database('alice', '{CHARACTERS}', 'Characters', 'manual')")
        r = db.execute(f"SELECT status FROM notion_sync.sync_notion_database('alice', '{CHARACTERS}', NULL, 'full')")
        assert r.fetchone() == ("succeeded",)
    finally:
        db.execute("RESET search_path")
        db.execute("DROP FUNCTION public.jsonb_to_recordset(jsonb)")


def test_secrets_stay_out_of_logs_views_and_settings(cluster, db, fake):
    """With log_statement = 'all', the documented safe way (bind parameters, and
    log_parameter_max_length = 0 for the role that sets secrets) keeps tokens and webhook secrets
    out of the server log; views, errors and settings never show them."""
    token, secret = "ntn_secret_token_9f8e7d", "secret_webhook_key_5a4b3c"
    db.execute("ALTER SYSTEM SET log_statement = 'all'")
    db.execute("SELECT pg_reload_conf()")
    log = cluster["data"] / "server.log"
    start = log.stat().st_size
    try:
        db.execute("DROP ROLE IF EXISTS ns_admin")
        db.execute("CREATE ROLE ns_admin LOGIN IN ROLE notion_sync_admin")
        db.execute("ALTER ROLE ns_admin SET log_parameter_max_length = 0")
        db.execute("ALTER ROLE ns_admin SET log_parameter_max_length_on_error = 0")
        with psycopg.connect(cluster["dsn"].replace("user=postgres", "user=ns_admin"), autocommit=True) as admin:
            admin.execute("SELECT notion_sync.set_notion_token(%s, %s)", ("carol", token))
            admin.execute("SELECT notion_sync.set_webhook_secret(%s, %s)", ("carol", secret))
            admin.execute("SELECT notion_sync.handle_webhook(%s, NULL, %s)",
                          (json.dumps({"verification_token": secret}), "carol"))
            # A sync with a token Notion rejects: the error names the user, not the token.
            with pytest.raises(psycopg.Error) as e:
                admin.execute(f"SELECT notion_sync.sync_notion_database('carol', '{CHARACTERS}', 'Characters')")
            assert token not in str(e.value)
            admin.execute(f"SELECT notion_sync.register_database('carol', '{CHARACTERS}', 'Characters', 'manual')")
            r = admin.execute("SELECT status, errors::text FROM notion_sync.sync_all_notion_databases('carol')")
            status, errs = r.fetchone()
            assert status == "failed" and token not in errs
            st = admin.execute("SELECT notion_sync.status()").fetchone()[0]
            assert st["last_runs"][0]["status"] == "failed"  # an admin sees every user's runs
            seen = json.dumps([st,
                               admin.execute("SELECT notion_sync.webhook_health()").fetchone()[0],
                               [list(map(str, r)) for r in admin.execute("SELECT * FROM notion_sync.sync_status")],
                               [list(map(str, r)) for r in admin.execute("SELECT * FROM notion_sync.sync_runs")],
                               admin.execute("SELECT json_agg(s) FROM pg_settings s").fetchone()[0]])
            for name in ("tokens", "webhook_secrets"):
                with pytest.raises(errors.InsufficientPrivilege):
                    admin.execute(f"SELECT * FROM notion_sync.{name}")
        time.sleep(0.5)
        with open(log, errors="replace") as f:
            f.seek(start)
            written = f.read()
        assert "set_notion_token" in written, "log_statement = 'all' did not log"
        for s in (token, secret):
            assert s not in written and s not in seen, s
    finally:
        db.execute("ALTER SYSTEM RESET log_statement")
        db.execute("SELECT pg_reload_conf()")
        db.execute("DROP OWNED BY ns_admin")
        db.execute("DROP ROLE IF EXISTS ns_admin")


def test_read_path_uses_its_indexes_at_100k_rows(db):
    from harness import fill_read_path, read_path_timings
    fill_read_path(db)
    plans = []
    db.add_notice_handler(lambda d: plans.append(d.message_primary))
    for s in ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
              "SET auto_explain.log_analyze = on", "SET auto_explain.log_timing = off",
              "SET auto_explain.log_nested_statements = on", "SET auto_explain.log_level = 'notice'"):
        db.execute(s)
    db.execute("SELECT * FROM notion_sync.search_notion_content('alice', 'compass -storm', 20)").fetchall()
    # No prefix match: every tier runs, the last two on the trigram index.
    db.execute("SELECT * FROM notion_sync.get_notion_character('alice', 'lantern 1a2b')").fetchall()
    lookups = "\n".join(plans)
    db.execute("SELECT * FROM notion_sync.get_notion_character('alice', NULL)").fetchall()
    db.execute("SET auto_explain.log_min_duration = -1")
    text = "\n".join(plans)
    ran = [line for line in text.splitlines() if "Seq Scan on notion_" in line and "never executed" not in line]
    assert not ran, text
    assert "notion_pages_sync_search_idx" in text and "notion_characters_sync_name_trgm_idx" in lookups, text
    # The exact and prefix tiers, and the listing, walk the btree on the lowercased name.
    assert "notion_characters_sync_name_idx" in lookups and "notion_characters_sync_name_idx" in text[len(lookups):], text
    f = read_path_timings(db)
    print(f"\nFIGURE read path at 100k rows per table and user (16-word corpus, the worst case): search p50 "
          f"{f['search_p50_ms']} ms, p95 {f['search_p95_ms']} ms (100 queries); character lookup p50 "
          f"{f['lookup_p50_ms']} ms, by kind {f['lookup_p50_by_kind_ms']}")
