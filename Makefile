# Two commands on a fresh clone: `make demo` and `make test`. Each creates .venv when missing.
# CPU torch goes in first: a bare `torch` (or sentence-transformers alone) pulls a multi-GB CUDA build.
# On a machine without a local CPU wheel, take it from PyTorch's CPU index:
#     make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (that index also holds torch's own dependencies; TORCH_SPEC picks the version). The defaults need no
# extra index: this repository's CI machines hold the CPU wheel on disk and have no internet.
SHELL := /bin/bash
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
TORCH_PIP_ARGS := $(if $(strip $(TORCH_INDEX)),--index-url $(TORCH_INDEX),)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP := $(PY) -m pip

.PHONY: demo test test-core test-examples test-integrations test-packaging notebooks lint typecheck bench docs clean mutation coverage

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=25.1"

# pip installs without byte-compiling (--no-compile), and BYTE_COMPILE then compiles everything new in the venv on
# every core at once: pip compiles file by file in its one process, a third of a fresh venv's install time on the
# 2-core machines (torch alone: 42 s with pip's compiling, 15 s without). Files that do not compile are left as pip
# leaves them (compile_dir's result is not an error); the .pyc files are the ones pip would have written, so they
# are removed with their package as before.
PIP_INSTALL := $(PIP) install --quiet --no-compile
BYTE_COMPILE := $(PY) -c "import compileall, sys; compileall.compile_dir(sys.argv[1], quiet=2, workers=0)" $(VENV)/lib

# Stamp files record what was installed; they are remade when pyproject.toml changes.
$(VENV)/.torch: | $(BIN)/activate
	$(PIP_INSTALL) $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	@touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP_INSTALL) -e ".[all]"
	$(BYTE_COMPILE)
	@touch $@

# The framework integrations are installed editable beside the core, resolved together in one pip run.
INTEGRATIONS := integrations/langchain integrations/langgraph integrations/llamaindex integrations/mcp
# What tests, lint and docs need; Jupyter itself (the notebooks group) only when `make notebooks` asks for it.
# One pip run installs it all, the core and its extras included (so it also stands for .installed): layered over
# .installed, a second resolver run went over the same packages again (the two took 190 s, the one 100 s).
$(VENV)/.installed-dev: pyproject.toml $(VENV)/.torch $(addsuffix /pyproject.toml,$(INTEGRATIONS))
	$(PIP_INSTALL) --group test --group lint --group docs -e ".[all]" $(foreach d,$(INTEGRATIONS),-e "$(d)[test]")
	$(BYTE_COMPILE)
	@touch $(VENV)/.installed $@

$(VENV)/.installed-notebooks: pyproject.toml $(VENV)/.installed-dev
	$(PIP_INSTALL) --group notebooks
	$(BYTE_COMPILE)
	@touch $@

demo: $(VENV)/.installed
	$(PY) -m agentmem_plugin demo

# `make test` runs independent jobs, two at a time (the CI machines have 2 cores; override with `make test JOBS=N`),
# the longest first: the core suite as three pytest processes (each file of tests/ in exactly one part), the
# notebooks, the integration suites (each its own pytest run: its own pyproject holds its pytest settings) and the
# packaging check. They share no state: every test works in its own tmp_path, and the tests that use the
# Redis/PostgreSQL servers each work under their own uuid-named prefix/table. Each job's output is printed whole
# when it ends; every job runs (--keep-going) and `make test` fails when any job failed. `make test-core` is the
# same core suite in one process.
JOBS ?= 2
EXAMPLE_TESTS := tests/integration/test_notebooks.py tests/unit/test_readme_blocks.py
# The integration tests that run real processes and threads for seconds each (crash, kill -9 and stress tests).
CORE_PROCESS_TESTS := $(addprefix tests/integration/,test_manager_concurrency.py test_reindex_crash.py \
	test_backup_safety.py test_manager.py test_sqlite_processes.py test_jsonfile_processes.py)
CORE_PARTS := test-core-processes test-core-integration test-core-unit
# In the order of their time (longest first), so that no long job starts last.
TEST_JOBS := test-core-integration test-core-processes test-core-unit test-examples-notebooks \
	test-integration-langchain test-packaging test-integration-langgraph test-integration-llamaindex \
	test-integration-mcp test-examples-blocks
