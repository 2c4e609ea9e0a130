"""Evaluation throughput: the engine (batched, mixed adapters) vs a one-by-one greedy loop.

    python bench/bench_evaluate.py [--num_problems 32] [--max_new_tokens 256] [--batch_size N]
    python bench/bench_evaluate.py --accuracy 100      # base bundled model on 100 GSM8K problems

The baseline is what lm-evaluation-harness's HF backend does at batch size 1: for each problem,
`model.generate(greedy, max_new_tokens, stop strings)` on the same rendered prompt, then the
same grader. Both sides use the bundled SmolLM2-135M-Instruct, the `chat` prompt format and the
same GSM8K test problems (seeded sample); model loading is excluded from both timings. Prints
problems/minute for each, the ratio, and how many completions and extracted answers match
(greedy decoding: batching with left padding should not change answers, up to float ties).
Runs in a temporary MATHTUTOR_HOME (the bundled-model cache is linked in).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def isolated_home() -> Path:
    """A fresh home whose models/ is the real one, so the bundled cache is not rebuilt."""
    real_models = (
        Path(os.environ.get("MATHTUTOR_HOME") or Path.home() / ".cache" / "mathtutor") / "models"
    )
    real_models.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="mathtutor-bench-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    (home / "models").symlink_to(real_models, target_is_directory=True)
    os.environ["MATHTUTOR_HOME"] = str(home)
    return home


def one_by_one(loaded, prompts: list[str], max_new_tokens: int, stops: list[str]) -> list[str]:
    """lm-eval HF style: one greedy `generate` per prompt, stopped at the first stop string.

    Like lm-eval's `MultiTokenEOSCriteria`, the stop check decodes the generated tail each step.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from mathtutor.generate import _eos_ids

    tokenizer, model = loaded.tokenizer, loaded.model

    class StopOnText(StoppingCriteria):
        def __init__(self, start: int) -> None:
            self.start = start

        def __call__(self, input_ids, scores, **kwargs):
            tail = tokenizer.decode(input_ids[0, self.start :][-16:], skip_special_tokens=True)
            done = any(stop in tail for stop in stops)
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool)

    texts = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            start = ids["input_ids"].shape[1]
            output = model.generate(
                **ids,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                stopping_criteria=StoppingCriteriaList([StopOnText(start)]),
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=sorted(_eos_ids(loaded)),  # the engine's end-of-turn tokens
            )
            text = tokenizer.decode(output[0, start:], skip_special_tokens=True)
            cuts = [text.find(stop) for stop in stops if stop in text]
            texts.append(text[: min(cuts)] if cuts else text)
    return texts


def bench_throughput(num_problems: int, max_new_tokens: int, batch_size: int | None) -> None:
    from mathtutor import store
    from mathtutor.answers import grade
    from mathtutor.data import load_problems
    from mathtutor.evaluate import EvalConfig, evaluate
    from mathtutor.models import load_model
    from mathtutor.prompts import render, stop_sequences

    loaded = load_model("bundled", device="cpu")
    config = EvalConfig(
        model="bundled",
        dataset="gsm8k",
        num_samples=num_problems,
        prompt_format="chat",
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    problems = load_problems("gsm8k", num_samples=num_problems, seed=config.seed)
    prompts = [render("chat", p.question, loaded.tokenizer) for p in problems]

    started, cpu = time.perf_counter(), time.process_time()
    report = evaluate(config)
    engine_seconds, engine_cpu = time.perf_counter() - started, time.process_time() - cpu
    records = {r["problem_id"]: r for r in store.load_records(report.run_id)}

    started, cpu = time.perf_counter(), time.process_time()
    baseline = one_by_one(loaded, prompts, max_new_tokens, stop_sequences("chat"))
    baseline_seconds, baseline_cpu = time.perf_counter() - started, time.process_time() - cpu

    same_text = same_answer = 0
    for problem, text in zip(problems, baseline, strict=True):
        record = records[problem.id]
        same_text += text == record["completion"]
        same_answer += grade(text, problem.answer).extracted == record["extracted"]
    engine_rate = 60 * num_problems / engine_seconds
    baseline_rate = 60 * num_problems / baseline_seconds
    tokens = sum(r["num_tokens"] for r in records.values())
    print(f"GSM8K test, {num_problems} problems, chat format, max_new_tokens={max_new_tokens}")
    print(
        f"engine (evaluate, batch {report.config.batch_size or 'auto'}): {engine_seconds:7.1f} s"
        f" = {engine_rate:6.2f} problems/min ({tokens / engine_seconds:.0f} tokens/s)"
    )
    print(
        f"one-by-one model.generate loop:      {baseline_seconds:7.1f} s"
        f" = {baseline_rate:6.2f} problems/min"
    )
    import torch

    print(
        f"speed-up: {engine_rate / baseline_rate:.2f}x (torch threads: {torch.get_num_threads()})"
    )
    # On a shared machine wall time depends on other load; this process's CPU time does less.
    print(
        f"CPU seconds: engine {engine_cpu:.0f}, one-by-one {baseline_cpu:.0f} "
        f"({baseline_cpu / engine_cpu:.2f}x)"
    )
    print(
        f"identical completions: {same_text}/{num_problems}; "
        f"identical extracted answers: {same_answer}/{num_problems}"
    )


def bench_accuracy(num_problems: int, max_new_tokens: int, batch_size: int | None) -> None:
    from mathtutor.evaluate import EvalConfig, evaluate
    from mathtutor.results import format_table

    config = EvalConfig(
        model="bundled",
        dataset="gsm8k",
        num_samples=num_problems,
        prompt_format="chat",
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    started = time.perf_counter()
    report = evaluate(config)
    base = report.summary.systems["base"]
    print(
        f"base bundled SmolLM2-135M-Instruct, {num_problems} GSM8K test problems (seed 0), "
        f"chat format, greedy, max_new_tokens={max_new_tokens}"
    )
    for key in ("strict", "flexible", "accuracy"):
        estimate = getattr(base, key)
        name = "auto (numeric)" if key == "accuracy" else key
        print(f"  {name:15s} {100 * estimate.value:5.1f}% ± {100 * estimate.stderr:.1f}")
    print(format_table(report.summary))
    print(f"({time.perf_counter() - started:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_problems", type=int, default=32)
    parser.add_argument("--max_new_tokens", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--accuracy", type=int, default=None, metavar="N")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (1 is best on a busy machine)"
    )
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    os.environ.setdefault("MATHTUTOR_GSM8K_DIR", str(REPO.parent / "shared" / "data" / "gsm8k"))
    isolated_home()
    if args.accuracy:
        bench_accuracy(args.accuracy, args.max_new_tokens, args.batch_size)
    else:
        bench_throughput(args.num_problems, args.max_new_tokens, args.batch_size)


if __name__ == "__main__":
    main()
