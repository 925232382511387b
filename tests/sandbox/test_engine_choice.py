"""sandbox run takes its engine from the spec's engine section; each flag overrides its part."""

from __future__ import annotations

from pathlib import Path

import yaml

from sandbox.engine_choice import Engine, engine_choice
from tests.approved_demo import DemoCopy
from trialcore.spec_loading import load_spec


def _with_engine(demo: DemoCopy, section: dict[str, str]) -> Path:
    document = yaml.safe_load(demo.spec.read_text())
    path = demo.spec.with_name("deployed.yaml")
    path.write_text(yaml.safe_dump({**document, "engine": section}, sort_keys=False))
    return path


def test_without_a_section_the_trial_runs_in_simulation_and_hashes_as_before(approved_demo: DemoCopy) -> None:
    """No engine section: simulation, and the spec hash is the one sites approved before the section existed."""
    loaded = load_spec(approved_demo.spec)
    assert "engine" not in loaded.spec.model_dump(mode="json")
    chosen = engine_choice(loaded, engine=None, superlink=None, root_certificates=None)
    assert (chosen.engine, chosen.superlink, chosen.root_certificates) == (Engine.simulation, None, None)


def test_the_spec_names_the_superlink_and_flags_override_it(approved_demo: DemoCopy) -> None:
    """engine: deployment with its SuperLink and CA (relative to the spec) is used unless a flag says otherwise."""
    path = _with_engine(
        approved_demo, {"name": "deployment", "superlink": "link.example.org:9093", "root_certificates": "pki/ca.pem"}
    )
    loaded = load_spec(path)
    assert loaded.spec_hash != load_spec(approved_demo.spec).spec_hash, (
        "where the trial runs is part of what is approved"
    )
    chosen = engine_choice(loaded, engine=None, superlink=None, root_certificates=None)
    assert chosen.engine is Engine.deployment
    assert chosen.superlink == "link.example.org:9093"
    assert chosen.root_certificates == path.parent / "pki" / "ca.pem"
    flags = engine_choice(loaded, engine=Engine.simulation, superlink="other:1", root_certificates=Path("/etc/ca.pem"))
    assert (flags.engine, flags.superlink, flags.root_certificates) == (
        Engine.simulation,
        "other:1",
        Path("/etc/ca.pem"),
    )
