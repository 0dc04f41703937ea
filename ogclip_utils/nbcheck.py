"""Comparing a notebook's outputs with its committed outputs, numbers within a stated tolerance.

``pytest --nbval`` re-runs every notebook and compares what each cell prints with what was
committed. Printed *text* must match exactly. Printed *numbers* are another matter: a
measured metric (an mIoU, an Acc@0.5, a mean ± std over seeds) is an average over many
argmax and threshold decisions, and a different processor (AVX-512 vs AVX2 kernels, oneDNN
vs MKL, one thread vs many) changes the last bits of the floats under a few near-ties. That
moves the printed value by a fraction of a point, deterministically on one machine and
differently on another. Such a cell declares, in its metadata, how far its numbers may move::

    "metadata": {"ogclip": {"tolerance": 0.6,
                            "why": "1 expression of 749 is 0.13 points; measured spread 0.27"}}

(add ``"integers": true`` when whole numbers may move too, e.g. pixel counts; by default a
number printed without a decimal point, such as a sample count, must match exactly)

and its outputs then pass when

- the outputs have the same structure (stdout chunks are joined; stderr is never compared),
- the text *around* the numbers is identical (runs of spaces collapsed, so a column that
  grows from ``9.9`` to ``10.1`` still lines up), and
- every number printed with decimals differs from the committed one by at most
  ``tolerance`` (in the units it is printed in); whole numbers match exactly unless the cell
  says ``"integers": true``.

A cell without a tolerance is compared exactly, as nbval does. A number that drifts further
than its tolerance, or a word that changes (a different class picked), still fails. The
tolerance of each cell is justified by a spread measured across numeric configurations with
``python -m ogclip_utils.nbtools portability`` (see the README, "Tests and CI").

This module is pure text processing (no torch); ``notebooks/conftest.py`` installs it into
nbval's comparison.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

METADATA_KEY = "ogclip"
"""Cell metadata key: ``cell.metadata["ogclip"] = {"tolerance": float, "why": str}``."""

# A number as printed: optional sign, digits, optional decimals, optional exponent.
# A sign counts only where it cannot be a hyphen inside a word ("t2i-r1", "2007-000033").
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|\d+(?:\.\d+)?")
_SPACES = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class Tolerance:
    """How far a cell's printed numbers may move: ``abs`` in the units they are printed in.

    ``integers=False`` keeps whole numbers (counts, sizes, seeds) exact.
    """

    abs: float
    why: str = ""
    integers: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.abs, (int, float)) and math.isfinite(self.abs) and self.abs >= 0):
            raise ValueError(f"tolerance must be a finite number >= 0, got {self.abs!r}")


@dataclass(frozen=True)
class Mismatch:
    """One reason two outputs differ (for the failure report)."""

    message: str

    def __str__(self) -> str:
        return self.message


def cell_tolerance(metadata: Mapping[str, Any] | None) -> Tolerance | None:
    """The :class:`Tolerance` a cell declares in ``metadata["ogclip"]``, or ``None`` (exact).

    Raises ``ValueError`` naming the key when the entry is malformed, so a typo in a
    notebook fails loudly instead of silently comparing exactly (or not at all).
    """
    entry = (metadata or {}).get(METADATA_KEY)
    if entry is None or "tolerance" not in entry:
        return None
    if not isinstance(entry, Mapping):
        raise ValueError(f'cell metadata "{METADATA_KEY}" must be a mapping like {{"tolerance": 0.5, "why": "..."}}')
    why = str(entry.get("why", ""))
    if not why:
        raise ValueError(f'cell metadata "{METADATA_KEY}" has a tolerance but no "why": say what spread justifies it')
    return Tolerance(float(entry["tolerance"]), why, bool(entry.get("integers", False)))


def split_numbers(text: str) -> tuple[list[str], list[float]]:
    """Split printed text into its skeleton (text between numbers, spaces collapsed) and numbers.

    >>> split_numbers("mIoU  14.1 %, n=749")
    (['mIoU ', ' %, n=', ''], [14.1, 749.0])
    """
    skeleton, tokens = _split(text)
    return skeleton, [float(t) for t in tokens]


def _split(text: str) -> tuple[list[str], list[str]]:
    skeleton: list[str] = []
    tokens: list[str] = []
    pos = 0
    for m in _NUMBER.finditer(text):
        skeleton.append(_SPACES.sub(" ", text[pos:m.start()]))
        tokens.append(m.group())
        pos = m.end()
    skeleton.append(_SPACES.sub(" ", text[pos:]))
    return skeleton, tokens


def _is_integer(token: str) -> bool:
    return not any(c in token for c in ".eE")


def compare_text(reference: str, test: str, tolerance: Tolerance) -> list[Mismatch]:
    """Differences between two printed texts beyond ``tolerance`` (empty list: they agree)."""
    ref_skel, ref_tokens = _split(reference)
    test_skel, test_tokens = _split(test)
    if ref_skel != test_skel or len(ref_tokens) != len(test_tokens):
        return [Mismatch(_first_text_difference(reference, test))]
    out: list[Mismatch] = []
    line_of = _line_lookup(reference)
    for i, (rt, tt) in enumerate(zip(ref_tokens, test_tokens)):
        r, t = float(rt), float(tt)
        exact = _is_integer(rt) and _is_integer(tt) and not tolerance.integers
        allowed = 0.0 if exact else tolerance.abs
        if abs(r - t) > allowed + 1e-9:
            what = "whole numbers must match exactly" if exact else f"tolerance {tolerance.abs:g}"
            out.append(Mismatch(f"number {i + 1} ({line_of(i)!r}): committed {rt}, now {tt}, "
                                f"|difference| {abs(r - t):.4g} > {what}"))
    return out


def cell_text(outputs: Iterable[Mapping[str, Any]], sanitize: Callable[[str], str] = lambda s: s) -> list[tuple[str, str]]:
    """A cell's compared outputs as ``[(kind, text)]``: stdout chunks joined, stderr dropped,
    rich outputs by their ``text/plain`` (images are never compared as text)."""
    out: list[tuple[str, str]] = []
    for o in outputs:
        kind = o.get("output_type")
        if kind == "stream":
            if o.get("name") != "stdout":
                continue
            text = o.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            if out and out[-1][0] == "stdout":
                out[-1] = ("stdout", out[-1][1] + text)
            else:
                out.append(("stdout", text))
        elif kind in ("display_data", "execute_result"):
            data = o.get("data", {})
            text = data.get("text/plain", "")
            out.append(("display", "".join(text) if isinstance(text, list) else text))
        elif kind == "error":
            out.append(("error", f"{o.get('ename')}: {o.get('evalue')}"))
    return [(k, sanitize(t)) for k, t in out]


def compare_cell(reference: Iterable[Mapping[str, Any]], test: Iterable[Mapping[str, Any]], tolerance: Tolerance,
                 sanitize: Callable[[str], str] = lambda s: s) -> list[Mismatch]:
    """Compare two cells' outputs (nbformat output dicts) within ``tolerance``."""
    ref = cell_text(reference, sanitize)
    new = cell_text(test, sanitize)
    if [k for k, _ in ref] != [k for k, _ in new]:
        return [Mismatch(f"different outputs: committed {[k for k, _ in ref]}, now {[k for k, _ in new]}")]
    out: list[Mismatch] = []
    for (kind, r), (_, t) in zip(ref, new):
        out += [Mismatch(f"{kind}: {m}") for m in compare_text(r, t, tolerance)]
    return out


def _first_text_difference(reference: str, test: str) -> str:
    ref_lines, test_lines = reference.splitlines(), test.splitlines()
    for i, (r, t) in enumerate(zip(ref_lines, test_lines)):
        if split_numbers(r)[0] != split_numbers(t)[0]:
            return f"text differs (not only numbers) on line {i + 1}: committed {r!r}, now {t!r}"
    return f"different number of lines or numbers: committed {len(ref_lines)} lines, now {len(test_lines)}"


def _line_lookup(text: str) -> Callable[[int], str]:
    """Map the i-th number of ``text`` to the (stripped) line it is printed on."""
    lines: list[str] = []
    for line in text.splitlines():
        lines += [line.strip()] * len(split_numbers(line)[1])
    return lambda i: lines[i] if i < len(lines) else ""
