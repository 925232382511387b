"""Errors of the participant side; all derive from :class:`trialcore.errors.SandboxError`.

Hierarchy (exit code)::

    SandboxError
    ├── BadInputError (2)
    │   ├── SiteConfigError      the site's node config is wrong
    │   ├── DataSourceError      the site's data file, column or value is wrong
    │   └── KeyFileError         an approval key file is missing, unreadable or not Ed25519
    └── IntegrityError (5)
        └── ApprovalIntegrityError   a signed approval is malformed, tampered, untrusted or stale
"""

from __future__ import annotations

from trialcore.errors import BadInputError, IntegrityError


class SiteConfigError(BadInputError):
    """The site's own node config (site id, jurisdiction, data source, policy) has problems."""


class DataSourceError(BadInputError):
    """The site's data cannot be read: missing file, missing column, non-numeric value."""


class KeyFileError(BadInputError):
    """An approval key file (private key, public key, trusted-keys list) is missing, unreadable or not Ed25519."""


class ApprovalIntegrityError(IntegrityError):
    """A site's signed approval fails its check: malformed, tampered, signed by an untrusted key, or for another spec."""
