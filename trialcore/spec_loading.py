"""Load a trial spec from YAML, collecting every problem before raising once.

The spec hash is SHA-256 over the canonical JSON of the validated spec (sorted keys, no
whitespace): comments and key order do not change it, any change of meaning does. Sites
approve this hash, and audit entries carry it.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trialcore.canonical_json import canonical_json
from trialcore.errors import Problem, SpecError, show_value
from trialcore.spec import TrialSpec
from trialcore.yaml_file import problems_from_validation, read_yaml_mapping


@dataclass(frozen=True)
class LoadedSpec:
    """A validated trial spec with where it came from.

    Attributes
    ----------
    spec:
        The validated, frozen spec.
    path:
        Absolute path of the spec file; relative paths inside the spec resolve against its folder.
    shown_as:
        The path as the user gave it, for messages.
    spec_hash:
        Hex SHA-256 of the canonical JSON of ``spec``.
    """

    spec: TrialSpec
    path: Path
    shown_as: str
    spec_hash: str

    @property
    def federation_dir(self) -> Path:
        """The federation folder, resolved relative to the spec file."""
        return Path(os.path.realpath(self.path.parent / self.spec.federation))


def spec_hash(spec: TrialSpec) -> str:
    """Hex SHA-256 over the canonical JSON of a spec."""
    return hashlib.sha256(canonical_json(spec.model_dump(mode="json"))).hexdigest()


def load_spec(path: str | Path) -> LoadedSpec:
    """Read, validate and hash a trial spec.

    Raises
    ------
    BadInputError
        When the file cannot be read as a YAML mapping (one problem).
    SpecError
        Listing every problem found: one per field, each naming file, field path, value and what is allowed.
    """
    shown_as = str(path)
    file_path = Path(path)
    data = read_yaml_mapping(file_path, shown_as=shown_as, what="trial spec")
    problems = _cross_field_problems(data, shown_as)
    spec: TrialSpec | None = None
    try:
        spec = TrialSpec.model_validate(data)
    except ValidationError as err:
        problems = problems_from_validation(err, source=shown_as, model=TrialSpec) + problems
    if spec is not None:
        problems += _non_finite_problems(spec.model_dump(), shown_as)
    if spec is not None and not problems:
        problems = _federation_problems(spec, file_path, shown_as)
    if problems or spec is None:
        raise SpecError(f"Invalid trial spec '{shown_as}'", problems)
    return LoadedSpec(spec=spec, path=file_path.resolve(), shown_as=shown_as, spec_hash=spec_hash(spec))


def _cross_field_problems(data: dict[str, Any], source: str) -> list[Problem]:
    """Problems across fields that pydantic cannot name by path: duplicate sites, too few sites."""
    problems: list[Problem] = []
    participants = data.get("participants")
    if not isinstance(participants, list):
        return problems
    seen: dict[str, int] = {}
    for index, entry in enumerate(participants):
        site = entry.get("site_id") if isinstance(entry, dict) else None
        if not isinstance(site, str):
            continue
        if site in seen:
            problems.append(
                Problem(
                    source,
                    f"participants.{index}.site_id",
                    show_value(site),
                    f"each site listed once (already listed as participants.{seen[site]})",
                )
            )
        else:
            seen[site] = index
    minimum = data.get("min_participants")
    if isinstance(minimum, int) and not isinstance(minimum, bool) and minimum > len(participants) > 0:
        problems.append(
            Problem(
                source, "min_participants", show_value(minimum), f"at most the {len(participants)} participants listed"
            )
        )
    return problems


def _federation_problems(spec: TrialSpec, spec_path: Path, source: str) -> list[Problem]:
    """A federation folder the operating system refuses to look at (name too long, no permission).

    A folder that does not exist is not a problem here: the federation check names it.
    """
    try:
        (spec_path.resolve().parent / spec.federation).stat()
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as err:
        allowed = f"a folder of site configs the system can open ({err.strerror})"
        return [Problem(source, "federation", show_value(spec.federation), allowed)]
    return []


def _non_finite_problems(values: Any, source: str) -> list[Problem]:
    """Every infinite or NaN number of a validated spec (``values`` is its ``model_dump()``).

    Pydantic's float fields accept ``.inf``, ``.nan`` and numbers too large for a float (``1e400``),
    but no trial setting is infinite, and the spec hash (canonical JSON) cannot represent them.
    """
    problems: list[Problem] = []
    stack: list[tuple[Any, str]] = [(values, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(Problem(source, path, show_value(value), "a finite number"))
        elif isinstance(value, (dict, list, tuple)):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((child, f"{path}.{key}" if path else str(key)) for key, child in items)
    return sorted(problems, key=lambda problem: problem.field)
