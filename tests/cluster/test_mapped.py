"""Sync into tables of the user's own (register_database with p_target and p_columns): the clients
example end to end, type conversion of every property type, renames, too-long values, application
columns left alone, triggers run as the registering role, search, and bad registrations."""
import datetime
import json

import psycopg
import pytest

CLIENTS = "a1b2c3d4-0000-4000-8000-0000000000c5"
CLIENTS_DS = "d5000000-0000-4000-8000-0000000000c5"
ACME = "c1000000-0000-4000-8000-000000000001"
BLUE_FERN = "c1000000-0000-4000-8000-000000000002"
NORTHWIND = "c1000000-0000-4000-8000-000000000003"

CLIENTS_TABLE = """
DROP TABLE IF EXISTS public.clients;
CREATE TABLE public.clients (
  id                serial PRIMARY KEY,
  notion_id         uuid UNIQUE,
  name              text NOT NULL,
  slug              varchar(80),
  contact_email     text,
  phone             text,
  products_services text[],
  monthly_fee       numeric(10, 2),
  website           text,
  client_since      date,
  active            boolean,
  account_manager   uuid[],
  contract          text,
  client_page_info  text,
  notion_edited     timestamptz,
  deleted           boolean NOT NULL DEFAULT false,
  app_notes         text DEFAULT 'from the app'
)"""

CLIENTS_MAP = {"notion_id": "@id", "name": "Name", "slug": "@slug", "contact_email": "Email", "phone": "Phone",
               "products_services": "Products/Services", "monthly_fee": "Monthly fee", "website": "Website",
               "client_since": "Client since", "active": "Active", "account_manager": "Account manager",
               "contract": "Contract", "client_page_info": "@content", "notion_edited": "@last_edited_time",
               "deleted": "@in_trash"}


def register(db, columns, table="public.clients", db_id=CLIENTS, name="Clients", searchable=False):
    return db.execute("SELECT * FROM notion_sync.register_database('alice', %s, %s, '0 0 */2 9-18 * * 1-5',"
                      " 'America/New_York', %s, %s, %s)",
                      (db_id, name, table, json.dumps(columns), searchable)).fetchone()


def sync(db, db_id=CLIENTS, mode="full"):
    return db.execute("SELECT status, total, created, updated, skipped, deleted, errors"
                      " FROM notion_sync.sync_notion_database('alice', %s, NULL, %s)", (db_id, mode)).fetchone()


def client(db, page, cols="*"):
    return db.execute(f"SELECT {cols} FROM public.clients WHERE notion_id = %s", (page,)).fetchone()


@pytest.fixture
def app_admin(db):
    """A login role in notion_sync_admin that is not a superuser; yields its DSN."""
    db.execute("DROP OWNED BY ns_app_admin") if db.execute(
        "SELECT 1 FROM pg_roles WHERE rolname = 'ns_app_admin'").fetchone() else None
    db.execute("DROP ROLE IF EXISTS ns_app_admin")
    db.execute("CREATE ROLE ns_app_admin LOGIN IN ROLE notion_sync_admin")
    yield db.info.dsn.replace("user=postgres", "user=ns_app_admin")
    db.execute("DROP TABLE IF EXISTS public.app_clients, public.who_wrote")
    db.execute("DROP FUNCTION IF EXISTS public.who_trigger(), public.now()")
    db.execute("DROP OWNED BY ns_app_admin")
    db.execute("DROP ROLE ns_app_admin")


@pytest.fixture
def clients(db):
    db.execute(CLIENTS_TABLE)
    register(db, CLIENTS_MAP)
    return db


