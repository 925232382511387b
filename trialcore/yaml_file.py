"""Read one YAML mapping from a file a user gave, or say exactly why not.

Shared by every YAML input of the project (trial specs, site node configs, policies) so a
missing file, empty file, non-UTF-8 bytes, a YAML syntax error or a top-level list all get
the same kind of one-line message naming the file as the user gave it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from trialcore.errors import BadInputError, Problem, show_value


def read_yaml_mapping(path: Path, *, shown_as: str | None = None, what: str = "file") -> dict[str, Any]:
    """Return the top-level mapping of a YAML file.

    Parameters
    ----------
    path:
        The file to read.
    shown_as:
        How to name the file in messages (the path as the user typed it); defaults to ``str(path)``.
    what:
        What the file is, for messages ("trial spec", "site config", "policy").

    Raises
    ------
    BadInputError
        With exactly one problem for a missing, unreadable, empty, non-UTF-8 or non-mapping file.
    """
    name = shown_as if shown_as is not None else str(path)

    def fail(found: str, allowed: str) -> BadInputError:
        return BadInputError(f"Cannot read {what} '{name}'", [Problem(name, "", found, allowed)])

    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise fail("no such file", f"give the path of an existing {what}") from err
    except IsADirectoryError as err:
        raise fail("a directory", f"give the path of a {what} (a YAML file)") from err
    except OSError as err:
        raise fail(f"unreadable ({err.strerror})", f"a readable {what}") from err
    if b"\x00" in raw:
        raise fail("binary content (NUL bytes)", f"a {what} in YAML text, UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise fail(f"bytes that are not UTF-8 at offset {err.start}", f"a {what} in YAML text, UTF-8") from err
    if not text.strip():
        raise fail("an empty file", f"a YAML mapping of {what} fields")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
        problem = str(getattr(err, "problem", None) or err).replace("\n", " ")
        raise fail(f"YAML syntax error at {where} ({problem})", "valid YAML") from err
    except RecursionError as err:
        raise fail("YAML nested too deeply to read", "valid YAML nested at most a few hundred levels") from err
    except _SCALAR_ERRORS as err:
        raise fail(f"a YAML value that cannot be read ({show_value(str(err))})", _SCALAR_HINT) from err
    if data is None:
        raise fail("no content (only comments)", f"a YAML mapping of {what} fields")
    if not isinstance(data, dict):
        raise fail(f"a top-level {type(data).__name__}", f"a YAML mapping of {what} fields (key: value)")
    field = _nul_field(data)
    if field is not None:
        raise BadInputError(
            f"Cannot read {what} '{name}'",
            [Problem(name, field, "a NUL character (\\0)", "text without NUL characters")],
        )
    return data


_SCALAR_ERRORS = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError)
"""What PyYAML's constructors raise, besides ``YAMLError``, for a scalar whose YAML 1.1 type it
recognises but whose content it cannot convert: ``2020-13-01`` (ValueError), an integer of more than
4300 digits (ValueError), ``!!bool x`` (KeyError), ``!!int ''`` (IndexError), ``!!timestamp x``
(AttributeError)."""

_SCALAR_HINT = "valid YAML; quote a value that only looks like a date or a number, e.g. '2020-13-01'"


def _nul_field(data: Any) -> str | None:
    """The dotted path of a key or value holding a NUL character, if any.

    A NUL can only arrive escaped (``"\\0"``) or as ``!!binary``; no file name, term or reference
    contains one, and the operating system refuses it in a path.
    """
    stack: list[tuple[Any, str]] = [(data, "")]
    seen: set[int] = set()
    while stack:
        value, path = stack.pop()
        if (isinstance(value, str) and "\x00" in value) or (isinstance(value, bytes) and b"\x00" in value):
            return path
        if id(value) in seen or not isinstance(value, (dict, list)):
            continue
        seen.add(id(value))  # anchors and aliases may make a document refer to itself
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            child_path = f"{path}.{key}" if path else str(key)
            stack.append((child, child_path))
            stack.append((key, path))  # popped first: a NUL in a key is named by its parent's path
    return None


def problems_from_validation(error: ValidationError, *, source: str, model: type[BaseModel]) -> list[Problem]:
    """Turn every pydantic error into a :class:`Problem` naming the dotted field path.

    ``model`` is the model that was validated; it names the keys allowed where an unknown key was found.
    """
    problems: list[Problem] = []
    for item in error.errors(include_url=False):
        loc: Sequence[int | str] = item.get("loc", ())
        field = ".".join(str(part) for part in loc)
        kind = item.get("type", "")
        if kind == "extra_forbidden":
            found = f"unknown key {show_value(loc[-1] if loc else '')}"
            allowed = _allowed_keys_hint(model, loc[:-1])
        elif kind == "missing":
            found = "nothing (required field missing)"
            allowed = "add this field"
        else:
            found = show_value(item.get("input"))
            allowed = _clean_message(str(item.get("msg", "invalid value")))
        problems.append(Problem(source, field, found, allowed))
    return problems


def _allowed_keys_hint(model: type[BaseModel], parent: Sequence[int | str]) -> str:
    """Name the keys allowed at ``parent`` by walking the model's nested field types."""
    current: Any = model
    for part in parent:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if _is_model(current) else None
        if field is None:
            current = None
            break
        current = _nested_model(field.annotation)
    if _is_model(current):
        keys = ", ".join(sorted(current.model_fields))
        return f"one of the known keys ({keys}); unknown keys are refused"
    return "remove it or fix its spelling (unknown keys are refused)"


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _nested_model(annotation: Any) -> Any:
    """The pydantic model inside ``annotation`` (``Model``, ``list[Model]``, ``Model | None``), if any."""
    if _is_model(annotation):
        return annotation
    for arg in get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _clean_message(message: str) -> str:
    message = message.replace("\n", " ")
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message[:1].lower() + message[1:]
