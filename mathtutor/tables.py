"""Any dataset as problems: Hub ids and local files through `datasets.load_dataset`, mapped by
a `ColumnMapping` (a question template over any columns, answer / solution / id / choices).

The one loader for tables: a Hub dataset (`hub_id`, `config`, `split`, `revision`) goes through
`datasets.load_dataset`, the code path a Space uses with network (the test Hub in
`tests/hub_server.py` serves it through `HF_ENDPOINT`); a local JSONL / JSON / CSV / Parquet
file goes through the same call with the packaged builder of its extension, after
`paths.check_readable`. A loaded table is kept in memory (one per source, `lru_cache`) on top of
datasets' own disk cache, so the preview and the run read it once.

`ColumnMapping` says how a row becomes a `Problem`; the same dataclass serves uploads, Hub ids,
Evaluate and Train. Its `question_template` is Python format syntax over column names
(`"{Body} {Question}"`, `{{` for a brace), validated against the real columns; `choices_field`
is a list column or comma-separated lettered columns (`"A,B,C,D"`); `answer_type` is one of
`answers.ANSWER_TYPES`, or empty to infer it from the answers (`infer_answer_type`).

>>> mapping = ColumnMapping("{Body} {Question}", "Answer")
>>> mapping.problem({"Body": "Tom has 3 apples.", "Question": "How many?", "Answer": 3}, 0, "t")
Problem(id='t-0', question='Tom has 3 apples. How many?', answer='3', solution='', source='t', answer_type='number', choices=())
"""

from __future__ import annotations

import functools
import os
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mathtutor.answers import ANSWER_TYPES, LETTERS, choice_letter, parse_number, reference_answer
from mathtutor.paths import check_id, check_readable, check_repo_id
from mathtutor.problem import Problem, collect

FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
MAX_FILE_BYTES = 50_000_000
# A Hub dataset is downloaded whole (the split's files) onto the machine, a Space's small disk
# included: larger repos are refused before anything is downloaded (MATHTUTOR_MAX_HUB_BYTES).
MAX_HUB_BYTES = int(os.environ.get("MATHTUTOR_MAX_HUB_BYTES") or 2_000_000_000)
MAX_SHOWN_COLUMNS = 20
PREVIEW_ROWS = 3
_PLAIN_NAME = re.compile(r"[^.\[\]{}!:]+")  # a column name: no attribute, index or spec
_LATEX_HINT = re.compile(r"\\[A-Za-z]+|\^|_\{|\{")  # \frac, x^2, a_{1}, braces
_ALGEBRA = re.compile(r"[\w\s.]*[A-Za-z\d]\s*[-+*/=<>]\s*[\w\s.+\-*/()]+")  # x+1, 2*y, a/b


@dataclass(frozen=True)
class TableSource:
    """Where a table comes from: a Hub dataset id (config, split, revision) or a local file."""

    hub_id: str = field(default="", metadata={"help": "Hub dataset id, e.g. 'openai/gsm8k'."})
    config: str = field(
        default="", metadata={"help": "The Hub dataset's config (subset); empty = default."}
    )
    split: str = field(default="test", metadata={"help": "The Hub dataset's split."})
    revision: str = field(
        default="", metadata={"help": "The Hub dataset's branch, tag or commit; empty = main."}
    )
    path: str = field(
        default="", metadata={"help": "A local JSONL / JSON / CSV / Parquet file instead."}
    )

    def __post_init__(self) -> None:
        if not self.hub_id and not self.path:
            raise ValueError("hub_id is empty: give a Hub dataset id (owner/name) or a file path")
        if self.hub_id and self.path:
            raise ValueError(
                "give either hub_id (a Hub dataset id) or path (a local file), not both"
            )
        if self.hub_id:
            check_repo_id(self.hub_id, "hub_id")
            if self.config:
                check_id(self.config, "config")
            check_id(self.split, "split")
            for part in self.revision.split("/") if self.revision else ():
                check_id(part, "revision")

    @property
    def label(self) -> str:
        """How the source is named in problem ids and messages: `owner/name:config/split`."""
        if self.path:
            return f"upload:{Path(self.path).name}"
        config = f"{self.config}/" if self.config else ""
        at = f"@{self.revision}" if self.revision else ""
        return f"{self.hub_id}:{config}{self.split}{at}"


@dataclass(frozen=True)
class Table:
    """A loaded table: its columns and rows (an Arrow-backed `datasets.Dataset`)."""

    source: TableSource
    columns: tuple[str, ...]
    rows: Any  # datasets.Dataset: len(), rows[i] -> dict

    @property
    def num_rows(self) -> int:
        return len(self.rows)