def test_clients_end_to_end(clients, fake):
    db = clients
    status, total, created, updated, skipped, deleted, errors = sync(db)
    assert (status, total, created, updated, deleted, errors) == ("succeeded", 3, 3, 0, 0, [])
    row = db.execute("SELECT name, slug, contact_email, phone, products_services, monthly_fee, website,"
                     " client_since, active, account_manager, contract, client_page_info, deleted, app_notes"
                     " FROM public.clients WHERE notion_id = %s", (ACME,)).fetchone()
    assert row[:9] == ("Acme Bakery", "acme-bakery", "orders@acme-bakery.example", "+1 212 555 0101",
                       ["Web design", "Hosting"], 149.5, "https://acme-bakery.example",
                       datetime.date(2024, 3, 15), True)
    assert [str(u) for u in row[9]] == ["6f1c2a4e-0b7d-4c1a-9e55-3a2f1d7c8b02"]
    assert row[10] == "https://example.com/contracts/acme.pdf"
    assert "Family bakery in Brooklyn" in row[11]
    assert row[12:] == (False, "from the app")
    # Blue Fern has no email and no body: NULLs, not empty strings.
    assert client(db, BLUE_FERN, "contact_email, client_page_info, website") == (None, None, None)

    # The application's own columns survive every sync.
    db.execute("UPDATE public.clients SET app_notes = 'VIP: call first' WHERE notion_id = %s", (ACME,))
    assert sync(db)[0:5] == ("succeeded", 3, 0, 0, 3)  # unchanged pages cost nothing
    fake.admin("PATCH", f"pages/{ACME}", {"properties": {"Email": "hello@acme-bakery.example", "Monthly fee": 199}})
    assert sync(db, mode="incremental")[2:4] == (0, 1)
    assert client(db, ACME, "contact_email, monthly_fee, app_notes") == \
        ("hello@acme-bakery.example", 199, "VIP: call first")

    # A page deleted in Notion: the row stays (application data), flagged through @in_trash.
    fake.admin("PATCH", f"pages/{NORTHWIND}", {"in_trash": True})
    assert sync(db)[5] == 1
    assert client(db, NORTHWIND, "deleted, name") == (True, "Northwind Legal LLP")
    fake.admin("PATCH", f"pages/{NORTHWIND}", {"in_trash": False})
    sync(db)
    assert client(db, NORTHWIND, "deleted")[0] is False

    st = db.execute("SELECT notion_sync.status('alice')").fetchone()[0]
    c = st["tables"]["public.clients"]
    assert (c["total"], c["with_email"], c["with_content"], c["mapped"]) == (3, 2, 2, True)
    assert st["tables"]["notion_pages_sync"]["total"] == 0  # nothing went into the generic table
    assert any(r["table"] == "public.clients" for r in st["recent_updates"])
    assert db.execute("SELECT target_table, rows, schedule FROM notion_sync.sync_status").fetchone() == \
        ("public.clients", 3, "0 0 */2 9-18 * * 1-5")


def test_changing_the_map_rewrites_every_row(clients):
    db = clients
    sync(db)
    m = dict(CLIENTS_MAP)
    del m["contract"]
    m["website"] = "@url"
    register(db, m)
    # The watermark is reset: even an incremental run reaches every page with the new map.
    assert sync(db, mode="incremental")[2:5] == (0, 3, 0)
    assert client(db, ACME, "website, contract")[0].startswith("https://www.notion.so/")
    assert client(db, ACME, "contract")[0] == "https://example.com/contracts/acme.pdf"  # no longer mapped: kept


def test_rows_the_application_deleted_or_a_trigger_skipped_are_written_again(clients):
    db = clients
    db.execute("""CREATE FUNCTION public.skip_yoga() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RETURN CASE WHEN NEW.name LIKE '%%Yoga%%' THEN NULL ELSE NEW END; END $$""")
    db.execute("CREATE TRIGGER skip_yoga BEFORE INSERT ON public.clients FOR EACH ROW EXECUTE FUNCTION public.skip_yoga()")
    assert sync(db)[0:3] == ("succeeded", 3, 2)
    db.execute("DROP TRIGGER skip_yoga ON public.clients")
    db.execute("DROP FUNCTION public.skip_yoga()")
    db.execute("DELETE FROM public.clients WHERE notion_id = %s", (ACME,))
    # Neither page changed in Notion, but neither row is in the table: both are written again.
    assert sync(db)[0:5] == ("succeeded", 3, 2, 0, 1)
    assert db.execute("SELECT count(*) FROM public.clients").fetchone()[0] == 3


