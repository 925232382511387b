"""A site's node config is read as strictly as a spec: no key twice, no boolean for a number."""

from __future__ import annotations

from pathlib import Path

import pytest

from participants.errors import SiteConfigError
from participants.site_config import load_site_config
from trialcore.errors import BadInputError, ExitCode

DEMO_SITE = Path(__file__).resolve().parents[2] / "examples" / "demo-sites" / "de-berlin.yaml"


def test_duplicate_policy_key_in_node_config_is_refused(tmp_path: Path) -> None:
    """A second ``policy:`` line cannot silently replace the institution's policy file."""
    path = tmp_path / "site.yaml"
    text = DEMO_SITE.read_text(encoding="utf-8")
    path.write_text(text + "policy: lenient.yaml\n", encoding="utf-8")
    with pytest.raises(BadInputError) as caught:
        load_site_config(path)
    assert caught.value.exit_code is ExitCode.BAD_INPUT
    [line] = caught.value.lines()
    assert line.startswith(f"{path}: policy: found key 'policy' written twice (lines ")


@pytest.mark.parametrize(("old", "new"), [("partition: 0", "partition: false"), ("simulated: true", "simulated: 1")])
def test_booleans_and_numbers_are_not_interchangeable(tmp_path: Path, old: str, new: str) -> None:
    """``partition: false`` is not partition 0, and ``simulated: 1`` is not true."""
    path = tmp_path / "site.yaml"
    path.write_text(DEMO_SITE.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    with pytest.raises(SiteConfigError) as caught:
        load_site_config(path)
    field, found = old.split(":")[0], new.split(": ")[1]
    [line] = caught.value.lines()
    assert line.startswith(f"{path}: ") and f"{field}: found {found.title()}" in line
