"""The CEL library binding: how the `common-expression-language` extension is loaded.

The `cel` package's `__init__` also imports its interactive shell (`cel.cli`: prompt_toolkit,
pygments), a third of a second on every start, so its compiled extension `cel/cel<suffix>`
is loaded alone, by file path. This is the one place that knows that layout;
tests/unit/test_expr_binding.py fails when upstream packaging changes it (the extension
moves, or `__init__` stops importing the shell and the ordinary import becomes cheap).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from types import ModuleType

EXTENSION = "cel.cel"  # the extension module's name inside the package


def extension_paths() -> list[str]:
    """Where the extension would be, one path per extension suffix this interpreter loads."""
    spec = importlib.util.find_spec("cel")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [
        f"{directory}/cel{suffix}"
        for directory in spec.submodule_search_locations
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
    ]


def load_cel() -> ModuleType:
    """The CEL extension module, loaded once per process (a second copy would panic)."""
    loaded = sys.modules.get(EXTENSION) or sys.modules.get("cel")
    if loaded is not None:
        return loaded
    for path in extension_paths():
        extension = importlib.util.spec_from_file_location(EXTENSION, path)
        if extension is None or extension.loader is None:
            continue
        try:
            module = importlib.util.module_from_spec(extension)
            extension.loader.exec_module(module)
        except ImportError:  # no file with this suffix
            continue
        sys.modules.setdefault(EXTENSION, module)
        return module
    import cel  # the package layout changed: take the slow, ordinary way

    return cel


cel = load_cel()
