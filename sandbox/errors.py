"""Errors of the coordinator; all derive from :class:`policies.errors.SandboxError`.

Hierarchy (exit code)::

    SandboxError
    ├── BadInputError (2)
    │   └── SpecError            the trial spec or the federation it names is wrong
    ├── PolicyRefusal (3)
    ├── BudgetExhausted (4)
    ├── IntegrityError (5)
    └── ServiceUnavailable (6)
"""

from __future__ import annotations

from policies.errors import (
    BadInputError,
    BudgetExhausted,
    ExitCode,
    IntegrityError,
    PolicyRefusal,
    Problem,
    SandboxError,
    ServiceUnavailable,
)

__all__ = [
    "BadInputError",
    "BudgetExhausted",
    "ExitCode",
    "IntegrityError",
    "PolicyRefusal",
    "Problem",
    "SandboxError",
    "ServiceUnavailable",
    "SpecError",
]


class SpecError(BadInputError):
    """The trial spec, or the federation folder it names, has problems the researcher must fix."""
