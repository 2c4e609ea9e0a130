"""The command line: flags built from a config dataclass, and the one way every CLI exits.

`config_parser(EvalConfig, prog)` gives one flag per dataclass field, named as the field
(`--num_samples`, with `--num-samples` as an alias), its help text from `metadata["help"]`,
the choices from `metadata["choices"]` and the fields grouped by `metadata["section"]` when
the fields carry one. Only flags that were given appear in the parsed namespace, so they can
override a YAML file. Values are parsed from text but never validated here: the dataclass's
`__post_init__` is the one judge of a value, so the UI, YAML recipes and flags all get the
same message (`--max_steps inf` is refused by `TrainConfig`, naming `max_steps`).

`run(main)` is what every `__main__` block calls: it first sets the thread policy
(`configure_threads`, also called by `app.py`) before anything imports torch, then bad input (`ValueError`, which includes
`HubError`, `FileNotFoundError`, `PermissionError`) becomes one line on stderr naming the
field, file or line, and exit code 2; `--debug` anywhere on the command line shows the
traceback instead.

    if __name__ == "__main__":
        sys.exit(cli.run(main))

Light module: the standard library only (no torch, no gradio).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

DEBUG_FLAG = "--debug"
DEBUG_HELP = f"{DEBUG_FLAG}: on an error, show the full traceback instead of one line."
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
# What a user got wrong (HubError is a ValueError): one line, exit 2.
BAD_INPUT = (ValueError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
EXIT_OS_ERROR = 1  # the machine refused (disk full, I/O error): one line too, not a bug


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, but a usage error is one line on stderr (exit 2), like every error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


# --------------------------------------------------------------------------- flags from fields
def config_parser(
    config_class: type, prog: str, description: str = "", parser: ArgumentParser | None = None
) -> ArgumentParser:
    """A parser (or `parser`, given) with one flag per field of the dataclass `config_class`.

    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Demo:
    ...     steps: int = field(default=1, metadata={"help": "How many."})
    ...     fast: bool = field(default=False, metadata={"help": "Hurry."})
    >>> vars(config_parser(Demo, "demo").parse_args(["--steps", "1e3", "--fast"]))
    {'steps': 1000, 'fast': True}
    >>> vars(config_parser(Demo, "demo").parse_args(["--steps", "inf", "--fast", "no"]))
    {'steps': inf, 'fast': False}
    """
    if parser is None:
        parser = ArgumentParser(prog=prog, description=description, epilog=DEBUG_HELP)
    hints = typing.get_type_hints(config_class)
    groups: dict[str, Any] = {}
    for item in dataclasses.fields(config_class):
        section = item.metadata.get("section")
        if section is not None and section not in groups:
            groups[section] = parser.add_argument_group(section)
        target = groups[section] if section is not None else parser
        _add_flag(target, item, hints[item.name])
    return parser


def _add_flag(parser: Any, item: dataclasses.Field, annotation: Any) -> None:
    name, kind = item.name, _scalar(annotation)
    flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    choices = item.metadata.get("choices")
    options: dict[str, Any] = {
        "dest": name,
        "default": argparse.SUPPRESS,  # only the flags given override a file or the defaults
        "help": _help(item),
        "metavar": "{" + ",".join(map(str, choices)) + "}" if choices else name.upper(),
    }
    if kind is bool:
        # --calculator, --calculator false, --no-calculator: all three spellings work
        parser.add_argument(*flags, nargs="?", const=True, type=parse_bool, **options)
        negated = [f"--no_{name}", f"--no-{name.replace('_', '-')}"]
        parser.add_argument(
            *negated, dest=name, action="store_false", default=argparse.SUPPRESS,
            help=f"Same as --{name} false.",
        )  # fmt: skip
    elif typing.get_origin(annotation) is list:
        parser.add_argument(*flags, nargs="+", **options)
    elif kind in (int, float):
        parser.add_argument(*flags, type=parse_number, **options)
    else:
        parser.add_argument(*flags, **options)


def _scalar(annotation: Any) -> Any:
    """int / float / bool / str of a field, `X | None` unwrapped; None for lists and unions."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        annotation = options[0] if len(options) == 1 else None
    return annotation if annotation in (int, float, bool, str) else None


def _help(item: dataclasses.Field) -> str:
    text = item.metadata.get("help", "")
    default = item.default
    if item.default_factory is not dataclasses.MISSING:
        default = item.default_factory()
    if default not in (dataclasses.MISSING, None, ""):
        shown = " ".join(map(str, default)) if isinstance(default, list) else default
        text = f"{text} (default: {shown})"
    return text.replace("%", "%%")