def test_rename_follows_property_ids_and_a_deleted_property_is_an_error(clients, fake):
    db = clients
    state = fake.admin("GET", "state")
    props = next(d for d in state["databases"] if d["id"] == CLIENTS)["data_sources"][0]["properties"]
    email_id = next(p["id"] for p in props if p["name"] == "Email")
    m = dict(CLIENTS_MAP, contact_email=email_id)
    register(db, m)
    sync(db)
    fake.admin("POST", f"data_sources/{CLIENTS_DS}/schema",
               {"rename": {"Email": "E-mail address", "Phone": "Telephone"}, "add": {"Tier": {"type": "select"}}})
    fake.admin("PATCH", f"pages/{ACME}", {"properties": {"E-mail address": "new@acme.example",
                                                         "Telephone": "+1 000"}})
    status, total, created, updated, skipped, deleted, errors = sync(db)
    # Email is mapped by id: followed. Phone is mapped by name: one clear error for the run, and the
    # column keeps its values (no silent NULLs). The new Tier property is ignored.
    # Renamed properties change every page's hash (values are keyed by name), so all pages are read
    # again; only ACME's mapped values changed, so only its row is written (issue 15: no rewrite of
    # rows that are equal).
    assert status == "partial" and total == 3 and updated == 1 and skipped == 2
    assert len(errors) == 1 and errors[0]["page_id"] is None
    assert 'column "phone"' in errors[0]["error"] and '"Phone"' in errors[0]["error"]
    assert "deleted or renamed" in errors[0]["error"]
    assert client(db, ACME, "contact_email, phone") == ("new@acme.example", "+1 212 555 0101")


def test_too_long_varchar_skips_that_page_only(db):
    db.execute(CLIENTS_TABLE.replace("slug              varchar(80)", "slug              varchar(15)"))
    register(db, CLIENTS_MAP)
    status, total, created, updated, skipped, deleted, errors = sync(db)
    assert (status, total, created) == ("partial", 3, 2)
    assert [e["page_id"] for e in errors] == [NORTHWIND]
    assert "19 characters do not fit column slug character varying(15)" in errors[0]["error"]
    assert db.execute("SELECT count(*) FROM notion_sync.sync_errors WHERE notion_page_id = %s",
                      (NORTHWIND,)).fetchone()[0] == 1
    # Not counted as synced: the next run tries it again.
    assert sync(db)[0:5] == ("partial", 3, 0, 0, 2)


def test_a_constraint_postgres_refuses_skips_only_that_page(db):
    db.execute(CLIENTS_TABLE)
    db.execute("ALTER TABLE public.clients ADD CHECK (monthly_fee < 400)")
    register(db, CLIENTS_MAP)
    status, total, created, updated, skipped, deleted, errors = sync(db)
    assert (status, created) == ("partial", 2)
    assert errors[0]["page_id"] == NORTHWIND and "check constraint" in errors[0]["error"]


def _all_types_table(db):
    db.execute("""DROP TABLE IF EXISTS public.all_types;
      CREATE TABLE public.all_types (
        page uuid PRIMARY KEY, title text, name_v varchar(40), description text, role text, role_arr text[],
        traits text[], traits_text text, traits_json jsonb, age int, age_big bigint, age_num numeric,
        age_float float8, age_text text, active boolean, active_text text, world uuid[], world_text text,
        portrait text, portrait_json jsonb, creator uuid[], creator_names text[], creator_text text,
        char_id text, created timestamptz, created_date date, edited timestamp, props jsonb, owner text,
        url text)""")


