# All set-up happens on first use: `make demo` and `make test` create .venv and install into it.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
EXTRAS ?= dev,lucene,tools,distributed
# Where torch 2.13.0 comes from: empty = the configured pip index; the Dockerfile passes the CPU or CUDA index.
TORCH_INDEX ?=

.PHONY: install demo test lint proto bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the CPU build on local disk, never a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m ferret.demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(PY) -m ruff check ferret tests bench

proto: $(STAMP)
	$(PY) -m ferret.proto.generate

bench: $(STAMP)
	$(PY) bench/embed_throughput.py
	$(PY) bench/compress_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
