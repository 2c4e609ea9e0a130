"""Tutor benchmarks: calculator-assisted decoding on/off accuracy, and self-consistency cost.

    python bench/bench_tutor.py                       # bundled SmolLM2-135M, 100 + 100 problems
    python bench/bench_tutor.py --num_problems 20 --adapter runs/<id>/adapter

(a) The same problems with the calculator off and on (bundled model, `chat` format, greedy,
    max_new_tokens 256, batched): GSM8K test (seeded sample) and the synthetic `arithmetic`
    set (medium). Prints both accuracies side by side, fixed/regressed counts and McNemar's
    exact p (`metrics.paired`), the arithmetic slips left in the text, and calculator calls.
(b) Self-consistency cost: k samples batched in ONE generate call (`tutor.self_consistency`)
    vs k sequential one-row generations with the same settings, on a few problems; ratio of
    wall times (and generated tokens, since sampled lengths differ).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mathtutor import data, metrics, tutor
from mathtutor.answers import grade
from mathtutor.checks import wrong_steps
from mathtutor.generate import GenerationSettings, generate_batch
from mathtutor.prompts import render, stop_sequences


def accuracy_run(loaded, problems, system: str, calculator: bool, max_new_tokens: int) -> dict:
    """Greedy, batched completions for every problem; verdicts, slips, calls, seconds."""
    settings = GenerationSettings(
        max_new_tokens=max_new_tokens, stop=tuple(stop_sequences("chat")), calculator=calculator
    )
    prompts = [render("chat", p.question, loaded.tokenizer) for p in problems]
    started = time.perf_counter()
    completions = generate_batch(
        loaded,
        prompts,
        system,
        settings,
        on_progress=lambda done, total: print(f"    {done}/{total}", flush=True),
    )
    seconds = time.perf_counter() - started
    correct = sum(
        grade(c.text, p.answer).is_correct for c, p in zip(completions, problems, strict=True)
    )
    print(
        f"  pass done: calculator={calculator} {correct}/{len(problems)} in {seconds:.0f} s",
        flush=True,
    )
    return {
        "verdicts": [
            grade(c.text, p.answer).is_correct for c, p in zip(completions, problems, strict=True)
        ],
        "slips": sum(len(wrong_steps(c.text)) for c in completions),
        "with_slip": sum(bool(wrong_steps(c.text)) for c in completions),
        "calls": sum(c.calculator_calls for c in completions),
        "tokens": sum(c.num_tokens for c in completions),
        "seconds": seconds,
    }


def bench_calculator(loaded, name: str, problems, system: str, max_new_tokens: int) -> None:
    off = accuracy_run(loaded, problems, system, False, max_new_tokens)
    on = accuracy_run(loaded, problems, system, True, max_new_tokens)
    acc_off, acc_on = metrics.accuracy(off["verdicts"]), metrics.accuracy(on["verdicts"])
    pair = metrics.paired(off["verdicts"], on["verdicts"])
    n = len(problems)
    print(f"\n== {name} ({n} problems, system {system}) ==")
    print(f"{'':28}{'calculator off':>16}{'calculator on':>16}")
    print(f"{'accuracy':28}{acc_off.value:>16.1%}{acc_on.value:>16.1%}")
    print(f"{'  stderr':28}{acc_off.stderr or 0:>16.3f}{acc_on.stderr or 0:>16.3f}")
    print(f"{'arithmetic slips in text':28}{off['slips']:>16}{on['slips']:>16}")
    print(f"{'completions with a slip':28}{off['with_slip']:>16}{on['with_slip']:>16}")
    print(f"{'calculator results written':28}{off['calls']:>16}{on['calls']:>16}")
    print(f"{'generated tokens':28}{off['tokens']:>16}{on['tokens']:>16}")
    print(f"{'seconds':28}{off['seconds']:>16.1f}{on['seconds']:>16.1f}")
    print(
        f"difference (on - off): {acc_on.value - acc_off.value:+.1%}; fixed {pair.fixed}, "
        f"regressed {pair.regressed}, McNemar exact p = {pair.p_value:.3g}"
    )


def bench_self_consistency(loaded, problems, system: str, k: int, max_new_tokens: int) -> None:
    settings = replace(tutor.SAMPLING, max_new_tokens=max_new_tokens)
    batched_s = sequential_s = 0.0
    batched_tokens = sequential_tokens = 0
    stops = tuple(stop_sequences("chat"))
    for index, problem in enumerate(problems):
        run_settings = replace(settings, seed=index)
        consensus = tutor.self_consistency(loaded, problem.question, k, system, run_settings)
        batched_s, batched_tokens = (
            batched_s + consensus.seconds,
            batched_tokens + consensus.num_tokens,
        )
        prompt = render("chat", problem.question, loaded.tokenizer)
        started = time.perf_counter()
        for sample in range(k):
            one = replace(run_settings, seed=1000 * index + sample, stop=stops)
            sequential_tokens += generate_batch(loaded, [prompt], system, one)[0].num_tokens
        sequential_s += time.perf_counter() - started
    print(f"\n== self-consistency cost: k={k}, {len(problems)} problems, system {system} ==")
    print(f"batched (one call of {k} rows): {batched_s:8.1f} s")
    print(f"sequential ({k} calls of 1 row): {sequential_s:8.1f} s")
    print(f"time ratio sequential / batched: {sequential_s / batched_s:.2f}x")
    print(
        f"tokens/s batched {batched_tokens / batched_s:.1f} vs sequential "
        f"{sequential_tokens / sequential_s:.1f} "
        f"({batched_tokens} vs {sequential_tokens} tokens generated)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--adapter", default=None, help="also measure this adapter directory")
    parser.add_argument("--num_problems", type=int, default=100)
    parser.add_argument("--max_new_tokens", type=int, default=256)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--num_sc_problems", type=int, default=3)
    parser.add_argument("--only", choices=("calculator", "self-consistency"), default=None)
    args = parser.parse_args(argv)
    # GSM8K from the shared offline copy unless told otherwise (the Hub is not reachable here)
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "gsm8k"
    if shared.is_dir():
        os.environ.setdefault("MATHTUTOR_GSM8K_DIR", str(shared))
    from mathtutor.models import load_model

    loaded = load_model(args.model)
    systems = ["base"] + ([loaded.add_adapter(args.adapter)] if args.adapter else [])
    print(f"model {loaded.base_model} on {loaded.device}; systems {systems}")
    gsm8k = data.load_problems("gsm8k", split="test", num_samples=args.num_problems, seed=0)
    arithmetic = data.load_problems(
        "arithmetic", "test", args.num_problems, seed=0, difficulty="medium"
    )
    if args.only != "self-consistency":
        for system in systems:
            bench_calculator(loaded, "GSM8K test", gsm8k, system, args.max_new_tokens)
            bench_calculator(loaded, "arithmetic (medium)", arithmetic, system, args.max_new_tokens)
    if args.only != "calculator":
        sc_problems = gsm8k[: args.num_sc_problems]
        bench_self_consistency(loaded, sc_problems, systems[0], args.k, args.max_new_tokens)


if __name__ == "__main__":
    main()
