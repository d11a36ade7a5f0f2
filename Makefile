# Two commands on a fresh clone: `make demo` and `make test`. Each creates .venv when missing.
# CPU torch goes in first: a bare `torch` (or sentence-transformers alone) pulls a multi-GB CUDA build.
SHELL := /bin/bash
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP := $(PY) -m pip

.PHONY: demo test lint typecheck bench docs clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=25.1"

# Stamp files record what was installed; they are remade when pyproject.toml changes.
$(VENV)/.torch: | $(BIN)/activate
	$(PIP) install --quiet "$(TORCH_SPEC)"
	@touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP) install --quiet -e ".[all]"
	@touch $@

# The framework integrations are installed editable beside the core, resolved together in one pip run.
INTEGRATIONS := integrations/langchain integrations/langgraph integrations/llamaindex
$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed $(addsuffix /pyproject.toml,$(INTEGRATIONS))
	$(PIP) install --quiet --group dev -e ".[all]" $(foreach d,$(INTEGRATIONS),-e "$(d)[test]")
	@touch $@

demo: $(VENV)/.installed
	$(PY) -m agentmem_plugin demo

# Each integration is its own pytest run: its own pyproject holds its pytest settings.
test: $(VENV)/.installed-dev
	$(PY) -m pytest -q
	$(foreach d,$(INTEGRATIONS),$(PY) -m pytest -q $(d) &&) true

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check agentmem_plugin tests benchmarks integrations
	$(BIN)/ruff format --check agentmem_plugin integrations
	$(BIN)/mypy
	$(BIN)/mypy $(foreach d,langchain/langchain_agentmem langgraph/agentmem_langgraph llamaindex/agentmem_llamaindex,integrations/$(d))

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy
	$(BIN)/mypy $(foreach d,langchain/langchain_agentmem langgraph/agentmem_langgraph llamaindex/agentmem_llamaindex,integrations/$(d))

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/bench_tiers.py
	$(PY) benchmarks/bench_locomo.py
	$(PY) benchmarks/bench_semantic.py
	$(PY) benchmarks/bench_manager.py
	$(PY) benchmarks/bench_backends.py

# The documentation site (mkdocs-material + mkdocstrings); --strict turns every warning (a broken link, a missing
# reference) into a failure. Output in site/.
docs: $(VENV)/.installed-dev
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis site
