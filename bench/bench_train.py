"""Training benchmarks on the bundled SmolLM2-135M, on this machine's CPU.

Measured claims:

1. `throughput`: tokens/s of SFT with the default padded batches vs padding-free rows vs
   packed sequences (same data, same steps), printed side by side with the ratio to padded.
   Tokens are the non-padding tokens trl counts (`num_tokens`), so the figures compare work
   done, not padding pushed through the model.

2. `precision`: seconds per step of `bundled-quick` in fp32 vs bf16 mixed precision (autocast
   on AMX/AVX512-BF16 CPUs), side by side in one run, wall and CPU time (on a shared machine
   CPU time is the steadier figure).

3. `step`: seconds per step of `bundled-quick` with trl's LM head scoring every position (its
   choice off Triton devices) vs only the labelled ones (`training.lifecycle.
   score_labelled_positions_only`), each with LoRA dropout 0.05 and the recipe's dropout.

4. `quick`: the `bundled-quick` recipe run for real through `training.runs.launch` (the app's
   path: a subprocess of the CLI), with held-out accuracy and `#### N` format adherence before
   and after, measured by the evaluation engine (`mathtutor.evaluate`) on problems of the same
   kind and difficulty from the generator's test split (disjoint questions from training).
   The accuracy curve measured during training (`eval_every`, the same problems) is printed
   step by step, and its first and last points are checked against the separate evaluations
   of the base and of the adapter. `--max_steps N` runs a shorter variant.

    python bench/bench_train.py throughput --steps 6
    OMP_NUM_THREADS=1 python bench/bench_train.py precision --steps 5
    MATHTUTOR_THREADS=2 python bench/bench_train.py step --steps 6
    nohup python bench/bench_train.py quick > bench/out/quick.log 2>&1 &
    python bench/bench_train.py quick --adapter ~/.cache/mathtutor/runs/<run>/adapter
    python bench/bench_train.py quick --run <run id> --greedy_only   # re-check a run's curve

Results go to stdout and `bench/out/bench_train-<claim>.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "out"
QUICK = REPO / "training" / "recipes" / "bundled-quick.yaml"


def _tokens_per_second(run_id: str) -> tuple[float, float]:
    """(tokens/s after the first step, seconds per step) from a run's metrics.jsonl."""
    from training import runs

    rows = [row for row in runs.read_metrics(run_id) if "loss" in row and "tokens" in row]
    first, last = rows[0], rows[-1]
    seconds = last["time"] - first["time"]
    return (last["tokens"] - first["tokens"]) / seconds, seconds / (last["step"] - first["step"])


def throughput(steps: int) -> dict:
    from mathtutor import store
    from training import train
    from training.config import TrainConfig

    base = TrainConfig.from_yaml(
        QUICK,
        max_steps=steps, save_steps=1000, logging_steps=1, run_name="bench-throughput",
    )  # fmt: skip
    modes = {
        "padded (default)": base,
        "padding-free": base.replace(padding_free=True),
        "packed (bfd)": base.replace(packing=True),
    }
    results = {}
    for label, config in modes.items():
        result = train(config)
        store.remove_adapter(result.run_id)  # a throughput probe, not an adapter to offer
        rate, step_seconds = _tokens_per_second(result.run_id)
        results[label] = {"tokens_per_second": rate, "seconds_per_step": step_seconds}
    reference = results["padded (default)"]["tokens_per_second"]
    print(f"\nSFT throughput, bundled SmolLM2-135M, CPU, batch {base.batch_size}, {steps} steps")
    print(f"{'mode':20s} {'tokens/s':>10s} {'s/step':>8s} {'ratio':>6s}")
    for label, row in results.items():
        ratio = row["tokens_per_second"] / reference
        print(
            f"{label:20s} {row['tokens_per_second']:10.1f} {row['seconds_per_step']:8.2f} {ratio:6.2f}"
        )
    return results


