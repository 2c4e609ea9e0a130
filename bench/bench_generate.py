"""Generation benchmarks on the bundled SmolLM2-135M (CPU or GPU), measured side by side.

    python bench/bench_generate.py [--max_new_tokens 128] [--num_prompts 16] [--slots 4]
    python bench/bench_generate.py --only_ttft   # Compare/Tutor time to first token, by dtype
    python bench/bench_generate.py --only_cache --num_prompts 32 --max_new_tokens 256
    python bench/bench_generate.py --only_prefill --num_prompts 64 --max_new_tokens 256
    MATHTUTOR_DTYPE=bfloat16 python bench/bench_generate.py --only_batch --max_new_tokens 256

Prints: bundled-model load (first conversion in a fresh home, then from the safetensors
cache, each in a fresh process), time to first token and tokens/s of the Compare tab's
streaming path vs a bare `model.generate` on the same prompt, batched vs one-by-one
throughput on GSM8K prompts (with a check that greedy answers are identical), and continuous
batching with `slots` rows vs fixed chunks of `slots` prompts (the loop before continuous
batching: a chunk's batch empties as its rows finish). `--only_cache`: the engine's chunked
KV cache (`mathtutor/kvcache.py`) vs transformers' plain `DynamicCache`, all prompts in one
batch, runs interleaved, with a check that the completions are identical. `--only_prefill`:
prompts prefilled in groups of similar length (`generate.prefill_groups`) vs one prefill padded
to the longest prompt, all prompts in one batch, interleaved: the prefill alone (one new
token) and the whole generation, with the padding share and a check of the completions.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LOAD_SNIPPET = """
import time, sys
t0 = time.perf_counter()
import torch, transformers  # imports timed separately from the load
t1 = time.perf_counter()
from mathtutor.models import load_model
loaded = load_model("bundled", device="cpu")
t2 = time.perf_counter()
print(f"{t1 - t0:.2f} {t2 - t1:.2f}")
"""


def time_load(home: str) -> tuple[float, float]:
    env = {**os.environ, "MATHTUTOR_HOME": home}
    out = subprocess.run(
        [sys.executable, "-c", LOAD_SNIPPET], cwd=REPO, env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    imports, load = out.stdout.split()[-2:]
    return float(imports), float(load)


def bench_load() -> None:
    with tempfile.TemporaryDirectory() as home:
        imports, first = time_load(home)
        _, cached = time_load(home)
    print(f"bundled load, first (GGUF -> safetensors conversion): {first:6.2f} s")
    print(f"bundled load, cached safetensors:                     {cached:6.2f} s")
    print(f"  (python imports of torch+transformers, not counted: {imports:.2f} s)")
    print(f"  ratio first/cached: {first / cached:.1f}x")


def bench_stream(loaded, prompt: str, max_new_tokens: int, repeats: int = 3) -> None:
    import torch

    from mathtutor.generate import GenerationSettings, stream_completions

    tokenizer, model = loaded.tokenizer, loaded.model
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    settings = GenerationSettings(max_new_tokens=max_new_tokens)

    def ours() -> tuple[float, float, int]:
        start = time.perf_counter()
        first = None
        final = None
        for step in stream_completions(loaded, [prompt], "base", settings):
            if first is None:
                first = time.perf_counter() - start
            final = step[0]
        return first, time.perf_counter() - start, final.num_tokens

    def bare(num_tokens: int) -> tuple[float, float]:
        with torch.inference_mode():
            start = time.perf_counter()
            model.generate(**ids, max_new_tokens=1, do_sample=False)
            first = time.perf_counter() - start
            start = time.perf_counter()
            model.generate(
                **ids, max_new_tokens=num_tokens, min_new_tokens=num_tokens, do_sample=False
            )
            return first, time.perf_counter() - start

    ours()  # warm-up
    results_ours = [ours() for _ in range(repeats)]
    num_tokens = results_ours[0][2]
    results_bare = [bare(num_tokens) for _ in range(repeats)]
    ttft_ours = min(r[0] for r in results_ours)
    total_ours = min(r[1] for r in results_ours)
    ttft_bare = min(r[0] for r in results_bare)
    total_bare = min(r[1] for r in results_bare)
    print(
        f"\nstreaming (Compare path) vs bare model.generate, {num_tokens} tokens, best of {repeats}:"
    )
    print(
        f"  time to first token: ours {ttft_ours * 1000:7.1f} ms | bare {ttft_bare * 1000:7.1f} ms"
    )
    print(
        f"  tokens/s:            ours {num_tokens / total_ours:7.1f}    | bare "
        f"{num_tokens / total_bare:7.1f}"
    )
    print(f"  streaming overhead: {100 * (total_ours / total_bare - 1):+.1f}% wall time")


def bench_ttft(prompt_text: str, repeats: int = 3) -> None:
    """Time to first token of the Compare and Tutor paths, fp32 vs bf16 (best of `repeats`,
    after a warm-up): Compare streams two panes in one batch, the Tutor one solution."""
    from mathtutor.compare import compare_stream
    from mathtutor.generate import GenerationSettings
    from mathtutor.models import clear_cache, load_model
    from mathtutor.tutor import solve_stream

    settings = GenerationSettings(max_new_tokens=8)
    print(f"\ntime to first token, bundled model, best of {repeats} (warm):")
    for dtype in ("float32", "bfloat16"):
        clear_cache()
        loaded = load_model("bundled", device="cpu", dtype=dtype)

        def first(stream) -> float:
            start = time.perf_counter()
            for _ in stream:
                seconds = time.perf_counter() - start
                stream.close()
                return seconds
            return float("nan")

        times = {"compare": [], "tutor": []}
        for _ in range(repeats + 1):
            times["compare"].append(
                first(compare_stream(loaded, prompt_text, ("base", "base"), "chat", settings))
            )
            times["tutor"].append(first(solve_stream(loaded, prompt_text, "base", settings)))
        print(f"  {dtype:9s} Compare (2 panes) {min(times['compare'][1:]) * 1000:7.1f} ms | "
              f"Tutor solution {min(times['tutor'][1:]) * 1000:7.1f} ms")  # fmt: skip
    clear_cache()


def bench_batch(loaded, prompts: list[str], max_new_tokens: int) -> None:
    from mathtutor.generate import GenerationSettings, generate_batch

    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    start = time.perf_counter()
    batched = generate_batch(loaded, prompts, settings=settings, batch_size=len(prompts))
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    single = [generate_batch(loaded, [p], settings=settings)[0] for p in prompts]
    single_s = time.perf_counter() - start
    tokens = sum(c.num_tokens for c in batched)
    same = sum(a.text == b.text for a, b in zip(batched, single, strict=True))
    print(f"\n{len(prompts)} GSM8K prompts, max {max_new_tokens} new tokens, greedy:")
    print(f"  batched:    {batched_s:6.1f} s  ({tokens / batched_s:6.1f} tokens/s)")
    print(f"  one by one: {single_s:6.1f} s  ({tokens / single_s:6.1f} tokens/s)")
    print(f"  speed-up batched / one-by-one: {single_s / batched_s:.2f}x")
    print(f"  identical completions: {same}/{len(prompts)}")


def bench_continuous(loaded, prompts: list[str], max_new_tokens: int, slots: int) -> None:
    from mathtutor.generate import GenerationSettings, generate_batch
    from mathtutor.prompts import stop_sequences

    settings = GenerationSettings(max_new_tokens=max_new_tokens, stop=tuple(stop_sequences("chat")))
    start, cpu = time.perf_counter(), time.process_time()
    continuous = generate_batch(loaded, prompts, settings=settings, batch_size=slots)
    continuous_s, continuous_cpu = time.perf_counter() - start, time.process_time() - cpu
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    chunked: dict[int, object] = {}
    start, cpu = time.perf_counter(), time.process_time()
    for first in range(0, len(order), slots):
        chunk = order[first : first + slots]
        results = generate_batch(loaded, [prompts[i] for i in chunk], settings=settings)
        chunked.update(zip(chunk, results, strict=True))
    chunked_s, chunked_cpu = time.perf_counter() - start, time.process_time() - cpu
    tokens = sum(c.num_tokens for c in continuous)
    same = sum(c.text == chunked[i].text for i, c in enumerate(continuous))
    print(f"\n{len(prompts)} GSM8K prompts, {slots} rows at a time, max {max_new_tokens} tokens:")
    print(f"  continuous batching: {continuous_s:6.1f} s, CPU {continuous_cpu:6.1f} s "
          f"({tokens / continuous_s:6.1f} tokens/s)")  # fmt: skip
    print(f"  fixed chunks:        {chunked_s:6.1f} s, CPU {chunked_cpu:6.1f} s "
          f"({tokens / chunked_s:6.1f} tokens/s)")  # fmt: skip
    print(f"  speed-up continuous / chunks: {chunked_s / continuous_s:.2f}x wall, "
          f"{chunked_cpu / continuous_cpu:.2f}x CPU")  # fmt: skip
    print(f"  identical completions: {same}/{len(prompts)}")


def bench_cache(loaded, prompts: list[str], max_new_tokens: int, repeats: int = 2) -> None:
    from transformers.cache_utils import DynamicCache

    from mathtutor import kvcache
    from mathtutor.generate import GenerationSettings, generate_batch
    from mathtutor.prompts import stop_sequences

    settings = GenerationSettings(max_new_tokens=max_new_tokens, stop=tuple(stop_sequences("chat")))
    chunked_cache = kvcache.chunked_cache

    def plain_cache(config):
        return DynamicCache(config=config)

    times: dict[str, list[tuple[float, float]]] = {"chunked": [], "plain": []}
    texts: dict[str, list[str]] = {}
    for _ in range(repeats):
        for name in times:  # interleaved, so a change in the machine's load hits both
            kvcache.chunked_cache = chunked_cache if name == "chunked" else plain_cache
            start, cpu = time.perf_counter(), time.process_time()
            results = generate_batch(loaded, prompts, settings=settings, batch_size=len(prompts))
            times[name].append((time.perf_counter() - start, time.process_time() - cpu))
            texts[name] = [c.text for c in results]
    kvcache.chunked_cache = chunked_cache
    best = {name: min(runs) for name, runs in times.items()}
    same = sum(a == b for a, b in zip(texts["chunked"], texts["plain"], strict=True))
    print(f"\n{len(prompts)} GSM8K prompts in one batch, max {max_new_tokens} tokens, "
          f"best of {repeats}:")  # fmt: skip
    for name, (wall, cpu) in best.items():
        print(f"  {name:8s} KV cache: {wall:6.1f} s wall, CPU {cpu:6.1f} s")
    print(f"  speed-up chunked / plain: {best['plain'][0] / best['chunked'][0]:.2f}x wall, "
          f"{best['plain'][1] / best['chunked'][1]:.2f}x CPU")  # fmt: skip
    print(f"  identical completions: {same}/{len(prompts)}")


def bench_prefill(loaded, prompts: list[str], max_new_tokens: int, repeats: int = 2) -> None:
    from mathtutor import generate
    from mathtutor.generate import GenerationSettings, generate_batch
    from mathtutor.prompts import stop_sequences

    stop = tuple(stop_sequences("chat"))
    grouped = generate.prefill_groups

    def one_group(lengths: list[int]) -> list[list[int]]:
        return [list(range(len(lengths)))]

    lengths = [len(loaded.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    groups = grouped(lengths)
    times: dict[str, dict[int, list[float]]] = {"grouped": {}, "one padded": {}}
    texts: dict[str, list[str]] = {}
    for tokens in (1, max_new_tokens):
        settings = GenerationSettings(max_new_tokens=tokens, stop=stop)
        for _ in range(repeats if tokens == 1 else 1):
            for name in times:  # interleaved, so a change in the machine's load hits both
                generate.prefill_groups = grouped if name == "grouped" else one_group
                cpu = time.process_time()
                results = generate_batch(
                    loaded, prompts, settings=settings, batch_size=len(prompts)
                )
                times[name].setdefault(tokens, []).append(time.process_time() - cpu)
                texts[name] = [c.text for c in results]
    generate.prefill_groups = grouped
    padding = 1 - sum(lengths) / (len(lengths) * max(lengths))
    grouped_padding = 1 - sum(lengths) / sum(len(g) * max(lengths[i] for i in g) for g in groups)
    same = sum(a == b for a, b in zip(texts["grouped"], texts["one padded"], strict=True))
    print(f"\n{len(prompts)} GSM8K chat prompts of {min(lengths)}-{max(lengths)} tokens in one "
          f"batch; padding {100 * padding:.0f}% in one prefill, {100 * grouped_padding:.0f}% in "
          f"{len(groups)} groups; CPU seconds, best of {repeats} for the prefill:")  # fmt: skip
    for name, runs in times.items():
        print(f"  {name:10s} prefill {min(runs[1]):6.1f} s   whole ({max_new_tokens} tokens) "
              f"{runs[max_new_tokens][0]:6.1f} s")  # fmt: skip
    one, many = times["one padded"], times["grouped"]
    print(f"  speed-up grouped / one padded: prefill {min(one[1]) / min(many[1]):.2f}x, whole "
          f"{one[max_new_tokens][0] / many[max_new_tokens][0]:.2f}x")  # fmt: skip
    print(f"  identical completions: {same}/{len(prompts)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max_new_tokens", type=int, default=128)
    parser.add_argument("--num_prompts", type=int, default=16)
    parser.add_argument("--slots", type=int, default=4, help="rows at a time (continuous)")
    parser.add_argument("--skip_load", action="store_true")
    parser.add_argument("--only_continuous", action="store_true")
    parser.add_argument("--only_ttft", action="store_true", help="Compare/Tutor TTFT by dtype")
    parser.add_argument("--only_cache", action="store_true", help="chunked vs plain KV cache")
    parser.add_argument("--only_prefill", action="store_true", help="grouped vs padded prefill")
    parser.add_argument("--only_batch", action="store_true", help="batched vs one-by-one")
    args = parser.parse_args()
    os.environ.setdefault("MATHTUTOR_GSM8K_DIR", str(REPO.parent / "shared" / "data" / "gsm8k"))
    if args.only_ttft:
        from mathtutor.data import load_problems

        bench_ttft(load_problems("gsm8k", split="test")[0].question)
        return
    only = args.only_continuous or args.only_cache or args.only_prefill or args.only_batch
    if not (args.skip_load or only):
        bench_load()
    from mathtutor.data import load_problems, sample
    from mathtutor.models import load_model
    from mathtutor.prompts import render

    loaded = load_model("bundled", device="cpu")
    problems = sample(load_problems("gsm8k", split="test"), args.num_prompts, seed=0)
    prompts = [render("chat", p.question, loaded.tokenizer) for p in problems]
    if args.only_cache:
        return bench_cache(loaded, prompts, args.max_new_tokens)
    if args.only_prefill:
        return bench_prefill(loaded, prompts, args.max_new_tokens)
    if args.only_batch:
        print(f"dtype {loaded.dtype_name}")
        return bench_batch(loaded, prompts, args.max_new_tokens)
    if not args.only_continuous:
        bench_stream(loaded, prompts[0], args.max_new_tokens)
        bench_batch(loaded, prompts, args.max_new_tokens)
    bench_continuous(loaded, prompts, args.max_new_tokens, args.slots)


if __name__ == "__main__":
    main()
