"""The sandbox plan: the competent authority's own file, naming the regulator's keys for a trial's controls.

A trial names its plan by id (``approvals.sandbox_plan_id`` of the spec); the plan itself is not
part of the spec and the trial's authors cannot write it. It lives in the authority's plans
folder: ``$SANDBOX_PLANS_DIR/<plan-id>.yaml`` on the coordinator's machine, or, when that is not
set, ``plans/`` beside the spec's folder (``examples/plans/`` for the demo)::

    plan_id: DEMO-SANDBOX-PLAN-1
    authority: "Demo competent authority (simulated)"
    jurisdiction: DE
    regulator_keys: ../../runs/demo-state/keys/regulator.trusted.pem   # Ed25519 public keys (PEM)

``sandbox suspend|resume|terminate`` are honoured only when signed by one of ``regulator_keys``
(:mod:`sandbox.signed_control`). A trial without a plan, or whose plan names no key, accepts no
control from outside (graduated enforcement still escalates on its own). AI Act Art. 57-58: the
competent authority supervises the sandbox and may suspend a trial.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from participants.approval_keys import load_trusted_keys
from trialcore.errors import BadInputError, Problem
from trialcore.spec_loading import LoadedSpec
from trialcore.yaml_file import problems_from_validation, read_yaml_mapping

__all__ = ["PLANS_DIR_ENV", "RegulatorKeys", "plan_path", "regulator_keys"]

PLANS_DIR_ENV = "SANDBOX_PLANS_DIR"


class SandboxPlan(BaseModel):
    """The fields of a plan file the sandbox reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plan_id: str = Field(min_length=1, max_length=200)
    authority: str = Field(min_length=1, max_length=200)
    jurisdiction: str = Field(pattern=r"^[A-Z]{2}$")
    regulator_keys: str | None = Field(default=None, min_length=1, description="PEM file, relative to the plan.")


@dataclass(frozen=True)
class RegulatorKeys:
    """The regulator's keys for one trial (by fingerprint) and where they were named."""

    plan_id: str | None
    source: str | None
    keys: dict[str, Ed25519PublicKey]

    def as_json(self) -> dict[str, object]:
        return {"plan_id": self.plan_id, "source": self.source, "fingerprints": sorted(self.keys)}


def plan_path(loaded: LoadedSpec, plan_id: str) -> Path:
    """Where the plan ``plan_id`` lives (see the module docstring)."""
    folder = os.environ.get(PLANS_DIR_ENV)
    base = Path(folder) if folder else loaded.path.parent / "plans"
    return base / f"{plan_id}.yaml"


def regulator_keys(loaded: LoadedSpec) -> RegulatorKeys:
    """The regulator's keys the trial's sandbox plan names (none without a plan or a key file).

    A plan or key file that does not exist means no regulator key: every control from outside
    is refused (and audited), never accepted unchecked.

    Raises
    ------
    BadInputError
        The plan file is invalid or names another plan, or its key file cannot be read.
    """
    plan_id = loaded.spec.approvals.sandbox_plan_id if loaded.spec.approvals is not None else None
    if not plan_id:
        return RegulatorKeys(None, None, {})
    path = plan_path(loaded, plan_id)
    if "/" in plan_id or plan_id.startswith("."):
        raise BadInputError(
            "Bad sandbox plan id", [Problem(loaded.shown_as, "approvals.sandbox_plan_id", plan_id, "a plain id")]
        )
    if not path.is_file():  # no plan here: nothing from outside is honoured (the safe side); the chain says so
        return RegulatorKeys(plan_id, f"{path} (missing)", {})
    data = read_yaml_mapping(path, shown_as=str(path), what="sandbox plan")
    try:
        plan = SandboxPlan.model_validate(data)
    except ValidationError as err:
        raise BadInputError(
            f"Invalid sandbox plan '{path}'", problems_from_validation(err, source=str(path), model=SandboxPlan)
        ) from err
    if plan.plan_id != plan_id:
        raise BadInputError(
            f"Invalid sandbox plan '{path}'",
            [Problem(str(path), "plan_id", plan.plan_id, f"{plan_id!r}, its file name")],
        )
    if plan.regulator_keys is None:
        return RegulatorKeys(plan_id, str(path), {})
    keys_path = Path(os.path.realpath(path.parent / plan.regulator_keys))
    if not keys_path.exists():  # no key yet: nothing from outside is honoured (the safe side), and the chain says why
        return RegulatorKeys(plan_id, f"{keys_path} (missing)", {})
    return RegulatorKeys(plan_id, str(keys_path), load_trusted_keys(keys_path))
