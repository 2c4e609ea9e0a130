"""The Tutor's practice set: any table (an upload or a Hub dataset id), one row at a time.

    python -m mathtutor.practice --hub_id owner/name --question_template "{Body} {Question}" \\
        --answer_field Answer --solution_field Solution

A practice set is a `tables.TableSource` read by `tables.load_table` and a
`tables.ColumnMapping` (the same one Evaluate and Train use): `open_set` loads it once, checks
the mapping against the real columns (a missing one is named with the columns found), fixes the
answer type (`tables.resolve_type`: at most 200 answers read) and keeps the preview (the row
count and three mapped rows, `tables.preview`). `draw` maps one random row with
`ColumnMapping.problem`, so a row's question, answer, answer type, choices and worked solution
are exactly what Evaluate would grade. The Tutor then treats it as a GSM8K row: a solution
gives grounded hints (`mathtutor.hints`), and its answer gives instant checks graded in its
answer type (`tutor.grade_known`).

Bounds for a public Space: files and Hub repos are bounded by `tables` (size), a draw picks
from the first `MAX_PRACTICE_ROWS` rows and maps at most `MAX_DRAW_TRIES` rows (an invalid row
is skipped, a set of only invalid rows is an error naming the first), and a question longer
than the Tutor takes (`tutor.MAX_PROBLEM_CHARS`) is an invalid row. Form values are checked
here (`form_settings`), so a direct endpoint call meets the same rules as the page.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from dataclasses import dataclass
from typing import Any

from mathtutor import cli, tables
from mathtutor.problem import Problem
from mathtutor.tables import ColumnMapping, TableSource
from mathtutor.tutor import MAX_PROBLEM_CHARS

MAX_PRACTICE_ROWS = 100_000  # a draw picks among the first this many rows
MAX_DRAW_TRIES = 5  # rows one draw may map before it gives up (invalid rows are skipped)
MAX_SETTING_CHARS = 300  # a form value (template, column, id) longer than this is refused
SOURCE_FIELDS = tuple(f.name for f in dataclasses.fields(TableSource) if f.name != "path")
MAPPING_FIELDS = tuple(f.name for f in dataclasses.fields(ColumnMapping))


@dataclass(frozen=True)
class PracticeSet:
    """A table the Tutor draws problems from, with its mapping (answer type fixed) checked."""

    source: TableSource
    mapping: ColumnMapping  # answer_type resolved, so a draw never infers it again
    num_rows: int
    preview: tables.Preview

    @property
    def label(self) -> str:
        return self.source.label

    @property
    def drawn_from(self) -> int:
        """How many rows a draw picks among (the first ones)."""
        return min(self.num_rows, MAX_PRACTICE_ROWS)

    def markdown(self) -> str:
        """The preview as the Tutor shows it: row count, columns, answer type and the first
        rows' questions, without their answers (the student may be the one practising)."""
        shown = self.preview
        columns = _code_list(shown.columns)
        solved = sum(1 for problem in shown.problems if problem.solution)
        lines = [
            f"📚 **{self.label}**: {self.num_rows:,} rows; columns: {columns}",
            f"answer type: **{self.mapping.answer_type}**; worked solutions in {solved} of the "
            f"first {len(shown.problems)} rows (hints come from a row's solution when it has one)",
        ]
        for problem in shown.problems:
            question = " ".join(problem.question.split())
            lines.append(f"- {question if len(question) <= 200 else question[:197] + '...'}")
        if self.drawn_from < self.num_rows:
            lines.append(f"Problems are drawn from the first {self.drawn_from:,} rows.")
        lines.append("✨ **Give me a problem** now draws from this set; answers stay hidden.")
        return "\n\n".join(lines)


def _code_list(columns: list[str]) -> str:
    """The first `tables.MAX_SHOWN_COLUMNS` column names as Markdown code, comma-separated."""
    return ", ".join(f"`{c}`" for c in columns[: tables.MAX_SHOWN_COLUMNS])


