# Entry points for developers and CI (.ci/run calls `make test`).
PYTHON ?= python3

.PHONY: setup test check

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
