"""Error messages render cheaply and safely: values shortened before rendering, control characters escaped."""

from __future__ import annotations

import time

from trialcore.errors import BadInputError, Problem, show_value, terminal_safe


def test_a_huge_value_is_shortened_before_it_is_rendered() -> None:
    """A 50-million-character string or a million-item list renders in milliseconds to at most 80 characters."""
    values: list[object] = ["x" * 50_000_000, list(range(1_000_000)), {str(i): [i] * 10 for i in range(100_000)}]
    for value in values:
        started = time.monotonic()
        shown = show_value(value)
        assert time.monotonic() - started < 0.5
        assert len(shown) <= 80


def test_a_huge_integer_is_described_not_printed() -> None:
    """An integer Python would refuse to print (over 4300 digits) is described by its size."""
    assert show_value(10**5000) == "an integer of 16610 bits"


def test_nesting_is_cut_at_three_levels() -> None:
    """A deeply nested value shows its outer levels only."""
    deep: list[object] = []
    for _ in range(10_000):
        deep = [deep]
    assert show_value(deep) == "[[[[...]]]]"


def test_control_characters_are_escaped_everywhere() -> None:
    """An escape sequence, a carriage return and a bidi override stay visible and inert."""
    assert terminal_safe("a\x1b[31mred\rb\u202e") == "a\\x1b[31mred\\rb\\u202e"
    assert show_value("\x1b]0;pwned\x07") == "'\\x1b]0;pwned\\x07'"
    problem = Problem("spec\x1b[2J.yaml", "title", "x", "ok")
    assert "\x1b" not in problem.line()
    assert BadInputError("Cannot read '\x1b[2J'").lines() == ["Cannot read '\\x1b[2J'"]
