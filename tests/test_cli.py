"""The command lines as a user runs them: one line and exit code 2 for bad input, a traceback
only with --debug, unknown models answered with what loads offline, flags = config fields."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import doctest
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mathtutor import cli, hub, store
from mathtutor.evaluate import EvalConfig, config_from_args
from mathtutor.evaluate import _parser as evaluate_parser
from training.config import TrainConfig, build_parser, parse_cli
from training.lifecycle import _failure_message

REPO = Path(__file__).resolve().parent.parent
# Every module with a `__main__` block; each must exit through `cli.run`.
CLI_MODULES = [
    "mathtutor.evaluate", "mathtutor.hub", "mathtutor.compare", "mathtutor.models",
    "mathtutor.store", "mathtutor.tutor", "mathtutor.hints", "mathtutor.verdicts", "training.sft", "training.grpo", "training.runs",
    "mathtutor.export",
]  # fmt: skip


REQUIRED = {
    "mathtutor.hub": ["list"],
    "mathtutor.compare": ["1+1?"],
    "mathtutor.tutor": ["1+1?"],
    "mathtutor.hints": ["1+1?"],
    "mathtutor.verdicts": ["1+1?"],
    "mathtutor.export": ["adapter", "out"],
}


def run_cli(module: str, *args: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    environment = dict(
        os.environ, MATHTUTOR_HOME=str(home), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **env
    )
    return subprocess.run(
        [sys.executable, "-m", module, *args], env=environment, cwd=REPO,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def error_lines(result: subprocess.CompletedProcess, module: str) -> list[str]:
    """The CLI's own error lines (libraries may log a warning of their own on import)."""
    return [line for line in result.stderr.splitlines() if line.startswith(f"python -m {module}:")]


