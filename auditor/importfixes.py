"""Workarounds for what third-party packages import at start-up, in one guarded place.

Each costs a tenth to a third of a second on every `auditor` start, and each rests on how
an upstream package is laid out today; tests/unit/test_importfixes.py fails when that
changes, so that a workaround goes as soon as it is no longer needed, and is never silently
wrong.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any


class _ImportedOnUse(types.ModuleType):
    """Stands in for a module until one of its attributes is asked for, then imports it.
    (importlib's LazyLoader loads at once on Python 3.11: the import statement reads the
    module's __spec__.)"""

    def __getattr__(self, attribute: str) -> Any:
        real = sys.modules.get(self.__name__)
        if real is None or real is self:
            sys.modules.pop(self.__name__, None)
            real = importlib.import_module(self.__name__)
        return getattr(real, attribute)


def defer_invoke() -> None:
    """Call before importing paramiko: it imports `invoke` (0.1-0.2 s, a tenth of an SSH
    audit) only to run the `Match exec` lines of an ssh_config; those still work, importing
    invoke when one is met."""
    if "invoke" not in sys.modules and importlib.util.find_spec("invoke") is not None:
        sys.modules["invoke"] = _ImportedOnUse("invoke")


def load_cel_extension() -> types.ModuleType:
    """The CEL extension module of `common-expression-language` alone. The `cel` package's
    __init__ also imports its interactive shell (prompt_toolkit, pygments): a third of a
    second on every start."""
    loaded = sys.modules.get("cel.cel") or sys.modules.get("cel")
    if loaded is not None:  # already imported: a second copy of the extension would panic
        return loaded
    spec = importlib.util.find_spec("cel")
    for directory in (spec.submodule_search_locations or []) if spec else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            extension = importlib.util.spec_from_file_location(
                "cel.cel", f"{directory}/cel{suffix}"
            )
            if extension is None or extension.loader is None:
                continue
            try:
                module = importlib.util.module_from_spec(extension)
                extension.loader.exec_module(module)
            except ImportError:
                continue
            sys.modules.setdefault("cel.cel", module)
            return module
    import cel  # the package layout changed: take the slow, ordinary way (the test says so)

    return cel