def test_every_property_type_converts(db):
    _all_types_table(db)
    register(db, {"page": "@id", "title": "@title", "name_v": "Name", "description": "Description", "role": "Role",
                  "role_arr": "Role", "traits": "Traits", "traits_text": "Traits", "traits_json": "Traits",
                  "age": "Age", "age_big": "Age", "age_num": "Age", "age_float": "Age", "age_text": "Age",
                  "active": "Active", "active_text": "Active", "world": "World", "world_text": "World",
                  "portrait": "Portrait", "portrait_json": "Portrait", "creator": "Creator",
                  "creator_names": "Creator", "creator_text": "Creator", "char_id": "Character ID",
                  "created": "Created", "created_date": "@created_time", "edited": "Edited",
                  "props": "@properties", "owner": "@user_id", "url": "@url"},
             table="public.all_types", db_id="a1b2c3d4-0000-4000-8000-0000000000c1", name="Characters")
    r = sync(db, db_id="a1b2c3d4-0000-4000-8000-0000000000c1")
    assert r[0] == "succeeded", r
    row = db.execute("SELECT * FROM public.all_types WHERE title = 'Aria Stormwind'").fetchone()
    cols = [d.name for d in db.execute("SELECT * FROM public.all_types LIMIT 0").description]
    v = dict(zip(cols, row))
    assert v["name_v"] == "Aria Stormwind" and v["description"].startswith("A young sky-sailor")
    assert (v["role"], v["role_arr"]) == ("Hero", ["Hero"])
    assert (v["traits"], v["traits_text"], v["traits_json"]) == (["brave", "curious"], "brave, curious",
                                                                 ["brave", "curious"])
    assert (v["age"], v["age_big"], v["age_num"], v["age_float"], v["age_text"]) == (19, 19, 19, 19.0, "19")
    assert (v["active"], v["active_text"]) == (True, "true")
    assert [str(u) for u in v["world"]] == ["e0000000-0000-4000-8000-000000000001"]
    assert v["world_text"] == "e0000000-0000-4000-8000-000000000001"
    assert v["portrait"] == "https://example.com/aria.png" and v["portrait_json"][0]["url"].endswith("aria.png")
    assert [str(u) for u in v["creator"]] == ["6f1c2a4e-0b7d-4c1a-9e55-3a2f1d7c8b01"]
    assert v["creator_names"] == ["Ada Writer"] and v["creator_text"] == "Ada Writer"
    assert v["char_id"].startswith("CHR-")
    assert v["created"] is not None and v["created_date"] == v["created"].date()
    assert v["edited"] is not None and v["props"]["Role"]["value"] == "Hero"
    assert (v["owner"], v["url"].startswith("https://")) == ("alice", True)

    # Worlds: status, date, url, rollup, verification, place; Stories: formula, created_by, button.
    db.execute("""CREATE TABLE public.worlds_own (page text PRIMARY KEY, climate text, founded date,
                  founded_ts timestamptz, population bigint, map text, chars uuid[], char_count numeric,
                  verified jsonb, capital jsonb, capital_text text)""")
    register(db, {"page": "@id", "climate": "Climate", "founded": "Founded", "founded_ts": "Founded",
                  "population": "Population", "map": "Map", "chars": "Characters", "char_count": "Character count",
                  "verified": "Verified", "capital": "Capital", "capital_text": "Capital"},
             table="public.worlds_own", db_id="a1b2c3d4-0000-4000-8000-0000000000c2", name="Worlds")
    assert sync(db, db_id="a1b2c3d4-0000-4000-8000-0000000000c2")[0] == "succeeded"
    w = db.execute("SELECT climate, founded::text, founded_ts AT TIME ZONE 'America/New_York', population, map,"
                   " cardinality(chars), char_count, verified->>'state', capital->>'name', capital_text"
                   " FROM public.worlds_own WHERE page = 'e0000000-0000-4000-8000-000000000001'").fetchone()
    assert w[:2] == ("Stormy", "1204-03-01")
    # A date alone: midnight in the registration's zone (seconds apart: the zone's 1204 local mean time
    # differs between chrono-tz and Postgres's tzdata).
    assert abs((w[2] - datetime.datetime(1204, 3, 1)).total_seconds()) < 60
    assert w[3:] == (120000, "https://example.com/maps/cirrus", 2, 2, "verified", "Port Nimbus", w[9])
    assert "Port Nimbus" in w[9]

    db.execute("CREATE TABLE public.stories_own (page text PRIMARY KEY, stage text, words int, author text,"
               " editor text, publish text)")
    register(db, {"page": "@id", "stage": "Stage", "words": "Word count", "author": "Author",
                  "editor": "Last editor", "publish": "Publish"},
             table="public.stories_own", db_id="a1b2c3d4-0000-4000-8000-0000000000c3", name="Stories")
    assert sync(db, db_id="a1b2c3d4-0000-4000-8000-0000000000c3")[0] == "succeeded"
    s = db.execute("SELECT stage, words, author IS NOT NULL, publish FROM public.stories_own"
                   " ORDER BY words NULLS LAST LIMIT 1").fetchone()
    assert s[0] is not None and isinstance(s[1], int) and s[2] is True and s[3] is None


