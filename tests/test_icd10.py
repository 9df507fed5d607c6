import pytest

from helpers import icd10


@pytest.mark.parametrize("code, expected", [
    ("M54.50", (None, None)),            # billable leaf
    ("M5450", (None, "M54.50")),         # valid, written without its dot
    ("X99.99", ("invalid_code", None)),
    ("RO5.9", ("invalid_code", None)),   # letter O for zero
    ("J06", ("non_billable_code", None)),  # a category header, never billable
    ("M54.5", (None, "M54.50")),         # stale since 2021-10-01, one "unspecified" child
    ("R51", (None, "R51.9")),
    ("R05", (None, "R05.9")),
    ("F32.8", ("stale_code", None)),     # stale, children F32.81/F32.89: no unambiguous successor
])
def test_check(code, expected):
    assert icd10.check(code) == expected


def test_every_stale_code_is_a_header_in_the_current_table():
    for code in icd10.STALE_CODES:
        assert not icd10.is_billable(code), code
        new = icd10.successor(code)
        assert new is None or (icd10.is_billable(new) and new.startswith(code)), code