TEST_JOBS += $(filter-out $(TEST_JOBS),$(addprefix test-integration-,$(notdir $(INTEGRATIONS))))
# One thread per job for torch's (and numpy's) OpenMP pool: its default, a thread per core, only spins against the
# other job on a 2-core machine. 200 stores with the real embedder beside another job: 12 s CPU with one thread,
# 31 s with two. A value in the environment wins.
TEST_TARGETS := test test-core test-examples test-integrations $(CORE_PARTS) $(TEST_JOBS)
$(TEST_TARGETS): export OMP_NUM_THREADS ?= 1
# Python may write its .pyc files during the tests even where $PYTHONDONTWRITEBYTECODE is set (an empty value is
# unset): without them every pytest process re-did its assertion rewriting of the ~390 plugin modules it loads
# (langsmith's, hypothesis's, ...; 3.3 s CPU a process), and every subprocess, spawned worker, kernel and server
# compiled agentmem_plugin and the integrations from source again (the mcp job: 31 s CPU without them, 27 s with).
$(TEST_TARGETS): export PYTHONDONTWRITEBYTECODE :=
test: $(VENV)/.installed-dev
	@$(MAKE) --no-print-directory --output-sync=target --keep-going --jobs=$(JOBS) $(TEST_JOBS)

test-core: $(VENV)/.installed-dev
	$(PY) -m pytest -q $(addprefix --ignore=,$(EXAMPLE_TESTS))

.PHONY: $(CORE_PARTS)
test-core-processes: $(VENV)/.installed-dev
	$(PY) -m pytest -q $(CORE_PROCESS_TESTS)
test-core-integration: $(VENV)/.installed-dev
	$(PY) -m pytest -q tests/integration $(addprefix --ignore=,$(EXAMPLE_TESTS) $(CORE_PROCESS_TESTS))
test-core-unit: $(VENV)/.installed-dev
	$(PY) -m pytest -q tests --ignore=tests/integration $(addprefix --ignore=,$(EXAMPLE_TESTS))

# Executes every notebook in a real kernel, and every python block of README.md and docs/ (`make test` runs the
# two files as two jobs).
test-examples: $(VENV)/.installed-dev
	$(PY) -m pytest -q $(EXAMPLE_TESTS)

.PHONY: test-examples-notebooks test-examples-blocks
test-examples-notebooks: $(VENV)/.installed-dev
	$(PY) -m pytest -q tests/integration/test_notebooks.py
test-examples-blocks: $(VENV)/.installed-dev
	$(PY) -m pytest -q tests/unit/test_readme_blocks.py

test-integrations: $(addprefix test-integration-,$(notdir $(INTEGRATIONS)))
test-integration-%: $(VENV)/.installed-dev
	$(PY) -m pytest -q integrations/$*

# Builds every wheel and runs each integration's README in a fresh venv holding only its declared dependencies.
test-packaging: $(VENV)/.installed-dev
	$(PY) tests/packaging/check_wheels.py

# Jupyter from the venv, on the notebooks directory.
notebooks: $(VENV)/.installed-notebooks
	$(BIN)/jupyter notebook notebooks/

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check agentmem_plugin tests benchmarks integrations
	$(BIN)/ruff format --check agentmem_plugin integrations
	$(BIN)/mypy
	$(BIN)/mypy $(foreach d,langchain/langchain_agentmem langgraph/agentmem_langgraph llamaindex/agentmem_llamaindex mcp/agentmem_mcp,integrations/$(d))

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy
	$(BIN)/mypy $(foreach d,langchain/langchain_agentmem langgraph/agentmem_langgraph llamaindex/agentmem_llamaindex mcp/agentmem_mcp,integrations/$(d))

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

# Line and branch coverage of the core suite (the test-core selection), per module; docs/testing.md has the
# numbers. The table printed is the core modules of the issue; the whole package is in htmlcov/ and .coverage.
CORE_MODULES := entry.py codec.py policies.py search.py moves.py tiers/base.py tiers/buffer.py tiers/sqlite.py \
	tiers/archive.py adapters/shared.py
COMMA := ,
coverage: $(VENV)/.installed-dev
	nice -n 10 $(PY) -m pytest -q -p no:cacheprovider --cov --cov-branch --cov-report=html --cov-report= \
		$(addprefix --ignore=,$(EXAMPLE_TESTS))
	$(BIN)/coverage report --include=$(subst $(eval) ,$(COMMA),$(addprefix agentmem_plugin/,$(CORE_MODULES)))

# Mutation testing of the core modules with mutmut ([tool.mutmut] in pyproject.toml): slow (an hour or more on
# 2 cores), so not part of `make test`; niced, as it shares the machine. MUTANTS picks mutants by mutmut's name
# glob, one module at a time: make mutation MUTANTS='agentmem_plugin.search.*'. Results stay in mutants/
# (a rerun only runs what changed); the per-module tally is printed last.
MUTANTS ?=
mutation: $(VENV)/.installed-dev
	nice -n 10 $(BIN)/mutmut run --max-children 2 $(MUTANTS)
	$(BIN)/mutmut results --all true | sed -E 's/^ *//; s/\.x(ǁ[^ ]*|_[^ ]*)__mutmut_[0-9]+:/ /' \
		| awk '{n[$$1]++; s[$$1" "$$2]++} END {for (m in n) printf "%-40s %5d mutants %5d killed %4d survived %4d other\n", \
		m, n[m], s[m" killed"], s[m" survived"], n[m]-s[m" killed"]-s[m" survived"]}' | sort

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis site