def test_wrong_types_are_page_errors_not_run_failures(db):
    db.execute("CREATE TABLE public.strict (page text PRIMARY KEY, fee int, since date)")
    register(db, {"page": "@id", "fee": "Monthly fee", "since": "Name"}, table="public.strict")
    status, total, created, *_, errors = sync(db)
    assert (status, total, created) == ("partial", 3, 0)
    assert all("not a date" in e["error"] or "not an integer" in e["error"] for e in errors), errors


def test_searchable_mapped_tables_are_searched(clients):
    db = clients
    sync(db)
    q = "SELECT source_table, title FROM notion_sync.search_notion_content('alice', 'bakery')"
    assert db.execute(q).fetchall() == []
    register(db, CLIENTS_MAP, searchable=True)
    sync(db, mode="incremental")
    assert db.execute(q).fetchall() == [("public.clients", "Acme Bakery")]
    # Body text and property values are searched too.
    assert db.execute("SELECT title FROM notion_sync.search_notion_content('alice', 'holidays')").fetchall() == \
        [("Acme Bakery",)]
    register(db, CLIENTS_MAP, searchable=False)
    assert db.execute(q).fetchall() == []


@pytest.mark.parametrize("columns,state,words", [
    ({"notion_id": "@id", "nope": "Name"}, "42703", 'column "nope" of public.clients does not exist'),
    ({"name": "Name"}, "22023", 'map exactly one column of public.clients to "@id"'),
    ({"notion_id": "@id", "name": "@nickname"}, "22023", "unknown special"),
    ({"notion_id": "@id", "slug": "@slug", "name": "@id"}, "22023", "exactly one"),
    ({"slug": "@id", "name": "Name"}, "42P10", 'unique key on column "slug"'),
    ({"active": "@id"}, "42804", "make it text or uuid"),
    ([], "22023", "JSON object"),
])
def test_bad_maps_have_real_sqlstates(clients, columns, state, words):
    with pytest.raises(psycopg.Error) as e:
        register(clients, columns)
    assert e.value.sqlstate == state, e.value
    assert words in str(e.value)


def test_target_must_be_an_application_table_the_caller_can_write(clients, app_admin):
    with pytest.raises(psycopg.Error) as e:
        register(clients, {"oid": "@id"}, table="pg_catalog.pg_class")
    assert e.value.sqlstate == "42501"
    with pytest.raises(psycopg.Error) as e:
        clients.execute(f"SELECT notion_sync.register_database('alice', '{CLIENTS}', 'Clients', 'manual', 'UTC',"
                        " 'public.clients')")
    assert e.value.sqlstate == "22023"
    # A notion_sync admin that cannot write public.clients cannot make notion_sync write it.
    with psycopg.connect(app_admin, autocommit=True) as app:
        with pytest.raises(psycopg.Error) as e:
            register(app, CLIENTS_MAP)
        assert e.value.sqlstate == "42501" and "INSERT, UPDATE and SELECT" in str(e.value)


