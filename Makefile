# Two commands: `make demo` runs the main job on the built-in default, `make test` runs the tests.
# Both create .venv on first use and reinstall when pyproject.toml changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WEB := router_lab/export/web
WEB_STAMP := $(WEB)/node_modules/.installed

.PHONY: demo test lint bench clean chromium

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "router_lab needs Python 3.11, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

# The web export target's harness: onnxruntime-web pinned by package-lock.json. Where npm is
# missing (or the registry is unreachable) the web target is skipped with a message, never failed.
$(WEB_STAMP): $(WEB)/package.json $(WEB)/package-lock.json
	@if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then \
		npm ci --prefix $(WEB) --no-audit --no-fund --loglevel=error && touch $@ \
		|| echo "npm ci failed in $(WEB): the web export target will be skipped"; \
	else echo "node/npm not found: the web export target will be skipped (install Node.js >= 18 to validate it)"; fi

# build digits -> train -> export + validate (ONNX) -> compare_policies multirun -> report.html
demo: $(STAMP) $(WEB_STAMP)
	$(BIN)/python -m router_lab.demo

# The report's layout test drives headless Chromium: Debian's package, installed here when missing
# (as root, with apt-get; ~2.5 min once). Without it the test skips and says so.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && DEBIAN_FRONTEND=noninteractive apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "make: no chromium (needs root and apt-get): tests/test_report_layout.py will skip"

# The three installs (Python packages, the web harness, Chromium) are independent: run side by side.
test:
	@$(MAKE) --no-print-directory -j3 $(STAMP) $(WEB_STAMP) chromium
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP) $(WEB_STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(WEB)/node_modules outputs/* datasets/*.parquet datasets/*.card.json datasets/*.device_model.json
	@touch outputs/.gitkeep
