"""mathtutor: compare, fine-tune, evaluate and publish small math LLMs with LoRA."""

__version__ = "0.1.0"