def load_table(source: TableSource) -> Table:
    """The table `source` names, through `datasets.load_dataset` (cached per source).

    A Hub dataset that cannot be reached (offline, unknown id, unknown config or split)
    raises ValueError in one line saying which and why; a local file is first checked by
    `paths.check_readable` and its size.
    """
    if source.path:
        file = check_readable(source.path, "path")
        name = Path(source.path).name
        builder = FILE_BUILDERS.get(file.suffix.lower())
        if builder is None:
            raise ValueError(f"{name}: expected a .jsonl, .json, .csv or .parquet file")
        if not file.is_file():
            raise ValueError(f"{source.path}: no such file")
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"{name} is {size / 1e6:.1f} MB, over the limit of 50 MB")
        stat = file.stat()
        return _load_file(str(file), builder, stat.st_mtime_ns, stat.st_size, source)
    return _load_hub(source)


@functools.lru_cache(maxsize=8)
def _load_file(path: str, builder: str, mtime_ns: int, size: int, source: TableSource) -> Table:
    import datasets

    try:
        rows = datasets.load_dataset(builder, data_files=path, split="train")
    except Exception as error:  # pyarrow / json parse errors: name the file, not its content
        reason = " ".join(str(error).split())[:200]
        if "corresponds to no data" in reason:  # datasets' words for a file with no rows
            raise ValueError(f"{Path(source.path).name} holds no rows") from None
        raise ValueError(
            f"{Path(source.path).name}: could not be read as {builder} ({type(error).__name__}: {reason})"
        ) from None
    return Table(source, tuple(rows.column_names), rows)


@functools.lru_cache(maxsize=8)
def _load_hub(source: TableSource) -> Table:
    import datasets

    try:
        _check_hub_size(source)
        rows = datasets.load_dataset(
            source.hub_id,
            source.config or None,
            split=source.split,
            revision=source.revision or None,
        )
    except _TooLarge as error:
        raise ValueError(str(error)) from None
    except Exception as error:  # offline, not found, bad config/split: one line naming it
        raise ValueError(_hub_error(source, error)) from None
    return Table(source, tuple(rows.column_names), rows)


class _TooLarge(Exception):
    """A Hub dataset over MAX_HUB_BYTES (its message is the one the user sees)."""


def _check_hub_size(source: TableSource) -> None:
    """Refuse a repo whose files add up to more than MAX_HUB_BYTES (one metadata request;
    offline it fails like the download would, and the caller words that)."""
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        return  # only the cache can serve it, and load_dataset says so
    info = HfApi().dataset_info(
        source.hub_id, revision=source.revision or None, files_metadata=True
    )
    total = sum(sibling.size or 0 for sibling in info.siblings or [])
    if total > MAX_HUB_BYTES:
        raise _TooLarge(
            f"hub_id {source.hub_id!r}: its files add up to {total / 1e9:.1f} GB, over this "
            f"app's limit of {MAX_HUB_BYTES / 1e9:.1f} GB (MATHTUTOR_MAX_HUB_BYTES)"
        )


def _hub_error(source: TableSource, error: Exception) -> str:
    reason = " ".join(str(error).split())[:300]
    kind = type(error).__name__
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
    offline = offline or kind in ("ConnectionError", "OfflineModeIsEnabled", "ConnectTimeout")
    offline = offline or "offline" in reason.lower() or "connect" in reason.lower()
    if offline:
        return (
            f"hub_id {source.hub_id!r}: the Hugging Face Hub is not reachable from here "
            f"(offline), and the dataset is not cached; run with network once, or use a local "
            f"file ({kind}: {reason})"
        )
    return f"hub_id {source.label!r}: cannot load it ({kind}: {reason})"


def clear_cache() -> None:
    """Forget the tables loaded in this process (datasets' disk cache stays)."""
    _load_file.cache_clear()
    _load_hub.cache_clear()


def _listed(columns: Sequence[str]) -> str:
    shown = ", ".join(columns[:MAX_SHOWN_COLUMNS]) or "(none)"
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > MAX_SHOWN_COLUMNS else "")


