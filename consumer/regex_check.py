"""Refuse configured regexes that can backtrack catastrophically on attacker-chosen input.

Detector ``path`` filters and ``uri-regex`` keys run on every request's URI, which a client chooses.
Python's ``re`` has no time limit, so a pattern such as ``(a+)+$`` lets one crafted URI stall the
consumer. The validator refuses the shape behind such blow-ups: an unbounded repeat nested inside
another repeat. A possessive quantifier (``*+``, ``++``) or an atomic group (``(?>...)``) cuts the
backtracking and is accepted. Other super-linear shapes (e.g. overlapping alternatives under a
repeat, ``(a|a)*``) are not detected: configs must still come from a trusted, reviewed source.
"""

from __future__ import annotations

import re

try:  # Python 3.11+
    from re import _constants as C  # type: ignore[attr-defined]
    from re import _parser as P  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse as P  # type: ignore[no-redef]

_REPEATS = {C.MAX_REPEAT, C.MIN_REPEAT}


def check_backtracking(pattern: str) -> None:
    """``ValueError`` naming the problem if ``pattern`` nests an unbounded repeat in a repeat."""
    try:
        parsed = P.parse(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    _walk(parsed, False, pattern)


def _walk(items, inside: bool, pattern: str) -> None:
    for op, av in items:
        if op in _REPEATS:
            _lo, hi, sub = av
            if inside and hi == C.MAXREPEAT:
                raise ValueError(
                    f"regex {pattern!r} nests an unbounded repeat inside another repeat, which can "
                    "backtrack catastrophically on a crafted URI; make the inner or outer repeat "
                    "possessive (e.g. '++', '*+') or use an atomic group '(?>...)'"
                )
            _walk(sub, inside or hi > 1, pattern)
        elif op is getattr(C, "POSSESSIVE_REPEAT", None):
            _walk(av[2], False, pattern)
        elif op is getattr(C, "ATOMIC_GROUP", None):
            _walk(av, False, pattern)
        elif op is C.SUBPATTERN:
            _walk(av[3], inside, pattern)
        elif op is C.BRANCH:
            for branch in av[1]:
                _walk(branch, inside, pattern)
        elif op in (C.ASSERT, C.ASSERT_NOT):
            _walk(av[1], inside, pattern)
        elif op is C.GROUPREF_EXISTS:
            for part in av[1:]:
                if part is not None:
                    _walk(part, inside, pattern)
