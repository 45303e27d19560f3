"""The read path's rules that the benchmark's speed rests on (issue 21)."""


def names(db, q, limit="20"):
    return [r[0] for r in db.execute(f"SELECT name FROM notion_sync.get_notion_character('alice', %s, {limit})",
                                     (q,)).fetchall()]


def test_the_substring_and_typo_tiers_run_only_when_nothing_better_matched(db):
    db.execute("INSERT INTO notion_sync.notion_characters_sync (user_id, notion_database_id, notion_page_id, name)"
               " SELECT 'alice', 'db', 'p' || n, n FROM unnest(ARRAY['Stormwind', 'Stormwund', 'Old Stormwind Keep',"
               " 'Zed']) n")
    # An exact match: neither the substring match (Old Stormwind Keep) nor a look-alike (Stormwund).
    assert names(db, "stormwind") == ["Stormwind"]
    # No name equals or starts with the query: the substring tier answers, still no look-alike.
    assert names(db, "tormwind") == ["Old Stormwind Keep", "Stormwind"]
    # Nothing matches as written: the typo tier answers, closest first.
    assert names(db, "stormwinx")[:1] == ["Stormwind"]
    assert "Stormwund" in names(db, "stormwinx")
    # Every match asked for (p_limit NULL): the typo tier runs too.
    assert names(db, "stormwind", "NULL") == ["Stormwind", "Old Stormwind Keep", "Stormwund"]