# --------------------------------------------------------------------------- the mapping
@dataclass(frozen=True)
class ColumnMapping:
    """How one row becomes a `Problem`: which columns hold the question, answer and the rest."""

    question_template: str = field(
        default="{question}",
        metadata={"help": "The question from columns, e.g. '{Body} {Question}'."},
    )
    answer_field: str = field(default="answer", metadata={"help": "Column holding the answer."})
    solution_field: str = field(
        default="", metadata={"help": "Column with a worked solution (optional)."}
    )
    id_field: str = field(default="", metadata={"help": "Column with a row id (optional)."})
    choices_field: str = field(
        default="",
        metadata={"help": "Multiple choice: a list column, or lettered columns 'A,B,C,D'."},
    )
    answer_type: str = field(
        default="",
        metadata={
            "help": "number, latex, choice or exact; empty = inferred from the answers.",
            "choices": ("", *ANSWER_TYPES),
        },
    )

    def __post_init__(self) -> None:
        if not isinstance(self.question_template, str) or not self.question_template.strip():
            raise ValueError("question_template is empty: expected e.g. '{question}'")
        if not self.template_fields:
            raise ValueError(
                f"question_template {self.question_template!r} names no column: "
                "put column names in braces, e.g. '{Body} {Question}'"
            )
        if not str(self.answer_field).strip():
            raise ValueError("answer_field is empty: name the column holding the answer")
        if self.answer_type and self.answer_type not in ANSWER_TYPES:
            raise ValueError(
                f"answer_type {self.answer_type!r} is not one of: {', '.join(ANSWER_TYPES)} "
                "(or empty to infer it)"
            )

    @classmethod
    def of(cls, settings: Any) -> ColumnMapping:
        """The mapping a config names with these same field names (`EvalConfig`,
        `TrainConfig`); an empty `question_template` means `{question_field}`."""
        return cls(
            question_template=settings.question_template or "{" + settings.question_field + "}",
            answer_field=settings.answer_field,
            solution_field=settings.solution_field or "",
            id_field=settings.id_field or "",
            choices_field=settings.choices_field or "",
            answer_type=settings.answer_type or "",
        )

    @property
    def template_fields(self) -> tuple[str, ...]:
        """The column names the template uses, in order (ValueError on bad syntax)."""
        try:
            parsed = list(string.Formatter().parse(self.question_template))
        except ValueError as error:
            raise ValueError(
                f"question_template {self.question_template!r}: {error} (write {{{{ for a brace)"
            ) from None
        names = []
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if not name or spec or conversion or name.isdigit() or not _PLAIN_NAME.fullmatch(name):
                raise ValueError(
                    f"question_template {self.question_template!r}: {{{name}}} is not a plain "
                    "column name (no positions, attributes, indexes or format specs)"
                )
            names.append(name)
        return tuple(dict.fromkeys(names))

    @property
    def choice_columns(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.choices_field.split(",") if part.strip())

    def check_columns(self, columns: Sequence[str], where: str = "the dataset") -> None:
        """ValueError naming the first missing column and listing the columns found."""
        wanted = [
            ("question_template", self.template_fields),
            ("answer_field", (self.answer_field,)),
            ("solution_field", (self.solution_field,) if self.solution_field else ()),
            ("id_field", (self.id_field,) if self.id_field else ()),
            ("choices_field", self.choice_columns),
        ]
        for setting, names in wanted:
            for name in names:
                if name not in columns:
                    raise ValueError(
                        f"{setting}: {where} has no column {name!r}; columns found: {_listed(list(columns))}"
                    )

    def choices(self, row: dict[str, Any]) -> tuple[str, ...]:
        """A row's options, in letter order."""
        columns = self.choice_columns
        if not columns:
            return ()
        if len(columns) == 1:
            value = row.get(columns[0])
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"column {columns[0]!r} is not a list of choices")
            return tuple(str(item).strip() for item in value)
        return tuple(str(row.get(column, "")).strip() for column in columns)

    def problem(
        self, row: dict[str, Any], index: int, source: str, answer_type: str = ""
    ) -> Problem:
        """The problem row `index` describes; ValueError naming the column otherwise."""
        parts = {}
        for name in self.template_fields:
            value = row.get(name)
            parts[name] = "" if value is None else str(value).strip()
        question = self.question_template.format(**parts).strip()
        if not question:
            raise ValueError(f"the question ({self.question_template!r}) is empty")
        answer = row.get(self.answer_field)
        if isinstance(answer, bool) or answer is None or not str(answer).strip():
            raise ValueError(f"column {self.answer_field!r} is missing or empty")
        answer = str(answer).strip()
        choices = self.choices(row)
        kind = answer_type or self.answer_type or ("choice" if choices else "number")
        if choices:
            if len(choices) > len(LETTERS):
                raise ValueError(f"more than {len(LETTERS)} choices")
            question += "\n\n" + "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
        solution = str(row.get(self.solution_field) or "").strip() if self.solution_field else ""
        if kind == "number":
            final = reference_answer(answer)
            if not final or parse_number(final) is None:
                shown = answer if len(answer) <= 30 else answer[:27] + "..."
                raise ValueError(
                    f"column {self.answer_field!r} is not a number ({shown!r}); "
                    "set answer_type to latex, choice or exact"
                )
            if not solution and "####" in answer:
                solution = answer
            answer = final
        elif kind == "choice":
            letter = choice_letter(answer, choices)
            if letter is None:
                shown = answer if len(answer) <= 30 else answer[:27] + "..."
                raise ValueError(f"column {self.answer_field!r} ({shown!r}) names no choice")
            answer = letter
        row_id = str(row.get(self.id_field) or "").strip() if self.id_field else ""
        return Problem(
            row_id or f"{source}-{index}", question, answer, solution, source, kind, choices
        )


