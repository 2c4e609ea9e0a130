"""Wall time of each Tutor action a student can take, on the bundled model (or another).

    MATHTUTOR_GSM8K_DIR=/work/shared/data/gsm8k python bench/bench_tutor_actions.py
    python bench/bench_tutor_actions.py --model bundled --k 5 --max_new_tokens 256

Janet's ducks (GSM8K test 0) two ways: picked from GSM8K (a known socratic solution: hints
and checks are grounded, no model runs) and pasted (no reference: the model solves, hints and
samples k solutions to check against). Each action runs once after one warm-up generation, so
the first-token time excludes loading the model. Prints one row per action.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mathtutor import data, hints, tutor, verdicts
from mathtutor.generate import GenerationSettings


def timed(label: str, run) -> tuple[str, float, str]:
    """Run one action; its row is printed at once (a slow machine shows rows as they come)."""
    started = time.perf_counter()
    detail = run()
    return report(label, time.perf_counter() - started, detail)


def report(label: str, seconds: float, detail: str) -> tuple[str, float, str]:
    print(f"{label:44s} {seconds:8.2f} s  {detail}", flush=True)
    return label, seconds, detail


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--max_new_tokens", type=int, default=256)
    args = parser.parse_args(argv)
    from mathtutor.models import load_model

    print(f"model {args.model}, max_new_tokens {args.max_new_tokens}, k {args.k}", flush=True)
    janet = data.load_gsm8k("test", "socratic")[0]
    loaded = load_model(args.model)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    tutor.solve(loaded, "What is 2 + 3?", settings=GenerationSettings(max_new_tokens=4))  # warm
    working = "16 - 3 - 4 = 9\n9 * 3 = 27"
    rows = [
        timed(
            "grounded hint (picked problem)",
            lambda: hints.next_hint(None, janet.question, [], solution=janet.solution).text,
        ),
        timed(
            "check answer + first wrong step (picked)",
            lambda: (
                verdicts.check_answer(
                    None, janet.question, "27", janet.answer, working, solution=janet.solution
                ).status
            ),
        ),
        timed(
            "grounded hint reworded by the model",
            lambda: (
                hints.next_hint(
                    loaded, janet.question, [], solution=janet.solution, rephrase=True
                ).source
            ),
        ),
    ]
    first_token: list[float] = []

    def solve() -> str:
        started = time.perf_counter()
        for solution in tutor.solve_stream(loaded, janet.question, settings=settings):
            if not first_token and solution.num_tokens:
                first_token.append(time.perf_counter() - started)
        return f"{solution.num_tokens} tokens, answer {solution.answer}"

    rows.append(timed("solution (pasted problem)", solve))
    rows.append(report("  first token of it", first_token[0] if first_token else float("nan"), ""))
    rows.append(
        timed(
            "model hint, checked (pasted)",
            lambda: (lambda h: f"{h.source}: {h.text[:50]}")(
                hints.next_hint(loaded, janet.question, [])
            ),
        )
    )
    rows.append(
        timed(
            f"check answer, k={args.k} samples (pasted)",
            lambda: (
                verdicts.check_answer(
                    loaded, janet.question, "18", k=args.k, max_new_tokens=args.max_new_tokens
                ).status
            ),
        )
    )
    print(f"({len(rows)} actions; model {args.model}, max_new_tokens {args.max_new_tokens})")


if __name__ == "__main__":
    main()
