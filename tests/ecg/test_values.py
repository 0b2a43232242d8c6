"""ecg.values: quoting a value in a message, and what a good value of each kind is (issue 24)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ecg import values


@pytest.mark.parametrize("raw, shown", [
    ("abc", "'abc'"),
    ("\x1b[31mred\x07", r"'\x1b[31mred\x07'"),  # ESC and BEL escaped, never raw
    ("a\nb\rc\td", r"'a\nb\rc\td'"),
    ("right\u202eleft", r"'right\u202eleft'"),  # a bidi override cannot reorder the line either
    ("窦性心律", "'窦性心律'"),  # printable text stays readable
    (3.5, "'3.5'"),
])
def test_quote_escapes_control_characters(raw, shown):
    assert values.quote(raw) == shown


def test_quote_is_at_most_80_characters_escapes_included():
    for raw in ("Z" * 5000, "\x1b" * 5000, "\x00Z" * 3000, "窦" * 500):
        quoted = values.quote(raw)
        assert len(quoted) <= 80 and quoted.endswith("...") and quoted.isprintable() and "\x1b" not in quoted
    assert values.quote("Z" * 78) == "'" + "Z" * 78 + "'"  # 80 exactly: not cut


def test_printable_makes_a_message_safe_without_quoting_it():
    assert values.printable("plain text: 1 2") == "plain text: 1 2"
    assert values.printable("bad \x1b]0;title\x07 here") == r"bad \x1b]0;title\x07 here"


@pytest.mark.parametrize("raw", ["inf", "-inf", "nan", float("inf"), float("nan"), np.float32("nan"), "1e999", 10**400])
def test_to_float_refuses_what_is_not_finite(raw):
    with pytest.raises(ValueError, match="must be a (finite )?number"):
        values.to_float(raw)


def test_to_int_keeps_every_digit_of_a_large_integer():
    assert values.to_int("18446744073709551617") == 2**64 + 1
    assert values.to_int(np.float64(3.0)) == 3 and values.to_int("1e3") == 1000
    for bad in ("1.5", "nan", "inf", True, "x"):
        with pytest.raises(ValueError, match="must be an integer"):
            values.to_int(bad)


@pytest.mark.parametrize("raw, expected", [
    ("63", 63.0), (0, 0.0), ("124", 124.0), (125, 125.0), ("", math.nan), ("NaN", math.nan), ("Unknown", math.nan),
    (None, math.nan), (float("nan"), math.nan), (" 40.5 ", 40.5),
])
def test_age_in_years_or_missing(raw, expected):
    got = values.age(raw)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


@pytest.mark.parametrize("raw", ["inf", "-1", "126", "1e9", "sixty", "-inf", float("inf")])
def test_age_out_of_range_or_not_a_number_is_refused_quoted(raw):
    with pytest.raises(ValueError, match=r"^age '.*' is not a number of years from 0 to 125"):
        values.age(raw)


@pytest.mark.parametrize("raw", [0, -500, "nan", "inf", 1e6, 0.5, "x"])
def test_rate_must_be_positive_and_plausible(raw):
    with pytest.raises(ValueError, match=r"sampling rate '.*' is not a number of Hz from 1 to 100000"):
        values.rate(raw)
    assert values.rate("257") == 257.0 and values.rate(np.float64(500)) == 500.0


@pytest.mark.parametrize("raw", [-1, 2**32, 2**64, 1.5, "nan"])
def test_seed_is_an_integer_within_32_bits(raw):
    with pytest.raises(ValueError, match=r"seed must be an integer from 0 to 2\*\*32 - 1 \(4294967295\)"):
        values.seed(raw)
    assert values.seed(2**32 - 1) == 2**32 - 1 and values.seed("0") == 0


@pytest.mark.parametrize("dtype", [object, "U3", "S3", complex, "datetime64[s]", bool])
def test_numeric_dtype_refuses_what_is_not_numbers(dtype):
    with pytest.raises(ValueError, match="'x' has dtype .*, expected numbers"):
        values.numeric_dtype(np.dtype(dtype), "'x'")


def test_numeric_dtype_accepts_integers_and_floats():
    for dtype in (np.int16, np.int64, np.uint8, np.float32, np.float64):
        values.numeric_dtype(dtype, "'x'")
    values.numeric_dtype(bool, "'x'", allow_bool=True)
