"""The code table's history, as a team that built its coder on an earlier day lived it (chapter 6).

:mod:`helpers.icd10` lists the splits the course knows (``STALE_CODES``) and maps a stale label forward, as
chapter 1 does. This module goes the other way: the labels and the catalogue of a given day, so a chapter can
train and index as a team did then and measure what happens when the table changes under it. It lives apart
from :mod:`helpers.icd10` because that file's source is part of the curated splits' fingerprint, and nothing
here changes how rows are curated.
"""
from __future__ import annotations

from datetime import date

import simple_icd_10_cm as icd

from helpers.errors import CourseError
from helpers.icd10 import STALE_CODES, successor


def _day(day: str) -> str:
    try:
        return date.fromisoformat(day).isoformat()
    except (TypeError, ValueError):
        raise CourseError(f"a day must be written YYYY-MM-DD (as 2020-06-30), not {day!r}") from None


def changed_since(day: str) -> dict[str, str]:
    """Today's code -> the code a dataset written on ``day`` has for it, for each split after that day.

    Only the splits listed in :data:`STALE_CODES` with one successor: ``{"M54.50": "M54.5", ...}`` for a
    day in 2020. A split without one (F32.8) maps no label back, as :func:`helpers.icd10.check` remaps none forward.
    """
    day = _day(day)
    return {new: old for old, retired in STALE_CODES.items() if retired > day and (new := successor(old))}


def as_written_on(rows: list[dict], day: str) -> list[dict]:
    """Rows labelled as a dataset written on ``day`` had them (M54.50 back to M54.5 before 2021-10-01).

    The code changes, and with it the response and the chat completion where a row has them (a curated row
    does; a knowledge-base row may hold only ``code`` and ``instruction``). The complaint does not change.
    """
    back = changed_since(day)
    out = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row.get("code"), str):
            raise CourseError(f"row {number}: a row needs a string field 'code' to be relabelled")
        old = back.get(row["code"])
        if old is None:
            out.append(row)
            continue
        relabelled = {**row, "code": old}
        if "response" in row:
            relabelled["response"] = row["response"].replace(row["code"], old)
            if "completion" in row:
                relabelled["completion"] = [{"role": "assistant", "content": relabelled["response"]}]
        out.append(relabelled)
    return out


def table_on(codes: list[str], day: str) -> list[str]:
    """``codes`` as the table listed them on ``day``: the children of a code split after that day are that code.

    Only the splits of :data:`STALE_CODES` are undone; codes added for other reasons (U07.1 in 2020) stay.
    """
    day = _day(day)
    retired = {old for old, when in STALE_CODES.items() if when > day}
    out = []
    for code in codes:
        parent = icd.get_parent(code) if icd.is_valid_item(code) else ""
        out.append(parent if parent in retired else code)
    return list(dict.fromkeys(out))
