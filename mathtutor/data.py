"""Math problems: GSM8K (local files or the Hub), synthetic generators, and user uploads.

Everything becomes a list of :class:`Problem`. GSM8K is read from ``$MATHTUTOR_GSM8K_DIR``
(``train.jsonl``, ``test.jsonl``, ``test_socratic.jsonl``) when set, else from the Hub dataset
``openai/gsm8k``. ``datasets`` is imported only on that Hub path.

>>> problems = load_problems("arithmetic", num_samples=3, seed=1, difficulty="easy")
>>> len(problems), problems[0].id
(3, 'arithmetic-test-1-0')
>>> [p.id for p in sample(problems, 2, seed=0)] == [p.id for p in sample(problems, 2, seed=0)]
True
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mathtutor import generators, tables
from mathtutor.answers import parse_number, reference_answer
from mathtutor.paths import GSM8K_DIR_ENV, check_readable
from mathtutor.problem import Problem, collect, quoted

GSM8K_HUB_ID = "openai/gsm8k"
MAX_UPLOAD_BYTES = 50_000_000
# An error about an upload quotes only that file, and only a little of it: at most this many
# invalid rows, column names and characters of a quoted value.
MAX_REPORTED_COLUMNS = 10  # (rows and characters: problem.MAX_REPORTED_ROWS, MAX_QUOTED_CHARS)

DATASETS: dict[str, str] = {
    "gsm8k": "GSM8K grade-school word problems (main answers, 7,473 train / 1,319 test).",
    "gsm8k-socratic": "GSM8K with socratic answers: 'sub-question? ** step' lines.",
    "inequalities": "Generated: count integers in [a, b] satisfying a linear inequality.",
    "arithmetic": "Generated: rate x time, units, half/twice as many, percentages, totals.",
    "two-step": "Generated: two-step word problems with small whole numbers (quick CPU demo).",
    "upload": "Your own JSONL / JSON / CSV / Parquet file, columns mapped by a template.",
    "hub": "Any Hugging Face Hub dataset by id (config, split, revision), columns mapped.",
}
GENERATED = tuple(generators.KINDS)  # the datasets drawn from `mathtutor.generators`
# Generated sets when no num_samples is given: seed 003 trained on 2,000 generated problems.
GENERATED_SIZES = {"train": 2000, "test": 200}


# ---------------------------------------------------------------- GSM8K


def load_gsm8k(
    split: str = "test", config: str = "main", data_dir: str | os.PathLike | None = None
) -> list[Problem]:
    """GSM8K ``config`` ("main" or "socratic") ``split`` ("train" or "test") as problems.

    Reads ``data_dir`` or ``$MATHTUTOR_GSM8K_DIR`` when either is set (``train.jsonl``,
    ``test.jsonl``; socratic: ``test_socratic.jsonl``, ``train_socratic.jsonl``), otherwise
    ``datasets.load_dataset("openai/gsm8k", config, split=split)``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"GSM8K split must be 'train' or 'test', got {split!r}")
    if config not in ("main", "socratic"):
        raise ValueError(f"GSM8K config must be 'main' or 'socratic', got {config!r}")
    prefix = "gsm8k" if config == "main" else "gsm8k-socratic"
    source = f"gsm8k/{config}/{split}"
    directory = data_dir or os.environ.get(GSM8K_DIR_ENV) or None
    if directory is not None:
        name = f"{split}.jsonl" if config == "main" else f"{split}_socratic.jsonl"
        path = Path(directory).expanduser() / name
        if not path.is_file():
            origin = "data_dir" if data_dir else f"${GSM8K_DIR_ENV}"
            raise FileNotFoundError(
                f"GSM8K {config}/{split} needs {path} ({origin} is {directory}); add that file, "
                f"or unset {GSM8K_DIR_ENV} to download {GSM8K_HUB_ID} from the Hub"
            )
        stat = path.stat()
        return list(
            _read_gsm8k_file(str(path.resolve()), stat.st_mtime_ns, stat.st_size, prefix, source)
        )
    try:
        import datasets

        rows = datasets.load_dataset(GSM8K_HUB_ID, config, split=split)
    except Exception as error:  # offline, missing cache, auth: one message naming both ways
        reason = " ".join(str(error).split())[:300]
        raise ValueError(  # bad input like an unreachable Hub id: one line, in the CLI and UI
            f"cannot load GSM8K {config}/{split}: set {GSM8K_DIR_ENV} to a directory with "
            f"train.jsonl / test.jsonl / test_socratic.jsonl, or make the Hub dataset "
            f"{GSM8K_HUB_ID} reachable (Hub error: {type(error).__name__}: {reason})"
        ) from error
    return [_gsm8k_problem(row, i, prefix, split, source) for i, row in enumerate(rows)]