def precision(steps: int) -> dict:
    from mathtutor import store
    from training import train
    from training.config import TrainConfig

    results = {}
    for dtype in ("float32", "bfloat16"):
        config = TrainConfig.from_yaml(
            QUICK, max_steps=steps, save_steps=1000, logging_steps=1, precision=dtype,
            run_name=f"bench-precision-{dtype}",
        )  # fmt: skip
        wall, cpu = time.perf_counter(), time.process_time()
        result = train(config)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        store.remove_adapter(result.run_id)
        rate, step_seconds = _tokens_per_second(result.run_id)
        results[dtype] = {
            "seconds_per_step": step_seconds, "tokens_per_second": rate, "train_loss": result.train_loss,
            "call_wall_seconds": wall, "call_cpu_seconds": cpu,
        }  # fmt: skip
    import os

    print(
        f"\nbundled-quick, {steps} steps, batch 8, CPU, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    print(
        f"{'precision':10s} {'s/step':>8s} {'tokens/s':>9s} {'call wall s':>12s} {'call CPU s':>11s} {'loss':>7s}"
    )
    for dtype, row in results.items():
        print(f"{dtype:10s} {row['seconds_per_step']:8.2f} {row['tokens_per_second']:9.1f} "
              f"{row['call_wall_seconds']:12.1f} {row['call_cpu_seconds']:11.1f} {row['train_loss']:7.3f}")  # fmt: skip
    fp32, bf16 = results["float32"], results["bfloat16"]
    print(f"bf16 / fp32 step time: {bf16['seconds_per_step'] / fp32['seconds_per_step']:.2f}")
    return results


def step_cost(steps: int) -> dict:
    """Seconds per `bundled-quick` step (the recipe's precision, no evaluations): trl's own
    LM-head scoring of every position vs only the labelled ones, with and without LoRA
    dropout, side by side in one process, in that order."""
    import itertools
    import statistics

    import trl.trainer.utils as trl_utils

    from mathtutor import store
    from training import runs, train
    from training.config import TrainConfig
    from training.lifecycle import score_labelled_positions_only

    score_labelled_positions_only()
    labelled = trl_utils._use_triton

    def every_position(device) -> bool:  # trl's choice off Triton devices
        return False

    every_position.labelled_only = True  # so run_training leaves it in place
    base = TrainConfig.from_yaml(
        QUICK, max_steps=steps, save_steps=1000, logging_steps=1, eval_every=0,
        run_name="bench-step",
    )  # fmt: skip
    variants = {
        "every position, dropout 0.05": (every_position, base.replace(lora_dropout=0.05)),
        "labelled only, dropout 0.05": (labelled, base.replace(lora_dropout=0.05)),
        f"labelled only, dropout {base.lora_dropout:g} (recipe)": (labelled, base),
    }
    results = {}
    try:
        for label, (choice, config) in variants.items():
            trl_utils._use_triton = choice
            result = train(config)
            store.remove_adapter(result.run_id)
            rows = [r for r in runs.read_metrics(result.run_id) if "loss" in r and "time" in r]
            gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(rows)]
            results[label] = {"seconds_per_step": statistics.median(gaps),
                              "loss": rows[-1]["loss"], "precision": config.precision}  # fmt: skip
    finally:
        trl_utils._use_triton = labelled
    import torch

    first = next(iter(results.values()))["seconds_per_step"]
    print(f"\nbundled-quick, {steps} steps, batch 8, CPU, {torch.get_num_threads()} threads"
          ", median s/step after the first, loss at the last step")  # fmt: skip
    for label, row in results.items():
        print(f"  {label:34s} {row['seconds_per_step']:6.2f} s/step  {first / row['seconds_per_step']:5.2f}x"
              f"  loss {row['loss']:.4f}")  # fmt: skip
    return results


