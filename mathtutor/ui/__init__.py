"""Gradio tabs of the mathtutor app: each module has a `build()` that wires one tab."""