@functools.lru_cache(maxsize=8)
def _read_gsm8k_file(
    path: str, mtime_ns: int, size: int, prefix: str, source: str
) -> tuple[Problem, ...]:
    """Parsed once per (path, mtime, size): a changed file is read again."""
    split = source.rsplit("/", 1)[1]
    problems = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path} line {line_number}: not valid JSON ({error.msg})"
                ) from None
            problems.append(_gsm8k_problem(row, len(problems), prefix, split, source))
    return tuple(problems)


def _gsm8k_problem(row: Any, index: int, prefix: str, split: str, source: str) -> Problem:
    solution = row["answer"]
    return Problem(
        f"{prefix}-{split}-{index}", row["question"], reference_answer(solution), solution, source
    )


# ---------------------------------------------------------------- sampling


def sample(problems: list[Problem], num_samples: int, seed: int = 0) -> list[Problem]:
    """``num_samples`` problems drawn without replacement, the same for the same seed.

    A smaller sample is a prefix of a larger one with the same seed, so 50 then 100 problems
    share their first 50.

    >>> items = [Problem(str(i), "q", "1") for i in range(10)]
    >>> [p.id for p in sample(items, 3, seed=7)] == [p.id for p in sample(items, 5, seed=7)][:3]
    True
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
        raise ValueError(f"num_samples must be an integer, got {num_samples!r}")
    if not 1 <= num_samples <= len(problems):
        raise ValueError(
            f"num_samples must be between 1 and {len(problems)} (the number of problems), got {num_samples}"
        )
    return [problems[i] for i in sample_indices(len(problems), num_samples, seed)]


def sample_indices(total: int, num_samples: int, seed: int = 0) -> list[int]:
    """The positions ``sample`` draws from ``total`` items (so a table is sampled before its
    rows are mapped).

    >>> sample_indices(10, 3, seed=7) == sample_indices(10, 5, seed=7)[:3]
    True
    """
    if not 1 <= num_samples <= total:
        raise ValueError(
            f"num_samples must be between 1 and {total} (the number of problems), got {num_samples}"
        )
    return random.Random(seed).sample(range(total), total)[:num_samples]


def split_train_val(
    problems: list[Problem], val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Problem], list[Problem]]:
    """Deterministic (train, validation) split; both keep the original order.

    >>> train, val = split_train_val([Problem(str(i), "q", "1") for i in range(20)], 0.1)
    >>> len(train), len(val)
    (18, 2)
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    num_val = max(1, round(len(problems) * val_fraction))
    if num_val >= len(problems):
        raise ValueError(
            f"cannot split {len(problems)} problems with val_fraction={val_fraction}: need at least 2"
        )
    held_out = set(random.Random(seed).sample(range(len(problems)), num_val))
    train = [p for i, p in enumerate(problems) if i not in held_out]
    return train, [p for i, p in enumerate(problems) if i in held_out]


# ---------------------------------------------------------------- user files


