"""Training entry points for mathtutor: `python -m training.sft --config training/recipes/bundled-quick.yaml`."""
