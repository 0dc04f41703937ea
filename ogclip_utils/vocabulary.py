"""Vocabularies: class names with synonyms ("person, man, woman"), and finding the background by name.

An entry lists synonyms separated by ", "; the first is the class name. Every name is a query
for CLIP; a class scores the best of its synonyms.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def parse_vocabulary(vocabulary: Sequence[str]) -> tuple[list[str], list[str], np.ndarray]:
    """Split entries on ", " into synonyms.

    Returns (classes C, queries Q, query_to_class int64 Q). Raises ValueError for an empty
    vocabulary, non-string or empty entries, or a name used twice.
    """
    if isinstance(vocabulary, str) or not isinstance(vocabulary, (list, tuple)):
        raise ValueError(f"vocabulary must be a list of class names such as ['background', 'cat'], "
                         f"got {type(vocabulary).__name__} {vocabulary!r:.60}")
    if len(vocabulary) == 0:
        raise ValueError("vocabulary is empty; give at least one class name, e.g. ['background', 'cat']")
    classes, queries, idx, seen = [], [], [], {}
    for c, entry in enumerate(vocabulary):
        if not isinstance(entry, str):
            raise ValueError(f"vocabulary[{c}] must be a string, got {type(entry).__name__} {entry!r:.40}")
        names = [n.strip() for n in entry.split(", ")]
        if not entry.strip() or any(not n for n in names):
            raise ValueError(f"vocabulary[{c}] = {entry!r} has an empty name; synonyms are separated by ', '")
        for n in names:
            if n in seen:
                raise ValueError(f"vocabulary: the name {n!r} appears twice (entries {seen[n]} and {c}); "
                                 "every class and synonym must be unique")
            seen[n] = c
            queries.append(n)
            idx.append(c)
        classes.append(names[0])
    return classes, queries, np.asarray(idx, np.int64)


def background_index(classes: Sequence[str]) -> int | None:
    """Index of the class whose first synonym is "background" (case-insensitive), or None."""
    for i, c in enumerate(classes):
        if str(c).split(",")[0].strip().lower() == "background":
            return i
    return None
