"""Errors of the policy language; all derive from :class:`trialcore.errors.SandboxError`.

Hierarchy (exit code)::

    SandboxError
    └── BadInputError (2)
        └── PolicyFileError      a policy file (or its ``extends`` chain) is missing, unreadable or invalid
            └── LooseningError   a lower policy layer loosens a higher one
"""

from __future__ import annotations

from trialcore.errors import BadInputError


class PolicyFileError(BadInputError):
    """A policy file (or its ``extends`` chain) is missing, unreadable or invalid (exit 2)."""


class LooseningError(PolicyFileError):
    """A lower policy layer tries to loosen a value set by a higher one (exit 2).

    Each problem names the lower file, the field, the value found, the value it
    would loosen and the file that set it.
    """