def test_writes_run_as_the_registering_role_not_the_superuser(clients, app_admin):
    """Code on a mapped table runs with the registering role's rights, even when a superuser runs the
    sync: its triggers (also deferred ones, which before PG 17 fire as whoever commits), and settings
    they change (a search_path pointing at a trojan now()) do not outlive the write."""
    db = clients
    db.execute("DROP TABLE IF EXISTS public.app_clients, public.who_wrote")
    db.execute("CREATE TABLE public.who_wrote (who text, super boolean)")
    db.execute("GRANT INSERT ON public.who_wrote TO ns_app_admin")
    db.execute("CREATE TABLE public.app_clients (notion_id text PRIMARY KEY, name text)")
    db.execute("ALTER TABLE public.app_clients OWNER TO ns_app_admin")
    db.execute("""CREATE FUNCTION public.who_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO public.who_wrote SELECT TG_WHEN || ':' || current_user, rolsuper
          FROM pg_catalog.pg_roles WHERE rolname = current_user;
        BEGIN
          EXECUTE 'ALTER ROLE ns_app_admin SUPERUSER';
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
        PERFORM set_config('search_path', 'public, pg_catalog', false);
        RETURN NEW;
      END $$""")
    db.execute("""CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql AS $$
      INSERT INTO public.who_wrote SELECT 'trojan now():' || current_user, true;
      SELECT pg_catalog.now() $$""")
    db.execute("GRANT INSERT ON public.who_wrote TO PUBLIC")
    db.execute("CREATE TRIGGER who BEFORE INSERT ON public.app_clients FOR EACH ROW"
               " EXECUTE FUNCTION public.who_trigger()")
    db.execute("CREATE CONSTRAINT TRIGGER who_later AFTER INSERT ON public.app_clients"
               " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.who_trigger()")
    with psycopg.connect(app_admin, autocommit=True) as app:
        register(app, {"notion_id": "@id", "name": "Name"}, table="public.app_clients")
    sync_sql = "SELECT status, created, errors FROM notion_sync.sync_notion_database('alice', %s, NULL, 'full')"
    # A deferred trigger would fire at commit as whoever commits: Postgres refuses to queue it inside
    # the restricted write, so those pages are errors, not superuser code.
    r = db.execute(sync_sql, (CLIENTS,)).fetchone()
    assert r[:2] == ("partial", 0) and "deferred trigger" in r[2][0]["error"], r
    db.execute("DROP TRIGGER who_later ON public.app_clients")
    # The superuser runs it (a pg_cron job, sync_all from psql): the table's code still runs as its role.
    r = db.execute(sync_sql, (CLIENTS,)).fetchone()
    assert r[:2] == ("succeeded", 3), r
    who = db.execute("SELECT who, super, count(*) FROM public.who_wrote GROUP BY 1, 2 ORDER BY 1").fetchall()
    assert who == [("BEFORE:ns_app_admin", False, 3)], who
    assert db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'ns_app_admin'").fetchone()[0] is False
    db.execute("DROP FUNCTION public.now()")


def test_worker_schedules_and_webhooks_apply_to_mapped_tables(wdb, fake):
    """On the worker's cluster: a scheduled run fills the table (per-batch transactions), a
    properties-only webhook updates the row and keeps the body column, a delete flags @in_trash."""
    from harness import wait_for
    from test_webhooks import SECRET, event, handle
    db = wdb
    db.execute(CLIENTS_TABLE)
    db.execute("SELECT notion_sync.register_database('alice', %s, 'Clients', '* * * * * *', 'America/New_York',"
               " 'public.clients', %s)", (CLIENTS, json.dumps(CLIENTS_MAP)))
    assert wait_for(lambda: db.execute("SELECT count(*) FROM public.clients").fetchone()[0] == 3, 20)
    run = db.execute("SELECT trigger, status, created FROM notion_sync.sync_runs ORDER BY run_id LIMIT 1").fetchone()
    assert run == ("schedule", "succeeded", 3)
    db.execute("UPDATE notion_sync.databases SET schedule = 'manual', next_run_at = NULL")
    from conftest import quiesce
    quiesce(db)
    assert "Family bakery" in client(db, ACME, "client_page_info")[0]

    handle(db, json.dumps({"verification_token": SECRET}), None, "alice")
    fake.admin("PATCH", f"pages/{ACME}", {"properties": {"Phone": "+1 212 555 0199"}})
    ev = event(fake, "page.properties_updated", ACME)
    assert handle(db, ev["body"], ev["signature"])["status"] == "accepted"
    assert wait_for(lambda: client(db, ACME, "phone")[0] == "+1 212 555 0199", 10)
    assert "Family bakery" in client(db, ACME, "client_page_info")[0]  # not refetched, not cleared

    fake.admin("PATCH", f"pages/{BLUE_FERN}", {"in_trash": True})
    ev = event(fake, "page.deleted", BLUE_FERN)
    handle(db, ev["body"], ev["signature"])
    assert wait_for(lambda: client(db, BLUE_FERN, "deleted")[0] is True, 10)
    assert db.execute("SELECT in_trash FROM notion_sync.mapped_pages WHERE notion_page_id = %s",
                      (BLUE_FERN,)).fetchone()[0] is True
