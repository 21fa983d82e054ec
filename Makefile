# The two commands of the README:
#   make demo   set up, then offload an example notebook to the local backend (the default)
#   make test   set up everything the tests need (package, lab extension, services), run them all
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml package.json 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: demo test setup services lint pytest ui-test bench clean

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[all,test]'
	$(BIN)/python -m compileall -q offload jupyter_ext
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

services: setup
	@for s in scripts/setup-*.sh; do bash $$s || exit 1; done

demo: setup
	rm -rf .offload-demo && mkdir -p .offload-demo && cp -r examples/. .offload-demo/
	OFFLOAD_HOME=$(CURDIR)/.offload-demo/home $(BIN)/offload run .offload-demo/quickstart.ipynb -p lr=0.05 -p epochs=5
	OFFLOAD_HOME=$(CURDIR)/.offload-demo/home $(BIN)/offload ls
	OFFLOAD_HOME=$(CURDIR)/.offload-demo/home $(BIN)/offload merge $$(OFFLOAD_HOME=$(CURDIR)/.offload-demo/home $(BIN)/offload ls --json | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
	@echo "executed outputs merged into .offload-demo/quickstart.ipynb"

lint: setup
	$(BIN)/ruff check offload jupyter_ext tests benchmarks
	$(BIN)/lint-imports

pytest: services
	$(BIN)/pytest -q -p no:cacheprovider --durations=25

ui-test: services
	bash scripts/ui-test.sh

test: lint pytest ui-test

bench: setup
	$(BIN)/python benchmarks/bench_run.py

clean:
	rm -rf $(VENV) node_modules jupyter_ext/labextension .offload-demo
