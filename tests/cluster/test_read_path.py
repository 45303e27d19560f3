"""The read path's rules that the benchmark's speed rests on (issue 21)."""


def names(db, q, limit="20"):
    return [r[0] for r in db.execute(f"SELECT name FROM notion_sync.get_notion_character('alice', %s, {limit})",
                                     (q,)).fetchall()]


def test_the_typo_tier_runs_only_when_nothing_better_matched(db):
    db.execute("INSERT INTO notion_sync.notion_characters_sync (user_id, notion_database_id, notion_page_id, name)"
               " SELECT 'alice', 'db', 'p' || n, n FROM unnest(ARRAY['Stormwind', 'Stormwund', 'Old Stormwind Keep',"
               " 'Zed']) n")
    # An exact match and a substring one: no look-alike (Stormwund).
    assert names(db, "stormwind") == ["Stormwind", "Old Stormwind Keep"]
    # Nothing matches as written: the typo tier answers, closest first.
    assert names(db, "stormwinx")[:1] == ["Stormwind"]
    assert "Stormwund" in names(db, "stormwinx")
    # Every match asked for (p_limit NULL): the typo tier runs too.
    assert names(db, "stormwind", "NULL") == ["Stormwind", "Old Stormwind Keep", "Stormwund"]
