"""Fixtures for the whole test tree: private copies of the demo, with or without signed approvals.

The demo sites require signed approvals kept in ``runs/demo-state/`` beside ``examples/``; tests
never read or write the repository's own ``runs/``, so they get a copy (see ``tests/approved_demo.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.approved_demo import DemoCopy, approved_demo_at, copy_demo


@pytest.fixture
def approved_demo(tmp_path: Path) -> DemoCopy:
    """A copy of ``examples/`` in ``tmp_path`` whose four demo sites trust their approver keys and approved the demo."""
    return approved_demo_at(tmp_path)


@pytest.fixture
def unapproved_demo(tmp_path: Path) -> DemoCopy:
    """A copy of ``examples/`` in ``tmp_path`` whose demo sites trust their approver keys but approved nothing yet."""
    return copy_demo(tmp_path)
