"""Errors of the participant side; all derive from :class:`policies.errors.SandboxError`.

Hierarchy (exit code)::

    SandboxError
    └── BadInputError (2)
        ├── SiteConfigError      the site's node config is wrong
        └── DataSourceError      the site's data file, column or value is wrong
"""

from __future__ import annotations

from policies.errors import BadInputError


class SiteConfigError(BadInputError):
    """The site's own node config (site id, jurisdiction, data source, policy) has problems."""


class DataSourceError(BadInputError):
    """The site's data cannot be read: missing file, missing column, non-numeric value."""