def _evaluate(
    config,
    systems: list[str],
    num_samples: int,
    calculator: bool = False,
    max_new_tokens: int = 200,
    dtype: str = "auto",
) -> dict:
    """Accuracy and format rate per system on held-out problems of the recipe's own kind.

    The problems come from the generator's test split (disjoint questions from training), split
    evenly over the recipe's difficulty levels, in the recipe's prompt format.
    """
    from mathtutor.evaluate import EvalConfig, evaluate

    levels = config.difficulties
    totals: dict[str, dict[str, float]] = {}
    for index, difficulty in enumerate(levels):
        report = evaluate(
            EvalConfig(
                model=config.model,
                systems=systems,
                dataset=config.dataset,
                split="test",
                difficulty=difficulty,
                num_samples=num_samples // len(levels) + (index < num_samples % len(levels)),
                prompt_format=config.prompt_format,
                max_new_tokens=max_new_tokens,
                seed=0,
                calculator=calculator,
                dtype=dtype,
            )
        )
        for label, system in zip(systems, report.summary.order, strict=True):
            metrics = report.summary.systems[system]
            row = totals.setdefault(label, {"correct": 0, "formatted": 0, "n": 0})
            row["correct"] += round(metrics.accuracy.value * metrics.n)
            row["formatted"] += round(metrics.format_rate * metrics.n)
            row["n"] += metrics.n
    return totals


def _curve(run_id: str) -> list[dict]:
    """The task-accuracy rows the run wrote while it trained."""
    from training import runs

    return [row for row in runs.read_metrics(run_id) if row.get("event") == "accuracy"]


def _print_curve(rows: list[dict], share: float | None) -> None:
    print("\nTask accuracy measured during training (held-out, greedy, the format's grader):")
    print(
        f"{'step':>6s} {'accuracy':>14s} {'strict':>8s} {'flexible':>9s} {'format':>7s} {'s':>6s}"
    )
    for row in rows:
        n = row["eval_n"]
        print(
            f"{row['step']:6d} {round(row['accuracy'] * n):5d}/{n:<3d} ± {100 * row['accuracy_stderr']:4.1f}% "
            f"{100 * row['strict']:7.1f}% {100 * row['flexible']:8.1f}% {100 * row['format']:6.1f}% "
            f"{row['eval_seconds']:6.1f}"
        )
    if share is not None:
        print(f"evaluation took {100 * share:.0f}% of this run")


