"""Export: merge a LoRA adapter into its base model and save (or push) the merged model.

`merge_adapter(adapter_dir, out_dir)` loads the adapter's base (the id or path recorded in
`adapter_config.json`; the bundled SmolLM2 resolves to its local conversion), applies the
adapter, folds its weights into the base (`peft`'s `merge_and_unload`) and writes a plain
transformers model: `model.safetensors` (sharded when large), config, tokenizer and a README.md
card that says it is merged and from which adapter (`mathtutor.json` records the same). The
folder is written beside the target and renamed into place only when complete. The merged
model's greedy outputs equal base + adapter (a test checks it).

GGUF (llama.cpp's format) is optional: `gguf_problem()` says why it is not available here.
The `gguf` package only reads and writes GGUF files; converting a Hugging Face model needs
llama.cpp's `convert_hf_to_gguf.py`, found through `$MATHTUTOR_GGUF_CONVERTER` or on `PATH`.

    python -m mathtutor.export runs/<run>/adapter merged/               # merge and save
    python -m mathtutor.export runs/<run>/adapter merged/ --gguf        # and a GGUF beside it
    python -m mathtutor.export runs/<run>/adapter merged/ --push you/model-merged

Heavy imports (torch, transformers, peft) happen inside the functions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mathtutor import cli

GGUF_CONVERTER = "convert_hf_to_gguf.py"
GGUF_HINT = (
    "GGUF export needs llama.cpp's converter: git clone https://github.com/ggml-org/llama.cpp, "
    "pip install -r llama.cpp/requirements.txt, then set MATHTUTOR_GGUF_CONVERTER to "
    "llama.cpp/convert_hf_to_gguf.py (the `gguf` package alone cannot convert a model)"
)
GGUF_TYPES = ("f16", "bf16", "q8_0", "f32")


def merge_adapter(
    adapter_dir: str | Path, out_dir: str | Path, base_model: str | None = None
) -> Path:
    """Merge the LoRA adapter in `adapter_dir` into its base and save it to `out_dir`.

    `base_model` overrides the base recorded in the adapter (a local copy of it, say).
    Refuses an `out_dir` that exists and is not empty. Returns `out_dir`.
    """
    from mathtutor.models import base_model_id, read_adapter_config

    adapter_dir = Path(adapter_dir).expanduser()
    out_dir = Path(out_dir).expanduser()
    if not adapter_dir.is_dir():
        raise ValueError(f"adapter_dir: {adapter_dir} is not a directory")
    config = read_adapter_config(adapter_dir)
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise ValueError(f"adapter_dir: {adapter_dir} is a {config['peft_type']} adapter, not LoRA")
    base = (base_model or config.get("base_model_name_or_path") or "").strip()
    if not base:
        raise ValueError(
            f"adapter_dir: {adapter_dir}/adapter_config.json names no base model; pass base_model"
        )
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"out_dir: {out_dir} already exists and is not empty; pick a new folder")
    model, tokenizer = _merged(adapter_dir, base)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    try:
        model.save_pretrained(temp, safe_serialization=True)
        tokenizer.save_pretrained(temp)
        hub_base = base_model_id(base)
        marker = {
            "merged_from": str(adapter_dir.resolve()),
            "base_model": hub_base,
            "adapter_base_model": config.get("base_model_name_or_path"),
            "merged": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (temp / "mathtutor.json").write_text(json.dumps(marker, indent=2) + "\n", "utf-8")
        (temp / "README.md").write_text(merged_card(adapter_dir, hub_base, config), "utf-8")
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above)
        os.replace(temp, out_dir)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return out_dir


def _merged(adapter_dir: Path, base: str) -> tuple[Any, Any]:
    """(base with the adapter folded in, tokenizer), in the base's own dtype on the CPU."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mathtutor.models import loading, resolve_model

    source = resolve_model(base)
    with loading(base, source):
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype="auto")
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    except Exception as error:  # shapes or modules that do not match this base
        raise ValueError(
            f"adapter_dir: {adapter_dir} does not load onto {base!r}: {type(error).__name__}: "
            f"{str(error)[:300]}"
        ) from error
    return peft_model.merge_and_unload(), tokenizer