def form_settings(path: str | None, values: dict[str, Any]) -> tuple[TableSource, ColumnMapping]:
    """The source and mapping a form (or a direct endpoint call) names; ValueError naming the
    field otherwise. `values` holds `TableSource` and `ColumnMapping` field names; a Hub id
    wins over `path` only when `path` is empty (both given is refused by `TableSource`)."""
    cleaned = {}
    for name in (*SOURCE_FIELDS, *MAPPING_FIELDS):
        value = values.get(name)
        if value is None:
            continue  # an emptied textbox: the field's default
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected text, got {type(value).__name__}")
        if len(value) > MAX_SETTING_CHARS:
            raise ValueError(f"{name} is {len(value)} characters, over {MAX_SETTING_CHARS}")
        cleaned[name] = value.strip()
    if path is not None and not isinstance(path, str):
        raise ValueError(f"path: expected a file path, got {type(path).__name__}")
    source_values = {name: cleaned[name] for name in SOURCE_FIELDS if name in cleaned}
    if not source_values.get("split"):
        source_values.pop("split", None)  # an emptied split: the default, test
    source = TableSource(path=path or "", **source_values)
    mapping = ColumnMapping(**{name: cleaned[name] for name in MAPPING_FIELDS if name in cleaned})
    return source, mapping


def open_set(source: TableSource, mapping: ColumnMapping) -> PracticeSet:
    """Load `source` and check `mapping` against it; ValueError in one line naming what is
    wrong (an unreadable file, an unreachable Hub id, a missing column, an empty table, rows
    the mapping cannot read)."""
    table = tables.load_table(source)
    label = table.source.label
    if table.num_rows == 0:
        raise ValueError(f"{label} holds no rows: nothing to practise")
    mapping.check_columns(table.columns, label)
    typed = tables.with_type(mapping, tables.resolve_type(table, mapping))
    shown = tables.preview(source, typed)
    if shown.error:
        first = shown.error.splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise ValueError(f"{label}: the mapping does not fit its first rows ({detail})")
    return PracticeSet(source, typed, table.num_rows, shown)


def describe(source: TableSource, mapping: ColumnMapping) -> str:
    """The row count and columns of `source`, and whether `mapping` fits them (Markdown), shown
    before a set is opened; only a source that cannot be loaded raises."""
    table = tables.load_table(source)
    line = (
        f"**{table.source.label}**: {table.num_rows:,} rows; columns: {_code_list(table.columns)}"
    )
    try:
        mapping.check_columns(table.columns, table.source.label)
    except ValueError as error:
        return f"{line}\n\n⚠️ {error}. Set the mapping, then press **Use this set**."
    return f"{line}\n\nThe mapping names these columns: press **Use this set**."


def draw(practice: PracticeSet, seed: int | None = None) -> Problem:
    """One random row of the set as a `Problem` (seeded when `seed` is given).

    Invalid rows (an empty answer, a question too long for the Tutor) are skipped, up to
    `MAX_DRAW_TRIES` rows; then ValueError naming the first row and what was wrong."""
    table = tables.load_table(practice.source)
    count = min(table.num_rows, MAX_PRACTICE_ROWS)
    if count == 0:
        raise ValueError(f"{practice.label} holds no rows: nothing to practise")
    rng = random.Random(seed)
    tries = rng.sample(range(count), min(count, MAX_DRAW_TRIES))
    errors = []
    for index in tries:
        try:
            problem = practice.mapping.problem(table.rows[index], index, practice.label)
        except ValueError as error:
            errors.append(f"row {index}: {error}")
            continue
        if len(problem.question) > MAX_PROBLEM_CHARS:
            errors.append(
                f"row {index}: the question is {len(problem.question):,} characters, over the "
                f"Tutor's {MAX_PROBLEM_CHARS:,}"
            )
            continue
        return problem
    raise ValueError(f"{practice.label}: no usable row in {len(tries)} tried ({errors[0]})")


def main(argv: list[str] | None = None) -> None:
    """Open a practice set and print its preview and one drawn problem."""
    parser = cli.config_parser(TableSource, "python -m mathtutor.practice", __doc__.splitlines()[0])
    cli.config_parser(ColumnMapping, "", parser=parser)
    parser.add_argument("--seed", type=int, default=None, help="Seed of the draw.")
    args = vars(parser.parse_args(argv))
    seed = args.pop("seed")
    source, mapping = form_settings(args.pop("path", None), args)
    practice = open_set(source, mapping)
    problem = draw(practice, seed)
    print(practice.markdown(), f"\n\ndrawn: {problem.id}\n{problem.question}")
    print(f"answer ({problem.answer_type}): {problem.answer}; solution: {bool(problem.solution)}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
