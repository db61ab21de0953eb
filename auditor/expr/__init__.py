"""CEL behind a two-function interface: `compile_expression` at load time, `Scope.evaluate`
per subject; the rest of auditor imports only from here.

The package, one concept per module: `binding` (how the CEL library is loaded), `aliases`
(the fact-alias rewriter), `functions` (the named helper functions checks call), `budget`
(no evaluation runs past its time), `compiler`
(the compiled `Expression`) and `scope` (evaluating: converted variables, one subject at a
time). CEL stays behind this package so it can be swapped.
"""

from auditor.expr.aliases import fact_alias
from auditor.expr.budget import EVALUATION_BUDGET, BudgetExceeded
from auditor.expr.compiler import (
    VARIABLES,
    EvaluationError,
    Expression,
    ExpressionError,
    compile_expression,
)
from auditor.expr.functions import FUNCTIONS
from auditor.expr.observe import ABSENT, NOT_READ, OBSERVED_LIMIT, Chain
from auditor.expr.scope import Scope

__all__ = [
    "ABSENT",
    "EVALUATION_BUDGET",
    "BudgetExceeded",
    "NOT_READ",
    "Chain",
    "FUNCTIONS",
    "OBSERVED_LIMIT",
    "VARIABLES",
    "EvaluationError",
    "Expression",
    "ExpressionError",
    "Scope",
    "compile_expression",
    "fact_alias",
]
