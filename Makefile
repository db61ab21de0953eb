# Entry points for developers and CI (.ci/run calls `make test`).
PYTHON ?= python3

.PHONY: setup test check fuzz

# Debian packages for the real test servers, then the package with its test extras.
setup:
	bash scripts/setup-test-env.sh

# The whole suite on two workers; a worker starts its own sshd, dockerd or PostgreSQL
# when one of its tests first needs it (tests/conftest.py).
test: setup
	$(PYTHON) -m pytest -n 2

check:
	$(PYTHON) -m ruff check auditor tests
	$(PYTHON) -m mypy

# The fuzz test with a fresh seed for ten minutes (the suite replays a fixed seed for 30 s).
fuzz:
	FUZZ_SEED=random FUZZ_SECONDS=600 $(PYTHON) -m pytest -p no:cacheprovider --timeout 900 -s tests/fuzz/test_fuzz_inputs.py -k mutated
