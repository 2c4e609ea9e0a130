"""Arena: Wilson intervals, the Bradley-Terry fit against hand-computed cases, the votes table."""

from __future__ import annotations

import csv
import doctest
import io
import json
import math
import sqlite3

import pytest

from mathtutor import arena, store


def test_doctests_pass():
    from mathtutor import compare, render, share

    for module in (arena, render, share, compare):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def _votes(*triples):
    return [{"left_system": a, "right_system": b, "outcome": o} for a, b, o in triples]


def test_wilson_interval_matches_the_formula_by_hand():
    # p = 0.8, n = 10, z = 1.96: centre (0.8 + 0.192) / 1.384, half 1.96*sqrt(0.016+0.0096)/1.384
    low, high = arena.wilson_interval(8, 10, z=1.96)
    centre, half = (0.8 + 1.96**2 / 20) / (1 + 1.96**2 / 10), 0
    half = 1.96 * math.sqrt(0.8 * 0.2 / 10 + 1.96**2 / 400) / (1 + 1.96**2 / 10)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert arena.wilson_interval(0, 5)[0] == 0 and arena.wilson_interval(5, 5)[1] == 1


def test_bradley_terry_two_players_is_the_win_ratio():
    votes = _votes(("a", "b", "left"), ("a", "b", "left"), ("b", "a", "left"))
    strength = arena.bradley_terry(votes, prior_games=0)
    assert strength["a"] / strength["b"] == pytest.approx(2.0)  # MLE: p_a/(p_a+p_b) = 2/3


def test_bradley_terry_three_players_by_hand():
    # a beats b twice, b beats c twice, c beats a once, a beats c once; no prior.
    votes = _votes(
        ("a", "b", "left"), ("a", "b", "left"), ("b", "c", "left"), ("b", "c", "left"),
        ("c", "a", "left"), ("a", "c", "left"),
    )  # fmt: skip
    p = arena.bradley_terry(votes, prior_games=0, iterations=10_000, tolerance=1e-14)
    # The MLE satisfies wins_i = sum_j n_ij p_i / (p_i + p_j) for every player (Hunter eq. 3).
    wins = {"a": 3, "b": 2, "c": 1}
    games = {("a", "b"): 2, ("b", "c"): 2, ("a", "c"): 2}
    for i in "abc":
        expected = sum(
            n * p[i] / (p[i] + p[j if x == i else x]) for (x, j), n in games.items() if i in (x, j)
        )
        assert wins[i] == pytest.approx(expected, rel=1e-6)
    assert p["a"] > p["b"] > p["c"]


def test_prior_keeps_a_winless_system_finite_and_ties_are_halves():
    p = arena.bradley_terry(_votes(("a", "b", "left")))
    # With one virtual tie against the anchor (strength 1) each:
    # a: 1.5 = p_a (1/(p_a+p_b) + 1/(p_a+1)), b: 0.5 = p_b (1/(p_a+p_b) + 1/(p_b+1)).
    assert p["a"] * (1 / (p["a"] + p["b"]) + 1 / (p["a"] + 1)) == pytest.approx(1.5)
    assert p["b"] * (1 / (p["a"] + p["b"]) + 1 / (p["b"] + 1)) == pytest.approx(0.5)
    tied = arena.bradley_terry(_votes(("a", "b", "tie"), ("a", "b", "both_wrong")))
    assert tied["a"] == pytest.approx(tied["b"])


def test_leaderboard_rows_and_accuracy_column():
    votes = _votes(("base", "tuned", "right"), ("tuned", "base", "left"), ("base", "tuned", "tie"))
    rows = arena.leaderboard(votes, {"tuned": 0.25})
    assert [r["system"] for r in rows] == ["tuned", "base"]
    tuned = rows[0]
    assert (tuned["games"], tuned["wins"], tuned["ties"], tuned["losses"]) == (3, 2, 1, 0)
    assert tuned["win_rate"] == pytest.approx(2.5 / 3)
    assert tuned["ci_low"] < tuned["win_rate"] < tuned["ci_high"]
    assert tuned["accuracy"] == 0.25 and rows[1]["accuracy"] is None
    assert arena.leaderboard(_votes(("base", "base", "left"))) == []  # self-pairs say nothing
    with pytest.raises(ValueError, match="outcome"):
        arena.leaderboard(_votes(("a", "b", "maybe")))


def test_votes_survive_reconnects_and_export(tmp_path):
    db = tmp_path / "m.db"
    store.add_vote("org/base", "2*3?", ("base", "tuned"), "left", {"seed": 1}, path=db)
    store.add_vote("org/other", "1+1?", ("base", "x"), "tie", {}, path=db)
    with pytest.raises(ValueError, match="vote 'sideways'"):
        store.add_vote("org/base", "q", ("a", "b"), "sideways", {}, path=db)
    votes = store.list_votes("org/base", path=db)
    assert [(v["problem"], v["left_system"], v["outcome"]) for v in votes] == [
        ("2*3?", "base", "left")
    ]
    assert votes[0]["settings"] == {"seed": 1}
    rows = list(csv.DictReader(io.StringIO(arena.export_votes(votes, "csv"))))
    assert rows[0]["problem"] == "2*3?" and json.loads(rows[0]["settings"]) == {"seed": 1}
    lines = arena.export_votes(store.list_votes(path=db), "jsonl").splitlines()
    assert [json.loads(line)["base_model"] for line in lines] == ["org/base", "org/other"]
    with pytest.raises(ValueError, match="csv or jsonl"):
        arena.export_votes(votes, "xlsx")


def test_an_older_database_gains_the_votes_table(tmp_path):
    db = tmp_path / "old.db"
    connection = sqlite3.connect(db)
    connection.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        "CREATE TABLE adapters (name TEXT PRIMARY KEY, path TEXT NOT NULL, base_model TEXT NOT"
        " NULL, source TEXT NOT NULL, created REAL NOT NULL, info TEXT);"
    )
    connection.close()
    store.add_vote("b", "q", ("x", "y"), "right", {}, path=db)
    assert len(store.list_votes(path=db)) == 1
