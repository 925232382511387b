"""Read one YAML mapping from a file a user gave, or say exactly why not.

Shared by every YAML input of the project (trial specs, site node configs, policy files and the
packaged presets) so a missing file, empty file, non-UTF-8 bytes, a YAML syntax error or a
top-level list all get the same kind of one-line message naming the file as the user gave it.

The reader is strict, because a spec or a policy file is an instrument, not a suggestion:

* only a regular file is read (a FIFO, a device or a socket is refused before it is opened, and
  the file is opened non-blocking and checked again, so nothing a path names can hang a command);
* a file is at most :data:`MAX_YAML_BYTES` (1 MB); a larger one is refused before it is read whole;
* a key written twice in one mapping is refused, naming both lines (YAML would keep the last one
  silently: a second ``training:`` section would drop the first section's limits);
* aliases (``*name``) and merge keys (``<<``) are refused: they let a few bytes expand into
  gigabytes ("billion laughs"), and a merge lets a key be set twice without looking so.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from trialcore.errors import BadInputError, Problem, show_text, show_value, terminal_safe

__all__ = ["MAX_YAML_BYTES", "parse_yaml_mapping", "problems_from_validation", "read_yaml_mapping"]

MAX_YAML_BYTES = 1_000_000
"""Largest YAML file read (1 MB): a spec, a policy or a node config is a few kilobytes."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Refused(yaml.YAMLError):
    """A construct the strict reader refuses, with what was found and what is allowed."""

    def __init__(self, found: str, allowed: str, field: str = "") -> None:
        super().__init__(found)
        self.found = found
        self.allowed = allowed
        self.field = field


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses aliases (``*name``) while composing."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
            raise _Refused(
                f"an alias (*{show_text(str(event.anchor))}) at line {event.start_mark.line + 1}",
                "each value written out; YAML aliases (*name) are refused",
            )
        return super().compose_node(parent, index)


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
        With exactly one problem for a missing, unreadable, non-regular, oversized, empty, non-UTF-8
        or non-mapping file, a duplicate key, an alias or a merge key.
    """
    name = shown_as if shown_as is not None else str(path)
    return parse_yaml_mapping(read_yaml_bytes(path, shown_as=name, what=what), shown_as=name, what=what)


def read_yaml_bytes(path: Path, *, shown_as: str, what: str = "file") -> bytes:
    """The raw bytes :func:`read_yaml_mapping` parses (same checks, same errors), for callers that cache by content."""
    return _read_regular_file(path, name=shown_as, what=what)


def _read_regular_file(path: Path, *, name: str, what: str) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most :data:`MAX_YAML_BYTES`.

    The type is checked with ``stat`` before opening (opening a FIFO for reading blocks until a
    writer comes), and again on the open descriptor (the path may have been swapped in between);
    the open is non-blocking so even a swapped-in FIFO cannot hang.
    """

    def fail(found: str, allowed: str) -> BadInputError:
        return BadInputError(f"Cannot read {what} '{name}'", [Problem(name, "", found, allowed)])

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise fail(_file_kind(info.st_mode), f"give the path of a {what} (a regular YAML file)")
        if info.st_size > MAX_YAML_BYTES:
            raise fail(f"{info.st_size} bytes", f"a {what} of at most {MAX_YAML_BYTES} bytes (1 MB)")
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise fail("not a regular file", f"give the path of a {what} (a regular YAML file)")
            raw = handle.read(MAX_YAML_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError) as err:
        raise fail("no such file", f"give the path of an existing {what}") from err
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise fail("a symbolic link loop", f"give the path of a {what} (a YAML file)") from err
        raise fail(f"unreadable ({err.strerror})", f"a readable {what}") from err
    except ValueError as err:  # os.stat refuses a path holding a NUL character
        raise fail("a path holding a NUL character", f"give the path of a {what}") from err
    if len(raw) > MAX_YAML_BYTES:
        raise fail(f"more than {MAX_YAML_BYTES} bytes", f"a {what} of at most {MAX_YAML_BYTES} bytes (1 MB)")
    return raw


def _file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    return "not a regular file"


def parse_yaml_mapping(raw: bytes | str, *, shown_as: str, what: str = "file") -> dict[str, Any]:
    """Parse YAML text strictly into its top-level mapping (see the module docstring for the rules).

    Raises
    ------
    BadInputError
        With exactly one problem naming ``shown_as``.
    """
    name = shown_as

    def fail(found: str, allowed: str, field: str = "") -> BadInputError:
        return BadInputError(f"Cannot read {what} '{name}'", [Problem(name, field, found, allowed)])

    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_YAML_BYTES:
        raise fail(f"more than {MAX_YAML_BYTES} bytes", f"a {what} of at most {MAX_YAML_BYTES} bytes (1 MB)")
    if b"\x00" in raw:
        raise fail("binary content (NUL bytes)", f"a {what} in YAML text, UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise fail(f"bytes that are not UTF-8 at offset {err.start}", f"a {what} in YAML text, UTF-8") from err
    if not text.strip():
        raise fail("an empty file", f"a YAML mapping of {what} fields")
    try:
        data = _strict_load(text)
    except _Refused as err:
        raise fail(err.found, err.allowed, err.field) from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
        problem = show_text(str(getattr(err, "problem", None) or err))
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
        raise fail("a NUL character (\\0)", "text without NUL characters", field)
    return data


def _strict_load(text: str) -> Any:
    """Compose the single document (aliases refused), check its keys, then construct it."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_keys(loader, node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_keys(loader: _StrictLoader, root: yaml.Node) -> None:
    """Refuse a merge key (``<<``) or a key written twice in one mapping, naming both lines."""
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, f"{path}.{index}" if path else str(index)) for index, child in enumerate(node.value))
            continue
        if not isinstance(node, yaml.MappingNode):
            continue
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                raise _Refused(
                    f"a merge key (<<) at line {line}",
                    "each key written out in its own mapping; YAML merge keys are refused",
                    path,
                )
            key = loader.construct_object(key_node, deep=True) if isinstance(key_node, yaml.ScalarNode) else None
            child_path = f"{path}.{key}" if path else str(key)
            try:
                earlier = first_line.get(key) if key is not None else None
            except TypeError:  # an unhashable key; the constructor names it
                earlier = None
            if earlier is not None:
                raise _Refused(
                    f"key {show_value(key)} written twice (lines {earlier} and {line})",
                    "each key once per mapping; a key written twice is refused, never resolved by order",
                    child_path,
                )
            if key is not None:
                first_line[key] = line
            stack.append((value_node, child_path))


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


_MAX_MESSAGE_CHARS = 400


def _clean_message(message: str) -> str:
    message = terminal_safe(message[:_MAX_MESSAGE_CHARS].replace("\n", " "))
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message[:1].lower() + message[1:]
