"""Arena: blind A/B votes turned into a leaderboard (win rate with a Wilson interval, Bradley-Terry).

Pure functions over vote dicts as `store.list_votes` returns them (`left_system`,
`right_system`, `outcome` in left | right | tie | both_wrong). A tie and "both wrong" count
half a win to each side (neither was preferred). The rating is the Bradley-Terry maximum
likelihood fit by Hunter's MM iteration (Hunter 2004, "MM algorithms for generalized
Bradley-Terry models", eq. 3), with a weak prior of `prior_games` virtual ties against a
fixed anchor of strength 1 so a system that never won still gets a finite rating, shown on
the Elo scale: 1000 + 400 * log10(strength).

    python -m mathtutor.arena            # print the leaderboard of the current home's votes
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from mathtutor import cli

Z_95 = 1.959963984540054  # two-sided 95% normal quantile
EXPORT_FIELDS = ("id", "created", "base_model", "problem", "left_system", "right_system",
                 "outcome", "settings")  # fmt: skip


def scores(vote: Mapping[str, Any]) -> tuple[float, float]:
    """(left score, right score) of one vote: 1/0, 0/1, or 1/2 each for tie and both wrong.

    >>> scores({"outcome": "left"}), scores({"outcome": "both_wrong"})
    ((1.0, 0.0), (0.5, 0.5))
    """
    outcome = vote["outcome"]
    if outcome == "left":
        return 1.0, 0.0
    if outcome == "right":
        return 0.0, 1.0
    if outcome in ("tie", "both_wrong"):
        return 0.5, 0.5
    raise ValueError(f"vote outcome {outcome!r}: expected left, right, tie or both_wrong")


def wilson_interval(wins: float, games: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a win rate (`wins` may count halves for ties).

    >>> [round(x, 4) for x in wilson_interval(8, 10)]  # p = 0.8, n = 10
    [0.4902, 0.9433]
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if games <= 0:
        return 0.0, 1.0
    p = wins / games
    denominator = 1 + z * z / games
    centre = (p + z * z / (2 * games)) / denominator
    half = z * math.sqrt(p * (1 - p) / games + z * z / (4 * games * games)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def bradley_terry(
    votes: Iterable[Mapping[str, Any]],
    prior_games: float = 1.0,
    iterations: int = 1000,
    tolerance: float = 1e-10,
) -> dict[str, float]:
    """Bradley-Terry strengths (anchor = 1) of every system in `votes`, by MM iteration.

    With `prior_games=0` and one pair this is the closed form p_a / p_b = wins_a / wins_b
    (normalised to geometric mean 1):

    >>> votes = [{"left_system": "a", "right_system": "b", "outcome": o}
    ...          for o in ("left", "left", "right")]
    >>> {k: round(v, 6) for k, v in bradley_terry(votes, prior_games=0).items()}
    {'a': 1.414214, 'b': 0.707107}
    """
    wins: dict[str, float] = {}
    games: dict[tuple[str, str], float] = {}
    for vote in votes:
        a, b = vote["left_system"], vote["right_system"]
        if a == b:
            continue  # a system against itself says nothing about its strength
        score_a, score_b = scores(vote)
        wins[a] = wins.get(a, 0.0) + score_a
        wins[b] = wins.get(b, 0.0) + score_b
        games[(a, b)] = games.get((a, b), 0.0) + 1
        games[(b, a)] = games.get((b, a), 0.0) + 1
    strength = dict.fromkeys(wins, 1.0)
    for _ in range(iterations):
        new = {}
        for i in strength:
            denominator = sum(
                n / (strength[i] + strength[j]) for (x, j), n in games.items() if x == i
            )
            denominator += prior_games / (strength[i] + 1.0)  # virtual ties with the anchor
            numerator = wins[i] + prior_games / 2
            new[i] = numerator / denominator if denominator > 0 else 1.0
        if prior_games == 0 and new:  # no anchor: fix the scale by the geometric mean
            mean = math.exp(sum(math.log(max(v, 1e-300)) for v in new.values()) / len(new))
            new = {k: v / mean for k, v in new.items()}
        change = max((abs(new[k] - strength[k]) for k in new), default=0.0)
        strength = new
        if change < tolerance:
            break
    return strength


def rating(strength: float) -> float:
    """A Bradley-Terry strength on the Elo scale (the anchor = 1000).

    >>> rating(1.0), round(rating(10.0))
    (1000.0, 1400)
    """
    return 1000.0 + 400.0 * math.log10(max(strength, 1e-12))


def leaderboard(
    votes: list[Mapping[str, Any]], accuracy: Mapping[str, float | None] | None = None
) -> list[dict[str, Any]]:
    """One row per system, best rating first: games, wins, ties, win rate, 95% CI, rating.

    `accuracy` (system -> exact-match accuracy of its latest evaluation) fills a column.

    >>> votes = [{"left_system": "base", "right_system": "tuned", "outcome": "right"}] * 3
    >>> [(r["system"], r["games"], r["win_rate"]) for r in leaderboard(votes)]
    [('tuned', 3, 1.0), ('base', 3, 0.0)]
    """
    accuracy = accuracy or {}
    votes = [vote for vote in votes if vote["left_system"] != vote["right_system"]]
    totals: dict[str, dict[str, float]] = {}
    for vote in votes:
        pairs = zip((vote["left_system"], vote["right_system"]), scores(vote), strict=True)
        for system, score in pairs:
            row = totals.setdefault(system, {"games": 0, "wins": 0, "ties": 0, "points": 0.0})
            row["games"] += 1
            row["points"] += score
            row["wins"] += score == 1.0
            row["ties"] += score == 0.5
    strengths = bradley_terry(votes)
    rows = []
    for system, row in totals.items():
        low, high = wilson_interval(row["points"], int(row["games"]))
        rows.append(
            {
                "system": system,
                "games": int(row["games"]),
                "wins": int(row["wins"]),
                "ties": int(row["ties"]),
                "losses": int(row["games"] - row["wins"] - row["ties"]),
                "win_rate": row["points"] / row["games"],
                "ci_low": low,
                "ci_high": high,
                "rating": rating(strengths[system]),
                "accuracy": accuracy.get(system),
            }
        )
    return sorted(rows, key=lambda r: (-r["rating"], r["system"]))


def export_votes(votes: list[Mapping[str, Any]], file_format: str) -> str:
    """The votes as CSV (settings as a JSON cell) or JSONL text."""
    if file_format == "jsonl":
        return "".join(json.dumps({k: v.get(k) for k in EXPORT_FIELDS}) + "\n" for v in votes)
    if file_format != "csv":
        raise ValueError(f"export format {file_format!r}: expected csv or jsonl")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, EXPORT_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for vote in votes:
        writer.writerow({**vote, "settings": json.dumps(vote.get("settings") or {})})
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    from mathtutor import store

    parser = cli.ArgumentParser(
        prog="python -m mathtutor.arena", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--base_model", default=None, help="only votes on this base (Hub id)")
    args = parser.parse_args(argv)
    for row in leaderboard(store.list_votes(args.base_model)):
        print(
            f"{row['system']:30s} {row['rating']:7.1f}  win {row['win_rate']:.0%} "
            f"[{row['ci_low']:.0%}, {row['ci_high']:.0%}]  n={row['games']}"
        )


if __name__ == "__main__":
    sys.exit(cli.run(main))
