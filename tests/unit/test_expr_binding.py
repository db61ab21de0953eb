"""The CEL library binding (auditor/expr/binding.py) rests on upstream's package layout: these
tests fail when `common-expression-language` changes it, so the workaround is revisited."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

from auditor.expr import binding


def test_the_extension_is_where_the_binding_loads_it_from() -> None:
    present = [path for path in binding.extension_paths() if Path(path).is_file()]
    assert present, "the CEL extension moved: update auditor/expr/binding.py"
    assert binding.cel.__name__ == binding.EXTENSION  # loaded alone, not through `import cel`
    assert callable(binding.cel.compile) and callable(binding.cel.Context)


def test_the_package_still_imports_its_shell_so_loading_it_normally_would_cost() -> None:
    """When upstream stops importing `cel.cli` from `cel/__init__.py`, `import cel` becomes
    cheap: then load the package normally and delete the workaround."""
    spec = importlib.util.find_spec("cel")
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert "cli" in imported, "cel/__init__.py no longer imports its shell: import cel normally"


def test_judging_never_imports_the_shell() -> None:
    code = (
        "import sys; from auditor.expr import compile_expression, Scope; "
        "e = compile_expression('1 + 1 == 2'); assert Scope({}).evaluate(e) is True; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cel', 'prompt_toolkit')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['cel.cel']"
