"""Evaluation presets: the seed reports' protocols (prompt, answer type, confidence, Hub id).

A preset fills the `EvalConfig` fields it names (those still at their defaults), so
`python -m mathtutor.evaluate --preset aime-2025` runs seed 003 part 2's protocol against the
Hub dataset the preset names; offline, loading it fails with `tables`' one-line error.

- `aime-2025` (seed 003, part 2): Qwen2.5-Math's "reason step by step, final answer in
  \\boxed{}" prompt, the 30 AIME 2025 problems (`math-ai/aime25`, columns `problem` and
  `answer`), integer answers graded as numbers in the boxed mode, 4,000 new tokens ("we set a
  max token limit of 4,000").
- `aime-2025-latex`: the same with math-verify grading (`latex`), for answer sets that are
  not plain integers.
- `hle` (seed 004): Humanity's Last Exam (`cais/hle`, split `test`) with HLE's own answer
  format ("Explanation / Exact Answer / Confidence: N%"), answers compared as normalised
  strings (`exact`: HLE's multiple-choice answers are letters, so they compare the same way);
  accuracy and the RMS calibration error of the stated confidence (`metrics.rms_calibration_error`).
  HLE is gated on the Hub: accept its terms and set `HF_TOKEN`. Its image questions are given
  as text only.

The Hub ids are the public copies these protocols name; they are not reachable from the test
machines, where the tests run the same presets against the test Hub.

>>> sorted(PRESETS)
['aime-2025', 'aime-2025-latex', 'hle']
>>> PRESETS["hle"]["prompt_format"], PRESETS["hle"]["answer_type"]
('hle', 'exact')
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "aime-2025": {
        "description": "Seed 003 part 2: AIME 2025 (30 problems), \\boxed{} answers, numbers.",
        "dataset": "hub",
        "hub_id": "math-ai/aime25",
        "split": "test",
        "question_template": "{problem}",
        "answer_field": "answer",
        "answer_type": "number",
        "prompt_format": "qwen-boxed",
        "max_new_tokens": 4000,
        "num_samples": 30,
    },
    "aime-2025-latex": {
        "description": "AIME 2025 graded with math-verify (LaTeX answers).",
        "dataset": "hub",
        "hub_id": "math-ai/aime25",
        "split": "test",
        "question_template": "{problem}",
        "answer_field": "answer",
        "answer_type": "latex",
        "prompt_format": "qwen-boxed",
        "max_new_tokens": 4000,
        "num_samples": 30,
    },
    "hle": {
        "description": "Seed 004: Humanity's Last Exam, exact answers + stated confidence.",
        "dataset": "hub",
        "hub_id": "cais/hle",
        "split": "test",
        "question_template": "{question}",
        "answer_field": "answer",
        "id_field": "id",
        "answer_type": "exact",
        "prompt_format": "hle",
        "max_new_tokens": 2048,
    },
}


def preset_values(name: str) -> dict[str, Any]:
    """The config fields preset `name` sets (its description left out).

    >>> preset_values("aime-2025")["hub_id"]
    'math-ai/aime25'
    """
    if name not in PRESETS:
        raise ValueError(f"preset {name!r} is not one of: {', '.join(PRESETS)}")
    return {key: value for key, value in PRESETS[name].items() if key != "description"}