def load_user_dataset(
    path: str | os.PathLike,
    question_field: str = "question",
    answer_field: str = "answer",
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> list[Problem]:
    """Problems from a JSONL, JSON (a list, or ``{"data": [...]}``) or CSV/TSV file.

    The answer may be a GSM8K solution ending in ``#### 72``, a ``\\boxed{72}``, or a bare
    number. Optional ``id`` and ``solution`` fields are kept. Any invalid row makes the whole
    file fail, with up to ``MAX_REPORTED_ROWS`` problems listed by line (or item) number and
    field. Only an upload or a file under an allowed root is read (``paths.check_readable``,
    checked before the file is touched); a refused path's message holds none of its content.
    """
    file = check_readable(path, "path")
    name = Path(path).name
    if not file.is_file():
        raise ValueError(f"{path}: no such file")
    size = file.stat().st_size
    if size == 0:
        raise ValueError(f"{name} is empty")
    if size > max_bytes:
        raise ValueError(f"{name} is {_size(size)}, over the limit of {_size(max_bytes)}")
    data = file.read_bytes()
    if b"\x00" in data:
        raise ValueError(
            f"{name} looks binary (it contains NUL bytes): expected JSONL, JSON or CSV text"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{name} is not UTF-8 text (bad byte at offset {error.start}): save it as UTF-8"
        ) from None
    if not text.strip():
        raise ValueError(f"{name} is empty (only whitespace)")
    rows, columns = _rows(name, text, _file_format(Path(name).suffix.lower(), text))
    for field in (question_field, answer_field):
        if columns and field not in columns:  # no columns at all: the rows' own errors say why
            raise ValueError(f"{name}: missing column {field!r}; columns found: {_listed(columns)}")
    label, stem = f"upload:{name}", Path(name).stem

    def make(where: str, row: Any) -> Callable[[], Problem]:
        default_id = f"{stem}-{where.split()[-1]}"
        return lambda: _row_problem(row, default_id, label, question_field, answer_field)

    # where: "line 3" (JSONL, CSV) or "item 3" (JSON)
    return collect(((where, make(where, row)) for where, row in rows), name)


def _listed(columns: list[str]) -> str:
    """The first MAX_REPORTED_COLUMNS column names, each shortened.

    >>> _listed([f"c{i}" for i in range(12)])
    'c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, ... (12 in all)'
    """
    shown = ", ".join(quoted(column) for column in columns[:MAX_REPORTED_COLUMNS]) or "(none)"
    more = f", ... ({len(columns)} in all)" if len(columns) > MAX_REPORTED_COLUMNS else ""
    return shown + more


def _size(num_bytes: int) -> str:
    return f"{num_bytes} bytes" if num_bytes < 1_000_000 else f"{num_bytes / 1e6:.1f} MB"


def _file_format(suffix: str, text: str) -> str:
    """'jsonl', 'json', 'csv' or 'tsv', by extension, else by looking at the text."""
    known = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}
    if suffix in known:
        return known[suffix]
    stripped = text.lstrip()
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        try:
            json.loads(text)
            return "json"
        except json.JSONDecodeError:
            return "jsonl"
    return "tsv" if "\t" in stripped.splitlines()[0] else "csv"


def _rows(name: str, text: str, file_format: str) -> tuple[list[tuple[str, Any]], list[str]]:
    """(where, row) pairs, where is 'line 3' / 'item 3', and the column names seen."""
    rows: list[tuple[str, Any]] = []
    if file_format in ("csv", "tsv"):
        reader = csv.DictReader(
            io.StringIO(text, newline=""), delimiter="\t" if file_format == "tsv" else ","
        )
        columns = [c for c in (reader.fieldnames or []) if c]
        try:
            for row in reader:
                rows.append((f"line {reader.line_num}", row))
        except csv.Error as error:
            raise ValueError(f"{name} line {reader.line_num}: not valid CSV ({error})") from None
        return rows, columns
    if file_format == "jsonl":
        for line_number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"line {line_number}", json.loads(line)))
                except json.JSONDecodeError as error:
                    rows.append((f"line {line_number}", _BadJson(error.msg)))
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{name} line {error.lineno} column {error.colno}: not valid JSON ({error.msg})"
            ) from None
        if isinstance(document, dict) and isinstance(document.get("data"), list):
            document = document["data"]
        if not isinstance(document, list):
            raise ValueError(
                f'{name}: expected a JSON list of objects or {{"data": [...]}}, got {type(document).__name__}'
            )
        rows = [(f"item {i}", item) for i, item in enumerate(document, 1)]
    return rows, _columns(row for _, row in rows)


class _BadJson(str):
    """Marks a JSONL line that did not parse; the text is the parser's message."""


