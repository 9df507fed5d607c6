"""Chapter 1, rule 3: is a code valid and billable in the current ICD-10-CM table?

The table is the April-2026 release shipped by ``simple-icd-10-cm``. A code is
billable when it is a leaf of the hierarchy (nothing more specific exists).

Datasets age. Every October the table grows new, more specific codes and the
code they split stops being billable: a dataset written in 2020 that says
``M54.5`` for low back pain is stale, not wrong. The table itself keeps no
history, so the splits this course knows about are listed below (the date is
when the old code stopped being billable). A stale code is **remapped** when
its successor is unambiguous, which we define from the table: among the new
children exactly one is the "unspecified" variant, the code a coder uses when
the record says no more than the old code did. Otherwise the row is rejected
as ``stale_code``: guessing between "premenstrual dysphoric disorder" and
"other depressive episodes" for an old ``F32.8`` would be inventing a label.
"""
from __future__ import annotations

import simple_icd_10_cm as icd

# Old code -> the first day it was no longer billable (US fiscal-year updates).
STALE_CODES = {
    "K59.0": "2016-10-01",   # constipation -> K59.00 ... K59.09
    "E78.0": "2018-10-01",   # pure hypercholesterolemia -> E78.00, E78.01
    "R51": "2020-10-01",     # headache -> R51.0, R51.9
    "M54.5": "2021-10-01",   # low back pain -> M54.50, M54.51, M54.59
    "R05": "2021-10-01",     # cough -> R05.1 ... R05.9
    "F32.8": "2021-10-01",   # other depressive episodes -> F32.81, F32.89
    "R63.3": "2021-10-01",   # feeding difficulties -> R63.30 ... R63.39
    "M79.1": "2022-10-01",   # myalgia -> M79.10 ... M79.18
}


def is_billable(code: str) -> bool:
    # a block such as "C00-C96" with no codes listed under it counts as a leaf in the table, but is no code
    return icd.is_valid_item(code) and not icd.is_chapter_or_block(code) and icd.is_leaf(code)


def title(code: str) -> str:
    return icd.get_description(code)


def successor(code: str) -> str | None:
    """The one "unspecified" child of a stale code, or None when there is not exactly one."""
    children = [c for c in icd.get_children(code) if icd.is_leaf(c)]
    unspecified = [c for c in children if "unspecified" in icd.get_description(c).lower()]
    return unspecified[0] if len(unspecified) == 1 else None


def check(code: str) -> tuple[str | None, str | None]:
    """``(reason, new_code)``: reason is None for a usable code; new_code is set when it changed.

    A code written without its dot ("M5450") is valid and comes back in the
    table's dotted form ("M54.50").
    """
    if not icd.is_valid_item(code):
        return "invalid_code", None
    dotted = icd.add_dot(code)
    if is_billable(code):
        return None, (dotted if dotted != code else None)
    code = dotted
    if code in STALE_CODES:
        new = successor(code)
        return (None, new) if new else ("stale_code", None)
    return "non_billable_code", None
