"""Per-step overhead of the decoding loop (the time that is not the model), old vs new, one run.

    python bench/bench_decode_step.py [--num_tokens 1024] [--rows 16] [--loop_rows 2]

Two measurements on the bundled SmolLM2-135M tokenizer and model (CPU), each side by side:

1. Text bookkeeping alone, no model: `rows` rows grow to `num_tokens` tokens of real GSM8K
   solutions, one token per step, with the chat format's stop strings checked after every
   token. Old: `tokenizer.decode` of the whole row and a search of the whole text (what
   `generate._decode` did before `DecodedText`). New: `DecodedText.append` and `_stop_cut` on
   the changed tail. Prints ms per step near `num_tokens` and over the whole run, and the ratio.
2. The whole loop, `generate_batch` on `loop_rows` rows to `num_tokens` tokens (end-of-turn
   tokens ignored so every row runs to the end), with the new text path and with the old one
   swapped in; forward passes are timed by hooks, so "other" is everything but the model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


class FullDecodeText:
    """The old text path: decode the whole row after every token (same interface as
    `DecodedText`); `append` returns 0, so the stop search covers the whole text as before."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self.text = ""

    def append(self, token: int) -> int:
        self.tokens.append(token)
        self.text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        return 0


def solution_tokens(tokenizer, num_tokens: int) -> list[int]:
    from mathtutor.data import load_problems

    text = ""
    for problem in load_problems("gsm8k", split="train"):
        text += f"{problem.solution}\nThe answer is {problem.answer}.\n\n"
        if len(text) > 8 * num_tokens:
            break
    return tokenizer.encode(text, add_special_tokens=False)[:num_tokens]


def bench_text(tokenizer, num_tokens: int, rows: int, stops: tuple[str, ...]) -> None:
    from mathtutor.generate import DecodedText, _stop_cut

    tokens = solution_tokens(tokenizer, num_tokens)
    tail = min(64, len(tokens) // 4)  # the steps that count as "at num_tokens"
    results = {}
    for name, make in (("old: full decode", FullDecodeText), ("new: DecodedText", DecodedText)):
        texts = [make(tokenizer) for _ in range(rows)]
        step_seconds = []
        for token in tokens:
            start = time.perf_counter()
            for text in texts:
                changed_from = text.append(token)
                _stop_cut(text.text, stops, changed_from)
            step_seconds.append(time.perf_counter() - start)
        assert all(text.text == texts[0].text for text in texts)
        results[name] = (sum(step_seconds[-tail:]) / tail, sum(step_seconds), texts[0].text)
    (old_step, old_total, old_text), (new_step, new_total, new_text) = results.values()
    assert old_text == new_text, "the incremental text differs from the full decode"
    print(f"\n1. text + stop check, {rows} rows x {len(tokens)} tokens, stops {list(stops)}:")
    for name, (step, total, _) in results.items():
        print(f"  {name}: {1000 * step:8.3f} ms/step at tokens {len(tokens) - tail}-{len(tokens)}"
              f"  | {total:7.2f} s for the whole run")  # fmt: skip
    print(f"  ratio old/new at {len(tokens)} tokens: {old_step / new_step:.0f}x per step, "
          f"{old_total / new_total:.0f}x over the run; texts identical: {old_text == new_text}")  # fmt: skip


def bench_loop(loaded, prompts: list[str], num_tokens: int) -> None:
    import torch

    from mathtutor import generate

    model_seconds = [0.0]
    started: list[float] = []

    def before(_module, _args):
        started.append(time.perf_counter())

    def after(_module, _args, _output):
        model_seconds[0] += time.perf_counter() - started.pop()

    settings = generate.GenerationSettings(max_new_tokens=num_tokens)
    real_eos, real_text = generate._eos_ids, generate.DecodedText
    generate._eos_ids = lambda _loaded: set()  # every row runs to num_tokens
    hooks = [loaded.model.register_forward_pre_hook(before),
             loaded.model.register_forward_hook(after)]  # fmt: skip
    print(f"\n2. generate_batch, {len(prompts)} rows x {num_tokens} tokens, greedy, "
          f"torch threads {torch.get_num_threads()}:")  # fmt: skip
    texts = {}
    try:
        for name, text_class in (("old text path", FullDecodeText), ("new text path", real_text)):
            generate.DecodedText = text_class
            model_seconds[0] = 0.0
            start = time.perf_counter()
            completions = generate.generate_batch(loaded, prompts, settings=settings)
            total = time.perf_counter() - start
            steps = max(c.num_tokens for c in completions)
            other = total - model_seconds[0]
            texts[name] = [c.text for c in completions]
            print(f"  {name}: {1000 * model_seconds[0] / steps:7.2f} ms/step model, "
                  f"{1000 * other / steps:7.2f} ms/step other ({100 * other / total:4.1f}% of "
                  f"{total:5.1f} s)")  # fmt: skip
    finally:
        generate._eos_ids, generate.DecodedText = real_eos, real_text
        for hook in hooks:
            hook.remove()
    same = texts["old text path"] == texts["new text path"]
    print(f"  texts identical: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_tokens", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=16, help="rows for the text-only measurement")
    parser.add_argument(
        "--loop_rows", type=int, default=2, help="rows for the whole loop (0: skip)"
    )
    args = parser.parse_args()
    from mathtutor.data import load_problems, sample
    from mathtutor.models import load_model
    from mathtutor.prompts import render, stop_sequences

    loaded = load_model("bundled", device="cpu")
    stops = tuple(stop_sequences("chat"))
    bench_text(loaded.tokenizer, args.num_tokens, args.rows, stops)
    if args.loop_rows:
        problems = sample(load_problems("gsm8k", split="test"), args.loop_rows, seed=0)
        prompts = [render("chat", p.question, loaded.tokenizer) for p in problems]
        bench_loop(loaded, prompts, args.num_tokens)


if __name__ == "__main__":
    main()
