"""The start-up workarounds in auditor/importfixes.py hold, and are still needed: each test
fails when the upstream package's layout changes (then the workaround can go, or must
change), never silently."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any


def _in_a_fresh_interpreter(code: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_paramiko_still_imports_invoke_at_start_so_deferring_it_pays():
    seen = _in_a_fresh_interpreter(
        """
        import json, sys
        import paramiko
        print(json.dumps({"invoke": type(sys.modules.get("invoke")).__name__}))
        """
    )
    assert seen["invoke"] == "module", "paramiko no longer imports invoke: drop defer_invoke"


def test_the_ssh_target_leaves_invoke_unimported_until_used():
    seen = _in_a_fresh_interpreter(
        """
        import json, sys
        import auditor.targets.ssh
        stand_in = type(sys.modules["invoke"]).__name__
        from paramiko.config import invoke  # what paramiko reaches for on `Match exec`
        runner = invoke.Local  # first use: the real module is imported now
        print(json.dumps({"before": stand_in, "after": type(sys.modules["invoke"]).__name__,
                          "runner": runner.__name__}))
        """
    )
    assert seen == {"before": "_ImportedOnUse", "after": "module", "runner": "Local"}


def test_the_cel_package_still_imports_its_shell_so_loading_the_extension_alone_pays():
    seen = _in_a_fresh_interpreter(
        """
        import json, sys
        import cel
        print(json.dumps({"shell": "prompt_toolkit" in sys.modules}))
        """
    )
    assert seen["shell"], "the cel package no longer imports its shell: import it normally"


def test_the_cel_extension_loads_alone_from_its_file():
    seen = _in_a_fresh_interpreter(
        """
        import json, sys
        from auditor.importfixes import load_cel_extension
        module = load_cel_extension()
        print(json.dumps({"name": module.__name__, "file": module.__file__.rsplit("/", 2)[-2],
                          "shell": "prompt_toolkit" in sys.modules,
                          "works": module.evaluate("1 + 2", {}) == 3}))
        """
    )
    assert seen == {"name": "cel.cel", "file": "cel", "shell": False, "works": True}


def test_judging_never_imports_the_shell():
    seen = _in_a_fresh_interpreter(
        """
        import json, sys
        from auditor.expr import compile_expression, Scope
        expression = compile_expression("1 + 1 == 2")
        assert Scope({}).evaluate(expression) is True
        print(json.dumps(sorted(m for m in sys.modules
                                if m.split(".")[0] in ("cel", "prompt_toolkit"))))
        """
    )
    assert seen == ["cel.cel"]
