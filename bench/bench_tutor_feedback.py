"""First-wrong-step feedback on perturbed GSM8K solutions: how often it points at the change.

    MATHTUTOR_GSM8K_DIR=/work/shared/data/gsm8k python bench/bench_tutor_feedback.py
    python bench/bench_tutor_feedback.py --num_cases 1000 --split train --seed 1

Each case: a GSM8K problem with at least two arithmetic steps, its reference steps written as a
student's working (``grounding.student_working``), ONE step changed and the change carried into
the later steps, either as an arithmetic slip (the result off by one) or as a wrong number that
is computed correctly (the first operand off by one). A case is a hit when
``grounding.first_wrong_step`` names that reference step and that line of the working. No model
is involved: this measures the matching rule, in well under a second per hundred cases.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mathtutor import data, grounding


def run(num_cases: int, split: str, seed: int) -> dict[str, tuple[int, int]]:
    """{kind: (hits, cases)} over ``num_cases`` cases per kind."""
    rng = random.Random(seed)
    problems = [p for p in data.load_gsm8k(split) if len(grounding.reference_steps(p.solution)) > 1]
    results: dict[str, tuple[int, int]] = {}
    for kind in ("slip", "operand"):
        hits = 0
        for problem in rng.sample(problems, num_cases):
            steps = grounding.reference_steps(problem.solution)
            changed = rng.randrange(len(steps))
            working = grounding.student_working(steps, changed, kind, delta=rng.choice((1, 2, 3)))
            feedback = grounding.first_wrong_step(working, steps, problem.question)
            line = None
            if feedback.departs_at is not None:
                start = feedback.student_steps[feedback.departs_at].start
                line = working.count("\n", 0, start)
            hits += feedback.reference_index == changed and line == changed
        results[kind] = (hits, num_cases)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_cases", type=int, default=500, help="cases per perturbation kind")
    parser.add_argument("--split", default="train", choices=("train", "test"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = run(args.num_cases, args.split, args.seed)
    total_hits = sum(h for h, _ in results.values())
    total = sum(n for _, n in results.values())
    for kind, (hits, cases) in results.items():
        print(f"{kind:8s} {hits}/{cases} = {hits / cases:.1%} point at the changed step")
    print(
        f"all      {total_hits}/{total} = {total_hits / total:.1%} (GSM8K {args.split}, seed "
        f"{args.seed}, {time.perf_counter() - started:.1f} s)"
    )


if __name__ == "__main__":
    main()