def _columns(rows: Iterable[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        if isinstance(row, dict):
            seen.update(dict.fromkeys(row))
    return list(seen)


def _row_problem(
    row: Any, default_id: str, source: str, question_field: str, answer_field: str
) -> Problem:
    """The problem one row describes; ValueError naming the field otherwise."""
    if isinstance(row, _BadJson):
        raise ValueError(f"not valid JSON ({row})")
    if not isinstance(row, dict):
        raise ValueError(
            f"expected an object with {question_field!r} and {answer_field!r}, got {type(row).__name__}"
        )
    question, answer = row.get(question_field), row.get(answer_field)
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"field {question_field!r} is missing or empty")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError(f"field {answer_field!r} is missing or empty")
    final = reference_answer(answer)
    if not final or parse_number(final) is None:
        raise ValueError(
            f"field {answer_field!r} is not a number, '... #### N' or \\boxed{{N}}: "
            f"{quoted(answer)!r}"
        )
    row_id = row.get("id")
    if not isinstance(row_id, (str, int)) or not str(row_id).strip():
        row_id = default_id
    solution = row.get("solution")
    if not isinstance(solution, str):  # a worked answer doubles as the solution
        solution = answer.strip() if "####" in answer or "\n" in answer.strip() else ""
    return Problem(str(row_id).strip(), question.strip(), final, solution, source)


# ---------------------------------------------------------------- one entry point


def load_problems(
    dataset: str,
    split: str = "test",
    num_samples: int | None = None,
    seed: int = 0,
    path: str | os.PathLike | None = None,
    question_field: str = "question",
    answer_field: str = "answer",
    difficulty: str = "medium",
    mapping: tables.ColumnMapping | None = None,
    hub_id: str = "",
    hub_config: str = "",
    revision: str = "",
) -> list[Problem]:
    """Problems from one of ``DATASETS``, optionally a seeded sample of ``num_samples``.

    Generated sets draw train and test from disjoint questions (see ``generators.generate``);
    without ``num_samples`` they hold ``GENERATED_SIZES[split]`` problems. ``upload`` reads
    ``path`` and ignores ``split``; ``difficulty`` is for the generators only. ``hub`` reads
    ``hub_id`` (``hub_config``, ``split``, ``revision``) through ``tables.load_table``, as does
    an upload that is Parquet or has a ``mapping`` beyond one question and one numeric answer
    column (a plain JSONL / JSON / CSV upload keeps this module's reader and its line-numbered
    errors). A table is sampled before its rows are mapped, with the same draw as ``sample``.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    plain = tables.ColumnMapping("{" + question_field + "}", answer_field)
    mapping = mapping or plain
    if dataset == "hub" or (
        dataset == "upload"
        and path is not None
        and (mapping != plain or Path(path).suffix.lower() == ".parquet")
    ):
        if dataset == "hub":
            source = tables.TableSource(hub_id, hub_config, split, revision)
        else:
            source = tables.TableSource(path=str(path))
        table = tables.load_table(source)
        indices = None if num_samples is None else sample_indices(table.num_rows, num_samples, seed)
        return tables.problems(table, mapping, indices)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if dataset in GENERATED:
        count = GENERATED_SIZES[split] if num_samples is None else num_samples
        return generators.generate(dataset, count, seed=seed, difficulty=difficulty, split=split)
    if dataset == "upload":
        if path is None:
            raise ValueError("dataset 'upload' needs path: the JSONL / JSON / CSV file to read")
        problems = load_user_dataset(path, question_field=question_field, answer_field=answer_field)
    else:
        problems = load_gsm8k(split, "main" if dataset == "gsm8k" else "socratic")
    return problems if num_samples is None else sample(problems, num_samples, seed)


def random_problem(dataset: str, difficulty: str = "easy", seed: int | None = None) -> Problem:
    """One problem to try: a random GSM8K test problem, or a fresh generated one.

    ``dataset`` is ``gsm8k``, ``gsm8k-socratic`` (its solution asks a sub-question per step)
    or a generator kind; ``seed`` None draws a different one each
    call. A GSM8K source that cannot be read raises ValueError saying how to provide it.

    >>> random_problem("arithmetic", seed=1) == random_problem("arithmetic", seed=1)
    True
    """
    rng = random.Random(seed)
    if dataset in GENERATED:
        return generators.random_problem(dataset, difficulty or "easy", rng)
    if dataset not in ("gsm8k", "gsm8k-socratic"):
        raise ValueError(
            f"dataset {dataset!r}: expected gsm8k, gsm8k-socratic or one of {', '.join(GENERATED)}"
        )
    try:
        problems = load_problems(dataset, split="test")
    except FileNotFoundError as error:
        raise ValueError(str(error)) from error
    return rng.choice(problems)
