"""Real-browser end-to-end tests: headless Chromium drives `python app.py` (see conftest.py)."""
