"""A deterministic split grouped by document, so paragraphs of one
document never straddle train and dev."""

import random
from typing import Dict

__all__ = ["split_documents"]


def split_documents(doc_sizes: Dict[str, int], fractions: Dict[str, float], seed: int = 0) -> Dict[str, str]:
    """Assign whole documents to splits.

    Documents are sorted by key, then shuffled with `seed`, so the result does
    not depend on the order the tasks were read in. Each split in `fractions`
    takes documents until it holds at least its share of tasks; whatever is
    left is "train". Every split asked for gets at least one document while
    two or more are left for train.

    doc_sizes (Dict[str, int]): Document key -> number of tasks.
    fractions (Dict[str, float]): Split name -> share of tasks (e.g. {"dev": 0.2}).
    seed (int): The random seed.
    RETURNS (Dict[str, str]): Document key -> split name.
    """
    keys = sorted(doc_sizes)
    random.Random(seed).shuffle(keys)
    total = sum(doc_sizes.values())
    assignment: Dict[str, str] = {}
    pos = 0
    for name, fraction in fractions.items():
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"the {name} share must be in [0, 1), got {fraction}")
        if fraction == 0.0:
            continue
        target = fraction * total
        taken = 0
        while pos < len(keys) - 1 and (taken == 0 or taken < target):
            if taken and taken + doc_sizes[keys[pos]] - target > target - taken:
                break  # the next document overshoots more than stopping undershoots
            assignment[keys[pos]] = name
            taken += doc_sizes[keys[pos]]
            pos += 1
    for key in keys[pos:]:
        assignment[key] = "train"
    return assignment
