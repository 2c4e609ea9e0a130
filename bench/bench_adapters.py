"""Memory of many LoRA adapters on one base (bundled SmolLM2-135M), fp32 vs bf16, side by side.

    python bench/bench_adapters.py [--adapters 10] [--rank 8]

For each dtype, in a fresh process: load the bundled base, then `--adapters` LoRA adapters
(rank `--rank`, all linear layers, random weights, written once to a temp dir in home) onto it
through `LoadedModel.add_adapter` (the app's path); print the base's weight bytes, the
adapters' weight bytes, the process's resident memory before and after, and each as a share
of the base. One greedy step per adapter checks they run. Results also go to
`bench/out/bench_adapters.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "out"

CHILD = """
import gc, json, sys
sys.path.insert(0, {repo!r})
from mathtutor.models import load_model

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

loaded = load_model("bundled", device="cpu", dtype={dtype!r})
import peft  # imported by the first add_adapter: its ~60 MB of modules are not the adapters'
gc.collect()
before = rss_mb()
base_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
for path in {paths!r}:
    loaded.add_adapter(path)
gc.collect()
after = rss_mb()
lora = [p for n, p in loaded.model.named_parameters() if "lora_" in n]
ids = loaded.tokenizer("2 + 2 =", return_tensors="pt")["input_ids"]
import torch
with torch.no_grad():
    for name in loaded.adapters:
        loaded.model(input_ids=ids, adapter_names=[name])
print(json.dumps({{
    "dtype": loaded.dtype_name,
    "adapter_dtypes": sorted({{str(p.dtype) for p in lora}}),
    "base_mb": base_bytes / 2**20,
    "adapters_mb": sum(p.numel() * p.element_size() for p in lora) / 2**20,
    "rss_before_mb": before,
    "rss_after_mb": after,
}}))
"""


def make_adapters(count: int, rank: int, folder: Path) -> list[str]:
    """`count` random LoRA adapters on the bundled base, saved as peft writes them."""
    import torch
    from peft import LoraConfig, get_peft_model

    from mathtutor.models import clear_cache, load_model

    paths = []
    for index in range(count):
        clear_cache()  # a fresh base each time: get_peft_model changes the one it wraps
        base = load_model("bundled", device="cpu", dtype="float32").model
        torch.manual_seed(index)
        config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear")
        model = get_peft_model(base, config)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.01)
        path = folder / f"adapter-{index}"
        model.save_pretrained(path)
        paths.append(str(path))
    clear_cache()
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=10)
    parser.add_argument("--rank", type=int, default=8)
    args = parser.parse_args()
    from mathtutor.paths import home_dir

    results = []
    # adapters are read only from the allowed folders (`mathtutor.paths`): write them in home
    with tempfile.TemporaryDirectory(dir=home_dir(), prefix="bench-adapters-") as folder:
        paths = make_adapters(args.adapters, args.rank, Path(folder))
        for dtype in ("float32", "bfloat16"):
            code = CHILD.format(repo=str(REPO), dtype=dtype, paths=paths)
            out = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.adapters} LoRA adapters, rank {args.rank}, all-linear, bundled SmolLM2-135M")
    print(f"{'dtype':>9} {'adapters':>9} {'base MB':>8} {'adapt MB':>9} {'share':>6} "
          f"{'RSS MB':>15} {'RSS +':>6}")  # fmt: skip
    for r in results:
        share = r["adapters_mb"] / r["base_mb"]
        grown = (r["rss_after_mb"] - r["rss_before_mb"]) / r["rss_before_mb"]
        print(
            f"{r['dtype']:>9} {','.join(t.removeprefix('torch.') for t in r['adapter_dtypes']):>9}"
            f" {r['base_mb']:8.1f} {r['adapters_mb']:9.1f} {share:6.1%}"
            f" {r['rss_before_mb']:7.0f}->{r['rss_after_mb']:<7.0f} {grown:6.1%}"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_adapters.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
