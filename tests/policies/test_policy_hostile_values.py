"""A hostile value in a policy file is shortened wherever a message repeats it (found by the reader fuzz)."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_layer_builders import PINNED, write

from policies import PolicyFileError, load_policy


def test_a_huge_extends_target_is_shortened_in_the_message(tmp_path: Path) -> None:
    """``extends`` naming a 5,000-character missing file gives lines of bounded length (the path cut at 400)."""
    institution = write(tmp_path / "institution.yaml", "extends: " + "9" * 5_000 + "l\n")
    with pytest.raises(PolicyFileError) as caught:
        load_policy(institution, clock=PINNED)
    lines = caught.value.lines()
    assert any("no policy file at" in line for line in lines), lines
    assert all(line.startswith(f"{institution}: extends: found '999") and len(line) < 800 for line in lines)
