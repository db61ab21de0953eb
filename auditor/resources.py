"""Where the shipped data (profiles, report templates, the results schema) lives, installed
or in a checkout."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent


def _data_dir(name: str, checkout_relative: str) -> Path:
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    return _CHECKOUT / checkout_relative


def benchmarks_dir() -> Path:
    """The directory holding the shipped benchmark profiles."""
    return _data_dir("benchmarks", "benchmarks")


def templates_dir() -> Path:
    """The directory holding the Jinja2 report templates."""
    return _data_dir("templates", "reports/templates")


def results_schema_path() -> Path:
    """The JSON Schema of the results document (docs/results.schema.json in a checkout)."""
    installed = _PACKAGE / "_data" / "results.schema.json"
    return installed if installed.is_file() else _CHECKOUT / "docs" / "results.schema.json"
