"""The one number parser (kptui.engine.numbers): C strtoul's rules, ASCII only.

Expected values are C's: strtoul(3) with base 0 reads 0x as hex and a leading 0
as octal, and iptables 1.8.9 prints `--dport 010` back as `--dport 8` (checked
with `iptables -A INPUT -p tcp --dport 010; iptables -S` on this machine).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kptui.engine.errors import KptuiError
from kptui.engine.numbers import (
    NumberError,
    parse_float,
    parse_int,
    parse_uint,
    scan_uint,
    split_float,
    split_uint,
)


@pytest.mark.parametrize(("text", "base", "value"), [
    ("010", 0, 8), ("0x10", 0, 16), ("0X1f", 0, 31), ("0", 0, 0), ("00", 0, 0),
    ("10", 0, 10), ("010", 10, 10), ("ff", 16, 255), ("0xff", 16, 255), ("017", 8, 15),
    ("0" * 100 + "7", 10, 7),  # leading zeros are not significant digits
])
def test_values_as_strtoul_reads_them(text: str, base: int, value: int) -> None:
    assert parse_uint(text, 0, 2**32, base=base) == value


@pytest.mark.parametrize("text", [
    "", "8²", "١٢", "１２", "1_000", " 1", "1 ", "+1", "-1", "0x", "09", "1e3", "0b1",
])
def test_not_numbers_are_refused_with_the_token(text: str) -> None:
    with pytest.raises(NumberError) as info:
        parse_uint(text, base=0 if text == "09" else 10, what="port")
    assert info.value.token == text and not info.value.out_of_range
    assert str(info.value).startswith("port: ")


def test_strtoul_mode_takes_leading_blanks_and_plus() -> None:
    assert parse_uint(" +12", strtoul=True) == 12
    assert scan_uint("+-1", strtoul=True) is None


def test_huge_numbers_are_out_of_range_fast() -> None:
    # Python's int() refuses over 4300 digits with ValueError; here it is a range error.
    with pytest.raises(NumberError) as info:
        parse_uint("9" * 100_000, 0, 65535, what="port")
    assert info.value.out_of_range
    assert len(str(info.value)) < 200


def test_range_and_signed() -> None:
    with pytest.raises(NumberError, match="out of range 0..65535"):
        parse_uint("65536", 0, 65535)
    assert parse_int("-5", -10, 10) == -5
    with pytest.raises(NumberError):
        parse_int("--5", -10, 10)


def test_floats() -> None:
    assert parse_float("1.5") == 1.5 and parse_float("1e3") == 1000.0
    assert split_float("1.5mbit") == ("1.5", "mbit")
    assert split_uint("10/sec") == ("10", "/sec")
    for bad in ("inf", "nan", "1e999", "١.5", "", ".", "0x1p3"):
        with pytest.raises(NumberError):
            parse_float(bad)


@settings(max_examples=300, derandomize=True)
@given(st.text(max_size=60), st.sampled_from([0, 8, 10, 16]))
def test_any_text_is_a_number_or_a_number_error(text: str, base: int) -> None:
    try:
        value = parse_uint(text, base=base)
    except KptuiError:
        return
    assert text.isascii() and 0 <= value <= 2**32


@settings(max_examples=200, derandomize=True)
@given(st.integers(min_value=0, max_value=2**64))
def test_round_trip_of_every_base(n: int) -> None:
    assert parse_uint(str(n), 0, 2**64) == n
    assert parse_uint(hex(n), 0, 2**64, base=0) == n
    assert parse_uint("0" + oct(n)[2:], 0, 2**64, base=0) == n