def mapping_help(name: str) -> str:
    """The help text of `ColumnMapping` field `name`, for the config fields that carry it
    (`EvalConfig`, `TrainConfig`), so the three say the same.

    >>> mapping_help("id_field")
    'Column with a row id (optional).'
    """
    return next(f.metadata["help"] for f in fields(ColumnMapping) if f.name == name)


def infer_answer_type(answers: Sequence[Any], has_choices: bool = False) -> str:
    """The answer type a column of answers looks like: choice, number, latex or exact.

    >>> infer_answer_type(["72", "#### 1,000", "\\\\boxed{3}"]), infer_answer_type(["\\\\frac{1}{2}", "x+1"])
    ('number', 'latex')
    >>> infer_answer_type(["Paris", "Euler"]), infer_answer_type(["B"], has_choices=True)
    ('exact', 'choice')
    """
    if has_choices:
        return "choice"
    texts = [str(a).strip() for a in answers if a is not None and str(a).strip()]
    if texts and all(parse_number(reference_answer(t)) is not None for t in texts):
        return "number"
    if texts and any(_LATEX_HINT.search(t) or _ALGEBRA.fullmatch(t) for t in texts):
        return "latex"
    return "exact"


# --------------------------------------------------------------------------- problems
def resolve_type(table: Table, mapping: ColumnMapping) -> str:
    """The mapping's answer type, else the one the first 200 answers suggest."""
    if mapping.answer_type:
        return mapping.answer_type
    head = table.rows.select(range(min(200, table.num_rows)))
    return infer_answer_type(list(head[mapping.answer_field]), bool(mapping.choice_columns))


def problems(
    table: Table, mapping: ColumnMapping, indices: Sequence[int] | None = None
) -> list[Problem]:
    """Rows `indices` (default all) of `table` as problems; any invalid row fails the whole
    call, listing a few by row number and column (`problem.collect`)."""
    mapping.check_columns(table.columns, table.source.label)
    kind = resolve_type(table, mapping)
    chosen = range(table.num_rows) if indices is None else indices
    rows = table.rows
    label = table.source.label
    return collect(
        (
            (f"row {i}", functools.partial(mapping.problem, rows[int(i)], int(i), label, kind))
            for i in chosen
        ),
        label,
    )


@dataclass(frozen=True)
class Preview:
    """What the UI shows before a run: the columns found, the row count, three mapped rows."""

    source: str
    columns: tuple[str, ...]
    num_rows: int
    answer_type: str
    problems: tuple[Problem, ...]
    error: str = ""  # why the mapping does not fit (the columns are still shown)

    def markdown(self) -> str:
        """The preview as the tabs show it."""
        lines = [
            f"**{self.source}**: {self.num_rows:,} rows; columns: "
            + ", ".join(f"`{c}`" for c in self.columns[:MAX_SHOWN_COLUMNS])
        ]
        if self.error:
            return "\n\n".join([*lines, f"⚠️ {self.error}"])
        lines.append(f"answer type: **{self.answer_type}**")
        for problem in self.problems:
            question = (
                problem.question if len(problem.question) <= 400 else problem.question[:397] + "..."
            )
            lines.append(f"- `{problem.id}`: {question}\n  → answer: `{problem.answer}`")
        return "\n\n".join(lines)


def preview(source: TableSource, mapping: ColumnMapping, num_rows: int = PREVIEW_ROWS) -> Preview:
    """Load `source` and map its first `num_rows` rows (a mapping error is kept, not raised,
    so the columns are still shown; a source that cannot be loaded raises)."""
    table = load_table(source)
    try:
        shown = problems(table, mapping, range(min(num_rows, table.num_rows)))
        kind = shown[0].answer_type if shown else resolve_type(table, mapping)
        return Preview(table.source.label, table.columns, table.num_rows, kind, tuple(shown))
    except ValueError as error:
        return Preview(table.source.label, table.columns, table.num_rows, "", (), str(error))


def with_type(mapping: ColumnMapping, answer_type: str) -> ColumnMapping:
    """The mapping with its answer type set (e.g. by a preset)."""
    return replace(mapping, answer_type=answer_type)