def merged_card(adapter_dir: Path, base: str, config: dict[str, Any]) -> str:
    """The README.md of a merged model: what it is, from which adapter and base."""
    from mathtutor.model_card import _HUB_ID  # the Hub accepts only model ids as base_model

    card_path = adapter_dir / "README.md"
    lines = [
        "---",
        "library_name: transformers",
        *([f"base_model: {base}", "base_model_relation: merge"] if _HUB_ID.match(base) else []),
        "pipeline_tag: text-generation",
        "tags:",
        "- mathtutor",
        "- merged",
        "- gsm8k",
        "---",
        "",
        f"# {adapter_dir.parent.name if adapter_dir.name == 'adapter' else adapter_dir.name} (merged)",
        "",
        f"This is **{base}** with a LoRA adapter **merged into its weights** "
        f"(`peft` `merge_and_unload`): a plain transformers model, no peft needed to load it.",
        "",
        f"- Adapter: `{adapter_dir.resolve()}` (LoRA r={config.get('r')}, "
        f"alpha={config.get('lora_alpha')})",
        f"- Base model: `{base}`",
        "- Merged with mathtutor (`python -m mathtutor.export`).",
    ]
    if card_path.is_file():
        body = card_path.read_text("utf-8").split("---\n", 2)[-1].strip()
        lines += ["", "## The adapter's card", "", body]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- GGUF
def gguf_converter() -> Path | None:
    """llama.cpp's HF -> GGUF converter script, if one is installed here."""
    configured = os.environ.get("MATHTUTOR_GGUF_CONVERTER", "").strip()
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_file() else None
    found = shutil.which(GGUF_CONVERTER)
    return Path(found) if found else None


def gguf_problem() -> str | None:
    """Why GGUF export is unavailable here (with an install hint), or None when it is."""
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        return "the gguf package is not installed (pip install gguf); " + GGUF_HINT
    if gguf_converter() is None:
        return GGUF_HINT
    return None


def export_gguf(model_dir: str | Path, out_file: str | Path, outtype: str = "f16") -> Path:
    """Convert a merged model folder to one GGUF file with llama.cpp's converter."""
    if outtype not in GGUF_TYPES:
        raise ValueError(f"outtype: {outtype!r} is not one of {', '.join(GGUF_TYPES)}")
    problem = gguf_problem()
    if problem:
        raise ValueError(f"gguf: not available here: {problem}")
    model_dir, out_file = Path(model_dir), Path(out_file)
    command = [sys.executable, str(gguf_converter()), str(model_dir), "--outfile", str(out_file)]
    done = subprocess.run([*command, "--outtype", outtype], capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ValueError(f"gguf: the converter failed: {tail[0][:300]}")
    return out_file


# --------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m mathtutor.export",
        description="Merge a LoRA adapter into its base model and save (or push) it.",
        epilog=cli.DEBUG_HELP,
    )
    parser.add_argument("adapter_dir", help="the adapter folder (e.g. runs/<run>/adapter)")
    parser.add_argument("out_dir", help="new folder for the merged model")
    parser.add_argument("--base_model", help="base model to merge into (default: the recorded one)")
    parser.add_argument("--push", metavar="REPO_ID", help="also push the merged model to the Hub")
    parser.add_argument("--public", action="store_true", help="with --push: a public repo")
    parser.add_argument("--gguf", action="store_true", help="also write <out_dir>/model.gguf")
    parser.add_argument("--gguf_type", default="f16", choices=GGUF_TYPES, help="GGUF tensor type")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.gguf and gguf_problem():  # refused before minutes of merging
        raise ValueError(f"--gguf: not available here: {gguf_problem()}")
    out_dir = merge_adapter(args.adapter_dir, args.out_dir, args.base_model)
    print(f"merged model: {out_dir}")
    if args.gguf:
        print(f"gguf: {export_gguf(out_dir, out_dir / 'model.gguf', args.gguf_type)}")
    if args.push:
        from mathtutor import hub

        url = hub.push_model(out_dir, args.push, hub.get_token(), private=not args.public)
        print(f"pushed: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
