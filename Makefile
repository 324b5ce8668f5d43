# mmda_vpt: one command to set up and run the demo, one to set up and run the tests.
PYTHON_VENV := .venv/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo-data demo test test-fast test-unit clean-env

## setup: the virtual environment with the whole OpenMMLab stack (idempotent)
setup:
	bash tools/setup_env.sh

## demo-data: Debian's Fashion-MNIST, the demo's pre-training data
demo-data:
	@if dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then \
	  echo "[setup] dataset-fashion-mnist already installed"; \
	else \
	  echo "[setup] installing Debian's dataset-fashion-mnist"; \
	  $(SUDO) apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q dataset-fashion-mnist >/dev/null; } || \
	  { echo "[setup] ERROR: could not install dataset-fashion-mnist with apt-get" >&2; exit 1; }; \
	fi

## demo: set up, then run the main job (pre-train, transfer, pictures) on the CPU
demo: setup demo-data
	$(PYTHON_VENV) -m demo.run_demo

## test: set up, then run the whole test suite
test: setup demo-data
	$(PYTHON_VENV) -m pytest tests -q -p no:cacheprovider

## test-fast: the tests without set-up
test-fast:
	$(PYTHON_VENV) -m pytest tests -q -x -p no:cacheprovider

## test-unit: the tests without set-up, leaving out the slow ones (runners, subprocesses)
test-unit:
	$(PYTHON_VENV) -m pytest tests -q -x -m "not slow" -p no:cacheprovider

clean-env:
	rm -rf .venv