def parse_number(text: str) -> int | float | str:
    """Text to int (also `1e3`) or float; anything else is passed on for the config to refuse.

    Non-finite values (`inf`, `nan`) come back as floats, so the config's validation names
    the field that got them.

    >>> parse_number("12"), parse_number("1e3"), parse_number("0.5"), parse_number("ten")
    (12, 1000, 0.5, 'ten')
    """
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if math.isfinite(number) and number == int(number) else number


def parse_bool(text: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case).

    >>> parse_bool("Yes"), parse_bool("0")
    (True, False)
    """
    word = str(text).strip().lower()
    if word in ("true", "1", "yes", "on"):
        return True
    if word in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# --------------------------------------------------------------------------- threads
THREADS_ENV = "MATHTUTOR_THREADS"


def thread_count(cpus: int, load: float, setting: str | None = None) -> int:
    """How many threads torch should use: `setting` (MATHTUTOR_THREADS) when given, else the
    CPUs this process may run on minus the load already on them (rounded), at least 1.

    On a shared CPU a thread more than the free cores makes decoding slower, not faster:
    measured on 2 cores with other processes busy, batch-16 decoding ran at 31 tok/s with 1
    thread and 6-14 with 2 (`bench/bench_threads.py`).

    >>> thread_count(2, 0.1), thread_count(2, 0.8), thread_count(2, 7.4), thread_count(16, 3.2)
    (2, 1, 1, 13)
    >>> thread_count(2, 7.4, "2"), thread_count(8, 0.0, " ")
    (2, 8)
    >>> thread_count(2, 0.0, "two")
    Traceback (most recent call last):
    ValueError: MATHTUTOR_THREADS must be a whole number of threads (1 or more), got 'two'
    """
    if setting is not None and setting.strip():
        try:
            threads = int(setting)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ValueError(
                f"{THREADS_ENV} must be a whole number of threads (1 or more), got {setting!r}"
            )
        return threads
    cpus = max(1, cpus)
    return max(1, min(cpus, round(cpus - max(0.0, load))))


def configure_threads(environ: dict[str, str] | None = None) -> int:
    """Set the thread policy for this process, before torch starts (or, if it already has,
    through `torch.set_num_threads`): `OMP_WAIT_POLICY=PASSIVE` unless set (idle OpenMP
    threads sleep instead of spinning on cores others need) and `OMP_NUM_THREADS` from
    `thread_count` over the allowed CPUs and the 1-minute load average, unless the user set
    OMP_NUM_THREADS and not MATHTUTOR_THREADS. Returns the thread count."""
    environ = os.environ if environ is None else environ
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    setting = environ.get(THREADS_ENV)
    if (setting is None or not setting.strip()) and environ.get("OMP_NUM_THREADS", "").isdigit():
        threads = max(1, int(environ["OMP_NUM_THREADS"]))
    else:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
        threads = thread_count(cpus or 1, load, setting)
        environ["OMP_NUM_THREADS"] = str(threads)
    environ.setdefault("MKL_NUM_THREADS", environ["OMP_NUM_THREADS"])
    torch = sys.modules.get("torch")
    if torch is not None and environ is os.environ:
        torch.set_num_threads(threads)
    return threads


# --------------------------------------------------------------------------- one exit path
def run(main: Callable[[list[str]], Any], argv: Sequence[str] | None = None) -> int:
    """Call `main(argv)` as a CLI: the exit code to pass to `sys.exit`.

    `main` returns an int exit code or anything else (0). Bad input (`BAD_INPUT`) prints one
    line `prog: error: message` on stderr and returns 2; another `OSError` (disk full, I/O
    error) prints one line and returns 1; Ctrl-C returns 130. With `--debug` in `argv`
    (removed before `main` sees it) the exception propagates with its traceback. Any other
    exception is a bug and keeps its traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in args
    try:
        configure_threads()
    except ValueError as error:  # a bad MATHTUTOR_THREADS is bad input like any other
        print(f"{program(main)}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    args = [arg for arg in args if arg != DEBUG_FLAG]
    try:
        result = main(args)
    except BAD_INPUT as error:
        if debug:
            raise
        print(f"{program(main)}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        if debug:
            raise
        print(f"{program(main)}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_OS_ERROR
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{program(main)}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def program(main: Callable) -> str:
    """`python -m package.module` for the module `main` is defined in (also under `-m`)."""
    module = sys.modules.get(main.__module__)
    spec = getattr(module, "__spec__", None)
    return f"python -m {spec.name if spec is not None else main.__module__}"


def one_line(error: BaseException) -> str:
    """The error's message on one line; an OSError as `file: reason`.

    >>> one_line(FileNotFoundError(2, "No such file or directory", "run.yaml"))
    'run.yaml: No such file or directory'
    >>> one_line(ValueError("first\\n  second"))
    'first second'
    """
    if isinstance(error, OSError) and error.filename is not None:
        text = f"{error.filename}: {error.strerror or error}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())
