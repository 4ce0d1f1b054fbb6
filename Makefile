# Two commands do everything: `make demo` (the main job: the five-initialization benchmark at demo
# scale) and `make test` (the suite CI runs: ruff's lint and import order, then pytest). `make demo-quick`
# is the smoke version (4 minutes on 2 CPU cores).
# Both create or refresh .venv from requirements.lock + setup.py first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp
PY := $(VENV)/bin/python

.PHONY: venv demo demo-quick demo-detector test clean-venv

$(STAMP): requirements.lock setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps tidecv==1.0.1
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) tools/benchmark.py $(ARGS)

demo-quick: $(STAMP)
	$(PY) tools/benchmark.py --quick $(ARGS)

demo-detector: $(STAMP)
	$(PY) tools/lazyconfig_train_net.py --config-file configs/demo/mask_rcnn_vit_tiny.py $(ARGS)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q tests $(ARGS)

clean-venv:
	rm -rf $(VENV)
