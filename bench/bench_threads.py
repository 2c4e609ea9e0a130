"""Decoding speed by torch thread count, on a quiet CPU and under load from other processes.

    python bench/bench_threads.py                         # 1 vs 2 threads, idle and loaded
    python bench/bench_threads.py --threads 1 2 4 --busy 2 --policies PASSIVE default

Each measurement is a fresh subprocess (OpenMP reads OMP_NUM_THREADS and OMP_WAIT_POLICY once,
at start) that loads the bundled SmolLM2-135M and decodes `--batch` rows greedily for
`--tokens` steps through the engine (`mathtutor.generate`), timing the decoding loop after a
warm-up call. "Loaded" runs start `--busy` busy-looping processes first, each ending by itself
after `--load_seconds` (and killed when the measurement ends), so nothing is left spinning.
Prints tokens/s per (load, wait policy, threads) and the ratio to 1 thread; `default` is the
OpenMP default wait policy (spinning), `PASSIVE` what `mathtutor.cli.configure_threads` sets.
The machine's own load (1-minute average) is printed too: a shared machine is never idle.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
BUSY = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


def child(batch: int, tokens: int, dtype: str) -> None:
    """Runs in the measured subprocess: prints one JSON line with tokens/s."""
    sys.path.insert(0, str(REPO))
    import torch

    from mathtutor.generate import GenerationSettings, generate_batch
    from mathtutor.models import load_model

    loaded = load_model("bundled", device="cpu", dtype=dtype)
    prompts = [f"Question: Tom has {n} apples and buys {n + 3} more. How many?\nAnswer:"
               for n in range(batch)]  # fmt: skip
    settings = GenerationSettings(max_new_tokens=tokens)
    generate_batch(loaded, prompts[:2], settings=GenerationSettings(max_new_tokens=2))  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    out = generate_batch(loaded, prompts, settings=settings, batch_size=batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    generated = sum(c.num_tokens for c in out)
    print(json.dumps({"tokens_per_second": generated / wall, "cpu_seconds": cpu,
                      "wall_seconds": wall, "threads": torch.get_num_threads()}))  # fmt: skip


def measure(threads: int, policy: str, busy: int, args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("MATHTUTOR_THREADS", None)
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    spinners = [
        subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=args.load_seconds)])
        for _ in range(busy)
    ]
    try:
        command = [sys.executable, __file__, "--child", "--batch", str(args.batch)]
        command += ["--tokens", str(args.tokens), "--dtype", args.dtype]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    if result.returncode != 0:
        raise SystemExit(f"measurement failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--busy", type=int, default=2, help="busy processes for the loaded runs")
    parser.add_argument("--policies", nargs="+", default=["PASSIVE"], help="PASSIVE / default")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--load_seconds", type=float, default=300, help="cap on each busy loop")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.batch, args.tokens, args.dtype)
        return
    print(f"CPUs allowed: {len(os.sched_getaffinity(0))}, load average before: "
          f"{os.getloadavg()[0]:.1f}; bundled SmolLM2-135M {args.dtype}, batch {args.batch}, "
          f"{args.tokens} tokens per row")  # fmt: skip
    rows = []
    for busy in (0, args.busy):
        for policy in args.policies:
            for threads in args.threads:
                figures = measure(threads, policy, busy, args)
                rows.append({"busy": busy, "policy": policy, "threads": threads, **figures,
                             "load_after": os.getloadavg()[0]})  # fmt: skip
    print(f"\n{'extra busy':>10s} {'policy':>8s} {'threads':>7s} {'tok/s':>8s} {'vs 1':>6s} "
          f"{'CPU s':>7s} {'load':>5s}")  # fmt: skip
    for row in rows:
        one = next(r for r in rows if (r["busy"], r["policy"], r["threads"]) ==
                   (row["busy"], row["policy"], args.threads[0]))  # fmt: skip
        print(f"{row['busy']:10d} {row['policy']:>8s} {row['threads']:7d} "
              f"{row['tokens_per_second']:8.1f} {row['tokens_per_second'] / one['tokens_per_second']:6.2f} "
              f"{row['cpu_seconds']:7.1f} {row['load_after']:5.1f}")  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_threads.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