@pytest.fixture()
def offline_home(tmp_path, tiny_model_dir) -> Path:
    """A home whose models/ holds one local checkpoint (a link to the tiny model)."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "tiny-llama").symlink_to(tiny_model_dir, target_is_directory=True)
    return home


def test_doctests_pass():
    result = doctest.testmod(cli)
    assert result.failed == 0 and result.attempted >= 6


# --------------------------------------------------------------------------- as a user runs it
def test_evaluate_bad_number_is_one_line_naming_the_field(tmp_path):
    result = run_cli("mathtutor.evaluate", "--num_samples", "0", home=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "python -m mathtutor.evaluate: error: num_samples must be between 1 and 100000, got 0"
    ]
    assert result.stdout == ""


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("mathtutor.evaluate", "--num_samples", "0", "--debug", home=tmp_path)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().endswith(
        "ValueError: num_samples must be between 1 and 100000, got 0"
    )


def test_evaluate_unknown_model_lists_what_loads_offline(offline_home):
    # generated problems: the model, not the dataset, is what fails (with or without GSM8K)
    result = run_cli("mathtutor.evaluate", "--model", "nosuch/x", "--num_samples", "2",
                     "--dataset", "arithmetic", home=offline_home, HF_HUB_OFFLINE="1")  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result, "mathtutor.evaluate")
    assert line == result.stderr.splitlines()[-1]
    assert "model 'nosuch/x' could not be loaded" in line
    offline = line.split("These load offline: ", 1)[1]
    assert "bundled" in offline and str(offline_home / "models" / "tiny-llama") in offline
    assert "local directory" in offline


def test_evaluate_without_gsm8k_offline_is_one_line(tmp_path, tiny_model_dir):
    """No GSM8K directory and no network: one line naming both ways to get it, exit 2."""
    result = run_cli("mathtutor.evaluate", "--model", str(tiny_model_dir), "--num_samples", "2",
                     home=tmp_path / "home", MATHTUTOR_GSM8K_DIR="", HF_HUB_OFFLINE="1",
                     HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result, "mathtutor.evaluate")
    assert "cannot load GSM8K main/test" in line and "MATHTUTOR_GSM8K_DIR" in line
    assert "openai/gsm8k" in line


def test_sft_unknown_model_reports_the_real_cause(offline_home):
    result = run_cli("training.sft", "--model", "nosuch/x", "--max_steps", "1",
                     home=offline_home, HF_HUB_OFFLINE="1")  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result, "training.sft")
    assert line == result.stderr.splitlines()[-1]
    assert "model 'nosuch/x' could not be loaded" in line and "bundled" in line
    assert "write failed" not in result.stdout + result.stderr
    for row in store.list_train_runs(path=offline_home / "mathtutor.db"):  # what the UI shows
        assert row["status"] == "failed"
        assert "could not be loaded" in row["error"] and "write failed" not in row["error"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("inf", "max_steps: expected a finite number, got inf"),
        ("nan", "max_steps: expected a finite number, got nan"),
        ("-3", "max_steps: must be at least 0, got -3"),
        ("1e30", "max_steps: must be at most 10000000, got 1000000000000000019884624838656"),
        ("ten", "max_steps: expected a number, got 'ten'"),
    ],
)
def test_sft_refuses_bad_max_steps_in_one_line(value, message, tmp_path):
    result = run_cli("training.sft", "--max_steps", value, "--print_config", home=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"python -m training.sft: error: {message}"]
    assert not (tmp_path / "runs").exists()  # refused before anything was started


def test_every_cli_exits_through_cli_run():
    """Each `__main__` block is `sys.exit(cli.run(main))` (three lines with the `if`)."""
    for module in CLI_MODULES:
        path = REPO / Path(*module.split(".")).with_suffix(".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        (block,) = [
            node for node in tree.body
            if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test)
        ]  # fmt: skip
        assert [ast.unparse(node) for node in block.body] == ["sys.exit(cli.run(main))"], module


@pytest.mark.parametrize("module", CLI_MODULES)
def test_every_cli_refuses_an_unknown_flag_in_one_line(module, capsys):
    main = __import__(module, fromlist=["main"]).main
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main, [*REQUIRED.get(module, []), "--no-such-flag"])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"python -m {module}: error: ") and "--no-such-flag" in line


def test_a_missing_file_is_one_line_naming_it(tmp_path, capsys):
    card = tmp_path / "no-such-card.md"
    args = ["push", "--adapter_dir", str(tmp_path), "--repo_id", "alice/x", "--card", str(card)]
    assert cli.run(hub.main, args) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"python -m mathtutor.hub: error: {card}: No such file or directory"
    ]


def test_a_permission_error_is_one_line_and_debug_reraises(capsys):
    def main(argv: list[str]) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", "/srv/data.jsonl")

    assert cli.run(main, []) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith("error: /srv/data.jsonl: Permission denied")
    with pytest.raises(PermissionError):
        cli.run(main, ["--debug"])


def test_a_failed_run_blames_the_disk_only_for_write_errors(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    full = OSError(errno.ENOSPC, "No space left on device", str(run_dir / "adapter"))
    assert "A write failed" in _failure_message(full, run_dir)
    too_large = OSError(errno.EFBIG, "File too large")
    assert "A write failed" in _failure_message(too_large, run_dir)
    missing = OSError("nosuch/x is not a local folder and is not a valid model identifier")
    assert "write failed" not in _failure_message(missing, run_dir)
    not_found = FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/x.jsonl")
    assert "write failed" not in _failure_message(not_found, run_dir)
    assert "write failed" not in _failure_message(ValueError("model 'x' ..."), run_dir)


# --------------------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"max_steps": float("inf")}, "max_steps"),
        ({"max_steps": "nan"}, "max_steps"),
        ({"epochs": float("inf")}, "epochs"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"seed": 2**40}, "seed"),
        ({"batch_size": 10**9}, "batch_size"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"beta": 1e300}, "beta"),
    ],
)
def test_train_config_refuses_non_finite_and_huge_numbers(changes, field_name):
    with pytest.raises(ValueError, match=rf"^{field_name}:"):
        TrainConfig(**changes)


def test_a_yaml_infinity_gets_the_same_message(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("max_steps: .inf\n")
    with pytest.raises(ValueError, match=r"^max_steps: expected a finite number, got inf$"):
        TrainConfig.from_yaml(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_samples": float("inf")}, "num_samples must be a finite number, got inf"),
        ({"temperature": float("nan")}, "temperature must be a finite number, got nan"),
        ({"num_samples": 2.5}, "num_samples must be a whole number, got 2.5"),
        ({"seed": -1}, "seed must be between 0 and 4294967295, got -1"),
        ({"batch_size": 10**9}, "batch_size must be between 1 and 4096 or empty"),
        ({"max_new_tokens": "many"}, "max_new_tokens must be a number, got 'many'"),
    ],
)
def test_eval_config_refuses_non_finite_and_huge_numbers(changes, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        EvalConfig(**changes)


def test_a_whole_float_is_taken_as_an_int():
    config = EvalConfig(num_samples=5.0, batch_size=8.0)
    assert (config.num_samples, config.batch_size) == (5, 8)
    assert type(config.num_samples) is int and type(config.batch_size) is int


# --------------------------------------------------------------------------- flags = fields
@pytest.mark.parametrize(
    ("config_class", "parser"),
    [(EvalConfig, evaluate_parser()), (TrainConfig, build_parser("python -m training.sft"))],
)
def test_every_field_has_a_flag_with_its_help(config_class, parser):
    actions = {option: action for action in parser._actions for option in action.option_strings}
    for item in dataclasses.fields(config_class):
        action = actions[f"--{item.name}"]
        assert action.dest == item.name
        assert action.default is argparse.SUPPRESS  # only given flags override
        assert action.help.replace("%%", "%").startswith(item.metadata["help"]), item.name
        if "choices" in item.metadata:
            assert all(str(choice) in action.metavar for choice in item.metadata["choices"])
        if "_" in item.name:
            assert actions[f"--{item.name.replace('_', '-')}"] is action
    assert len(parser.format_help()) > 1000  # and --help renders


def test_both_clis_spell_flags_the_same_way():
    """One builder: bool, number, list and optional fields parse alike in both CLIs."""
    evaluate = config_from_args(["--calculator", "--num-samples", "1e2", "--batch_size", "8"])
    assert (evaluate.calculator, evaluate.num_samples, evaluate.batch_size) == (True, 100, 8)
    assert config_from_args(["--calculator", "false"]).calculator is False
    assert config_from_args(["--no-calculator"]).calculator is False
    assert config_from_args(["--systems", "base", "a", "b"]).systems == ["base", "a", "b"]
    train = parse_cli(["--gradient_checkpointing", "--max-steps", "1e2"], method="sft").config
    assert (train.gradient_checkpointing, train.max_steps) == (True, 100)
    assert parse_cli(["--use_unsloth", "false"], method="sft").config.use_unsloth is False
    assert parse_cli(["--no-use-unsloth"], method="sft").config.use_unsloth is False


def test_print_config_round_trips_through_the_builder(tmp_path):
    result = run_cli("training.sft", "--lora_rank", "8", "--packing", "--print_config",
                     home=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = TrainConfig.from_dict(yaml.safe_load(result.stdout))
    assert printed == TrainConfig(lora_rank=8, packing=True)


def test_thread_policy_is_passive_and_fits_the_machine():
    from mathtutor.cli import THREADS_ENV, configure_threads, thread_count

    cpus = len(os.sched_getaffinity(0))
    environ: dict[str, str] = {}
    threads = configure_threads(environ)
    assert environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert environ["OMP_NUM_THREADS"] == str(threads) and 1 <= threads <= cpus
    assert configure_threads({"OMP_WAIT_POLICY": "ACTIVE", THREADS_ENV: "3"}) == 3
    kept = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "5"}
    assert configure_threads(kept) == 5 and kept["OMP_WAIT_POLICY"] == "ACTIVE"
    assert configure_threads({"OMP_NUM_THREADS": "5", THREADS_ENV: "2"}) == 2  # ours wins
    assert thread_count(4, 2.6) == 1 and thread_count(4, 0.0) == 4 and thread_count(1, 0.0) == 1
    with pytest.raises(ValueError, match=THREADS_ENV):
        configure_threads({THREADS_ENV: "0"})
