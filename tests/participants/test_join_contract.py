"""Before joining, a site checks its own extract against the trial's data contract (``participants join``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from participants.join_checks import check_site
from participants.node_keys import new_node_key
from participants.site_config import load_site_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _site_config(tmp_path: Path, **columns: str) -> Path:
    """de-berlin's node config of the extract example, its paths absolute, with ``columns`` changed in its mapping."""
    sites = EXAMPLES / "extract-sites"
    config = yaml.safe_load((sites / "de-berlin.yaml").read_text(encoding="utf-8"))
    config["data"]["path"] = str(sites / config["data"]["path"])
    config["data"]["contract"]["columns"] |= columns
    config["policy"] = str((sites / config["policy"]).resolve())
    config["state_dir"] = str(tmp_path / "state")
    (tmp_path / "state").mkdir(exist_ok=True)
    path = tmp_path / "de-berlin.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_join_checks_read_the_extract_under_the_trials_contract(tmp_path: Path) -> None:
    """The mapped extract meets the contract (its model width is the contract's); a wrong column is named."""
    key = new_node_key(tmp_path, "de-berlin").private_key
    spec = EXAMPLES / "extracts.yaml"
    ready = check_site(load_site_config(_site_config(tmp_path)), auth_key=key, spec=spec)
    assert not [p for p in ready.problems if "de-berlin.csv" in p.file], ready.problems
    assert ready.seen["num_features"] == 14 and int(str(ready.seen["num_train"])) >= 11
    broken = check_site(load_site_config(_site_config(tmp_path, radius="radius_typo")), auth_key=key, spec=spec)
    assert any("radius_typo" in f"{p.field} {p.found} {p.allowed}" for p in broken.problems), broken.problems
    assert "num_features" not in broken.seen
