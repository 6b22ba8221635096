# Fresh Debian machine with Python 3.11:  `make run` (app on the offline demo) or `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: setup chromium run test test-fast bench screenshot clean

setup: $(INSTALLED) chromium

$(INSTALLED): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements.txt
	touch $(INSTALLED)

# Static figure export (PNG/SVG/PDF) needs Chromium; without it the app offers HTML export only.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
		echo "chromium: found"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq chromium || (apt-get update -qq && apt-get install -y -qq chromium)) \
		|| echo "chromium: install failed; figure export will be HTML-only"; \
	elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
		sudo apt-get install -y -qq chromium || echo "chromium: install failed; figure export will be HTML-only"; \
	else \
		echo "chromium: not installed (try: apt-get install chromium); figure export will be HTML-only"; \
	fi

run: setup
	$(BIN)/streamlit run app.py

test: setup
	$(BIN)/python -m pytest -m "slow or not slow" -q --durations=12

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" -q

bench: setup
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/gwot.py
	$(BIN)/python bench/lab.py
	$(BIN)/python bench/pages.py

clean:
	rm -rf $(VENV) cache

# Refresh the README screenshot from the running app in headless Chromium.
screenshot: setup
	REPSCOPE_SCREENSHOTS=tests/screenshots $(BIN)/python -m pytest tests/browser/test_browser.py -m slow -q
