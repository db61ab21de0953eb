"""The CEL library binding: the one module of the expr package that touches the
`common-expression-language` extension. It is loaded by auditor/importfixes.py, which knows
(and tests) how upstream lays it out."""

from __future__ import annotations

from auditor.importfixes import load_cel_extension

cel = load_cel_extension()