def quick(
    num_samples: int,
    adapter: str | None = None,
    recipe: Path = QUICK,
    max_steps: int = 0,
    eval_every: int = 0,
    calculator_too: bool = True,
    max_new_tokens: int = 200,
    run_id: str | None = None,
) -> dict:
    """Train `recipe` (unless `adapter` or a finished `run_id` is given), then evaluate base vs
    adapter. The evaluations run in the dtype the in-training evaluation used (its rows say:
    the fp32 master weights under bf16 mixed precision), so the curve's first and last points
    can be compared with them exactly; a bf16 evaluation would differ by a problem or two.

    Evaluated twice: plain greedy decoding, and with the calculator (`GenerationSettings.
    calculator`: exact results inserted after "a * b =", as in the GSM8K paper), which
    separates the plan the model learned from its own arithmetic.
    """
    from training import runs
    from training.config import TrainConfig

    # every evaluation measured (no eval_max_share skips): the curve is what this bench prints
    changes = {
        "eval_num_problems": num_samples,
        "eval_max_new_tokens": max_new_tokens,
        "eval_max_share": 1.0,
        "eval_problems": "test",
    }
    if max_steps:
        changes |= {"max_steps": max_steps, "save_steps": max_steps}
    if eval_every:
        changes["eval_every"] = eval_every
    config = TrainConfig.from_yaml(recipe, **changes)
    if not config.eval_every:
        config = config.replace(eval_every=max(1, config.max_steps // 4))
    results: dict = {"recipe": str(recipe), "max_steps": config.max_steps}
    curve: list[dict] = []
    if run_id is not None:
        info = runs.get_run(run_id)
        adapter = str(info.run_dir / "adapter")
        curve = _curve(run_id)
        summary = next(
            (r for r in runs.read_metrics(run_id) if r.get("event") == "accuracy_summary"), {}
        )
        _print_curve(curve, summary.get("eval_share"))
        results |= {"run_id": run_id, "curve": curve, "eval_share": summary.get("eval_share")}
    elif adapter is None:
        started = time.time()
        run_id = runs.launch(config)
        print(f"launched {run_id}; log: {runs.run_dir(run_id) / 'log.txt'}", flush=True)
        info = runs.wait(run_id, timeout=3 * 3600)
        if info.status != "finished":
            raise SystemExit(f"run {run_id} {info.status}: {info.error}")
        adapter = str(info.run_dir / "adapter")
        results["run_id"] = run_id
        results["train_minutes"] = (time.time() - started) / 60
        print(
            f"trained in {results['train_minutes']:.1f} min (subprocess wall time, model load included)"
        )
        curve = _curve(run_id)
        summary = next(
            (r for r in runs.read_metrics(run_id) if r.get("event") == "accuracy_summary"), {}
        )
        _print_curve(curve, summary.get("eval_share"))
        evaluating = sum(row.get("eval_seconds", 0.0) for row in curve) / 60
        results["eval_minutes"] = evaluating
        results["train_only_minutes"] = results["train_minutes"] - evaluating
        print(f"of which the accuracy evaluations {evaluating:.1f} min: training alone "
              f"{results['train_only_minutes']:.1f} min, model load included")  # fmt: skip
        results["curve"] = curve
        results["eval_share"] = summary.get("eval_share")
    dtype = next(
        (row["dtype"] for row in curve if row.get("dtype")), "float32" if curve else "auto"
    )
    results["dtype"] = dtype
    for calculator in (False, True) if calculator_too else (False,):
        totals = _evaluate(
            config, ["base", adapter], num_samples, calculator, max_new_tokens, dtype
        )
        before, after = totals["base"], totals[adapter]
        mode = ("with calculator" if calculator else "greedy") + f", {dtype}"
        results[mode] = {"base": before, "tuned": after}
        print(f"\n{config.recipe} ({config.max_steps} steps, batch {config.batch_size}) on {before['n']} "
              f"held-out {config.dataset} problems ({config.difficulty}, generator test split), "
              f"{config.prompt_format} prompt, {mode}")  # fmt: skip
        print(f"{'':14s} {'accuracy':>10s} {'#### N format':>14s}")
        for label, row in (("base", before), (config.recipe[:14], after)):
            print(
                f"{label:14s} {row['correct']:4d}/{row['n']:<5d} {row['formatted']:8d}/{row['n']}"
            )
        if curve and not calculator:
            first, last = curve[0], curve[-1]
            during = (
                round(first["accuracy"] * first["eval_n"]),
                round(last["accuracy"] * last["eval_n"]),
            )
            after_training = (before["correct"], after["correct"])
            verdict = "agree" if during == after_training else "DISAGREE"
            print(f"during training: step 0 {during[0]}/{first['eval_n']}, step {last['step']} "
                  f"{during[1]}/{last['eval_n']}; separate evaluations: base {after_training[0]}, "
                  f"adapter {after_training[1]}: {verdict}")  # fmt: skip
            results["curve_agrees"] = during == after_training
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("claim", choices=("throughput", "precision", "step", "quick"))
    parser.add_argument("--steps", type=int, default=6, help="throughput: steps per mode")
    parser.add_argument("--num_samples", type=int, default=48, help="quick: held-out problems")
    parser.add_argument("--adapter", help="quick: evaluate this adapter instead of training one")
    parser.add_argument("--run", help="quick: a finished run's id: its curve and its adapter")
    parser.add_argument(
        "--recipe", type=Path, default=QUICK, help="quick: the recipe YAML to train (a variant)"
    )
    parser.add_argument("--max_steps", type=int, default=0, help="quick: a shorter run")
    parser.add_argument("--eval_every", type=int, default=0, help="quick: steps between accuracy")
    parser.add_argument("--max_new_tokens", type=int, default=200, help="quick: per completion")
    parser.add_argument(
        "--greedy_only", action="store_true", help="quick: skip the evaluation with the calculator"
    )
    args = parser.parse_args()
    if args.claim == "throughput":
        results = throughput(args.steps)
    elif args.claim == "precision":
        results = precision(args.steps)
    elif args.claim == "step":
        results = step_cost(args.steps)
    else:
        results = quick(
            args.num_samples, args.adapter, args.recipe, args.max_steps, args.eval_every,
            calculator_too=not args.greedy_only,
            max_new_tokens=args.max_new_tokens, run_id=args.run,
        )  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"bench_train-{args.claim}.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
