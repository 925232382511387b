"""Which engine ``sandbox run`` uses: the spec's ``engine:`` section, each part overridden by its flag.

A spec may say where it runs::

    engine:
      name: deployment                    # or simulation (the default without the section)
      superlink: superlink.example.org:9093
      root_certificates: pki/ca.pem       # relative to the spec file

``--engine``, ``--superlink`` and ``--root-certificates`` (or ``SANDBOX_SUPERLINK`` and
``SANDBOX_ROOT_CERTIFICATES``) each override their part. A resumed run (``--resume``) goes on where
it started: the engine recorded in its folder (:mod:`sandbox.run_engine_record`) stands in for the
spec's section, and the flags still override it. A spec without the section hashes as it
did before the section existed (:class:`trialcore.spec.TrialSpec`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from trialcore.spec_loading import LoadedSpec

__all__ = ["Engine", "EngineChoice", "engine_choice"]


class Engine(str, enum.Enum):
    """Where a trial runs."""

    simulation = "simulation"
    deployment = "deployment"


@dataclass(frozen=True)
class EngineChoice:
    """The engine, and for deployment the SuperLink and the CA its TLS certificate is checked against."""

    engine: Engine
    superlink: str | None
    root_certificates: Path | None


def engine_choice(
    loaded: LoadedSpec,
    *,
    engine: Engine | None,
    superlink: str | None,
    root_certificates: Path | None,
    recorded: EngineChoice | None = None,
) -> EngineChoice:
    """The spec's ``engine:`` section (or the resumed run's ``recorded`` engine) with every flag given put over it."""
    if recorded is not None:
        return EngineChoice(
            engine=engine if engine is not None else recorded.engine,
            superlink=superlink if superlink is not None else recorded.superlink,
            root_certificates=root_certificates if root_certificates is not None else recorded.root_certificates,
        )
    section = loaded.spec.engine
    spec_engine = Engine(section.name) if section is not None else Engine.simulation
    spec_superlink = section.superlink if section is not None else None
    spec_ca = (
        loaded.path.parent / section.root_certificates
        if section is not None and section.root_certificates is not None
        else None
    )
    return EngineChoice(
        engine=engine if engine is not None else spec_engine,
        superlink=superlink if superlink is not None else spec_superlink,
        root_certificates=root_certificates if root_certificates is not None else spec_ca,
    )
