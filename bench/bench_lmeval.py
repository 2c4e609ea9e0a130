"""The evaluation engine vs lm-evaluation-harness on the same GSM8K problems, side by side.

    python bench/bench_lmeval.py --setup              # once: lm-eval into bench/.venv-lmeval
    python bench/bench_lmeval.py [--num_problems 32] [--max_new_tokens 256]

lm-eval is never a dependency of mathtutor: `--setup` makes its own virtual environment
(`--system-site-packages`, so it reuses this machine's torch and transformers) and installs
`lm-eval==0.4.13` there. The lm-eval runs use its own `gsm8k` task (prompt `Question: ...
\\nAnswer:`, zero-shot, its stop strings, greedy) pointed at a local JSONL of the sampled
problems (`bench/lmeval/gsm8k_local.yaml`), through its Python API in that environment, HF
backend at batch 1 (its default) and batch 8. The engine (`mathtutor.generate.generate_batch`,
continuous batching, its measured default batch size) decodes the very same prompt strings
with the same stop strings and token limit, in fp32 (the parity column) and bf16. Every side
loads the bundled SmolLM2-135M before its clock starts; the clocks cover generation only
(lm-eval: `simple_evaluate`, which also grades). Prints problems/min (wall), CPU seconds,
the ratios to lm-eval and how many completions equal lm-eval batch 1's, and the fp32
floor of any one-token-per-forward engine on these rows (`step_floor`).

On a shared machine wall times are noisy: the CPU-time column is the steadier one, and the
sides run back to back in one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / "bench" / ".venv-lmeval"
TASK_YAML = REPO / "bench" / "lmeval" / "gsm8k_local.yaml"
OUT = REPO / "bench" / "out"
LM_EVAL = "lm-eval==0.4.13"
STOPS = ("Question:", "</s>", "<|im_end|>")  # lm-eval gsm8k's `until`


def setup() -> None:
    if not (VENV / "bin" / "python").is_file():
        subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages", str(VENV)], check=True
        )
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", LM_EVAL], check=True)


def problems(num: int) -> list[dict]:
    sys.path.insert(0, str(REPO))
    from mathtutor.data import load_problems

    return [
        {"question": p.question, "answer": p.solution}
        for p in load_problems("gsm8k", num_samples=num, seed=0)
    ]


def prompt(question: str) -> str:
    return f"Question: {question}\nAnswer:"  # lm-eval gsm8k's doc_to_text


def engine(rows: list[dict], dtype: str, max_new_tokens: int) -> dict:
    from mathtutor.generate import GenerationSettings, default_batch_size, generate_batch
    from mathtutor.models import bundled_model_dir, load_model

    loaded = load_model(str(bundled_model_dir()), device="cpu", dtype=dtype)
    batch = default_batch_size(loaded)  # measured (and cached) before the clock starts
    settings = GenerationSettings(max_new_tokens=max_new_tokens, stop=STOPS)
    prompts = [prompt(row["question"]) for row in rows]
    wall, cpu = time.perf_counter(), time.process_time()
    out = generate_batch(loaded, prompts, settings=settings, batch_size=batch)
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "texts": [c.text for c in out], "batch": batch}  # fmt: skip


def step_floor(rows: list[dict], texts: list[str], dtype: str, steps: int = 32) -> dict:
    """The least CPU time any engine that decodes one token per forward needs for these rows
    with these kernels: every prompt prefilled once (the engine's own grouped prefill, one
    new token), then the longest completion's remaining tokens, each a sequential forward
    that costs at least a batch-1 step (every step reads all the weights). Measured warm."""
    from mathtutor import generate
    from mathtutor.generate import GenerationSettings, generate_batch
    from mathtutor.models import bundled_model_dir, load_model

    loaded = load_model(str(bundled_model_dir()), device="cpu", dtype=dtype)
    encode = loaded.tokenizer
    longest = max(len(encode(text, add_special_tokens=False)["input_ids"]) for text in texts)
    prompts = [prompt(row["question"]) for row in rows]
    cpu = time.process_time()
    generate_batch(loaded, prompts, settings=GenerationSettings(max_new_tokens=1),
                   batch_size=len(prompts))  # fmt: skip
    prefill = time.process_time() - cpu
    settings = GenerationSettings(max_new_tokens=steps)
    real_eos, generate._eos_ids = generate._eos_ids, lambda _loaded: set()  # run all steps
    try:
        generate_batch(loaded, prompts[:1], settings=settings)  # warm
        cpu = time.process_time()
        (out,) = generate_batch(loaded, prompts[:1], settings=settings)
        per_step = (time.process_time() - cpu) / out.num_tokens
    finally:
        generate._eos_ids = real_eos
    return {"longest_tokens": longest, "batch1_step_seconds": per_step, "prefill_cpu": prefill,
            "floor_cpu": prefill + max(0, longest - 1) * per_step}  # fmt: skip


def lmeval_child(problems_path: str, batch: int, max_new_tokens: int) -> None:
    """Runs inside bench/.venv-lmeval: one lm-eval run, JSON on the last stdout line."""
    from importlib.resources import files

    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    sys.path.insert(0, str(REPO))
    from mathtutor.models import bundled_model_dir

    task_dir = Path(tempfile.mkdtemp(prefix="lmeval-task-"))
    gsm8k_yaml = files("lm_eval") / "tasks" / "gsm8k" / "gsm8k.yaml"
    text = TASK_YAML.read_text().format(gsm8k_yaml=gsm8k_yaml, problems=problems_path)
    (task_dir / "gsm8k_local.yaml").write_text(text)
    model = HFLM(pretrained=str(bundled_model_dir()), dtype="float32", device="cpu",
                 batch_size=batch)  # fmt: skip
    wall, cpu = time.perf_counter(), time.process_time()
    result = lm_eval.simple_evaluate(
        model=model,
        tasks=["gsm8k_mathtutor_local"],
        task_manager=TaskManager(include_path=str(task_dir)),
        num_fewshot=0,
        log_samples=True,
        gen_kwargs=f"max_gen_toks={max_new_tokens}",
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    # one sample per (doc, filter): the raw response is the same under both filters
    by_doc = {s["doc_id"]: s["resps"][0][0] for s in result["samples"]["gsm8k_mathtutor_local"]}
    texts = [by_doc[doc] for doc in sorted(by_doc)]
    metrics = result["results"]["gsm8k_mathtutor_local"]
    print(json.dumps({"wall": wall, "cpu": cpu, "texts": texts, "batch": batch,
                      "strict": metrics.get("exact_match,strict-match")}))  # fmt: skip


def lmeval(problems_path: Path, batch: int, max_new_tokens: int) -> dict:
    python = VENV / "bin" / "python"
    if not python.is_file():
        raise SystemExit(f"no lm-eval environment: run python {__file__} --setup first")
    command = [str(python), __file__, "--lmeval_child", str(problems_path), "--batch", str(batch)]
    command += ["--max_new_tokens", str(max_new_tokens)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3 * 3600)
    if done.returncode != 0:
        raise SystemExit(f"lm-eval batch {batch} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", action="store_true", help=f"install {LM_EVAL} into {VENV}")
    parser.add_argument("--num_problems", type=int, default=32)
    parser.add_argument("--max_new_tokens", type=int, default=256)
    parser.add_argument("--lmeval_child", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        setup()
        return
    if args.lmeval_child:
        lmeval_child(args.lmeval_child, args.batch, args.max_new_tokens)
        return
    os.environ.setdefault("MATHTUTOR_GSM8K_DIR", str(REPO.parent / "shared" / "data" / "gsm8k"))
    rows = problems(args.num_problems)
    with tempfile.TemporaryDirectory() as temp:
        path = Path(temp) / "problems.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        sides = {
            "lm-eval HF batch 1": lmeval(path, 1, args.max_new_tokens),
            "lm-eval HF batch 8": lmeval(path, 8, args.max_new_tokens),
            "engine fp32": engine(rows, "float32", args.max_new_tokens),
            "engine bf16": engine(rows, "bfloat16", args.max_new_tokens),
        }
    floor = step_floor(rows, sides["engine fp32"]["texts"], "float32")
    reference = sides["lm-eval HF batch 1"]
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(f"\n{len(rows)} GSM8K test problems (seed 0), bundled SmolLM2-135M, greedy, "
          f"max {args.max_new_tokens} tokens, lm-eval gsm8k prompt, OMP_NUM_THREADS={threads}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'side':20s} {'batch':>5s} {'problems/min':>12s} {'CPU s':>7s} {'vs lm-eval b1':>13s} "
          f"{'vs b8':>6s} {'CPU vs b1':>9s} {'same text as b1':>15s}")  # fmt: skip
    results = {}
    for label, side in sides.items():
        rate = len(rows) / side["wall"] * 60
        same = sum(a == b for a, b in zip(side["texts"], reference["texts"], strict=True))
        results[label] = {"problems_per_minute": rate, "cpu_seconds": side["cpu"],
                          "wall_seconds": side["wall"], "batch": side["batch"],
                          "same_text_as_lmeval_b1": same}  # fmt: skip
    for label, row in results.items():
        b1, b8 = results["lm-eval HF batch 1"], results["lm-eval HF batch 8"]
        print(f"{label:20s} {row['batch']:5d} {row['problems_per_minute']:12.1f} "
              f"{row['cpu_seconds']:7.1f} {row['problems_per_minute'] / b1['problems_per_minute']:13.2f} "
              f"{row['problems_per_minute'] / b8['problems_per_minute']:6.2f} "
              f"{b1['cpu_seconds'] / row['cpu_seconds']:9.2f} "
              f"{row['same_text_as_lmeval_b1']:>9d}/{len(rows)}")  # fmt: skip
    print(f"floor, fp32: the prefill of all prompts ({floor['prefill_cpu']:.1f} CPU s) + the longest "
          f"completion's {floor['longest_tokens']} tokens x a batch-1 step of "
          f"{1000 * floor['batch1_step_seconds']:.0f} ms = {floor['floor_cpu']:.1f} CPU s: one token "
          f"per forward cannot beat {reference['cpu'] / floor['floor_cpu']:.1f}x lm-eval batch 1's "
          f"CPU time here")  # fmt: skip
    results["fp32 floor"] = floor
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_lmeval.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
