"""A policy file is a legal instrument: a key written twice is an error, never a choice by order."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_layer_builders import PINNED, ROOT, write

from policies import PolicyFileError, load_policy
from trialcore.errors import ExitCode


def test_institution_policy_with_two_training_sections_is_refused_naming_both_lines(tmp_path: Path) -> None:
    """A second ``training:`` section cannot drop the first one's max_rounds: the file is refused (exit 2)."""
    write(tmp_path / "root.yaml", ROOT)
    institution = write(
        tmp_path / "institution.yaml",
        "extends: root.yaml\nname: hospital\ntraining:\n  max_rounds: 5\ndata:\n  min_cohort_size: 20\n"
        "training:\n  max_local_epochs: 2\n",
    )
    with pytest.raises(PolicyFileError) as caught:
        load_policy(institution, clock=PINNED)
    assert caught.value.exit_code is ExitCode.BAD_INPUT
    [line] = caught.value.lines()
    assert line.startswith(f"{institution}: training: ")
    assert "'training' written twice (lines 3 and 7)" in line


def test_duplicate_key_inside_a_section_is_refused(tmp_path: Path) -> None:
    """``max_rounds`` written twice in one ``training`` section is refused, naming the dotted field."""
    write(tmp_path / "root.yaml", ROOT)
    institution = write(
        tmp_path / "institution.yaml", "extends: root.yaml\ntraining:\n  max_rounds: 5\n  max_rounds: 50\n"
    )
    with pytest.raises(PolicyFileError) as caught:
        load_policy(institution, clock=PINNED)
    [line] = caught.value.lines()
    assert "training.max_rounds" in line and "(lines 3 and 4)" in line


def test_merge_key_cannot_set_a_section_twice(tmp_path: Path) -> None:
    """A YAML merge key (``<<``) is refused: it would let a limit be overridden without a duplicate key showing."""
    write(tmp_path / "root.yaml", ROOT)
    institution = write(
        tmp_path / "institution.yaml", "extends: root.yaml\ntraining:\n  max_rounds: 5\n  <<: {max_rounds: 50}\n"
    )
    with pytest.raises(PolicyFileError) as caught:
        load_policy(institution, clock=PINNED)
    [line] = caught.value.lines()
    assert "merge key (<<) at line 4" in line
