"""The example's numbers read and written exactly as the Rust example
(guest/, the reference) reads and writes them, so all three builds answer
byte for byte alike: `num` follows Rust's float grammar (Python's float()
would also take ``1_000``), and answers are Rust's ``{:?}`` of an f64
(``400.0``, ``1e16``; Python's repr writes ``1e+16``)."""

import math
import re
from decimal import Decimal

# Rust's `f64::from_str`: a sign, then inf, infinity or nan in any case, or
# ASCII digits with an optional point and exponent.
_RUST_FLOAT = re.compile(
    r"[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)",
    re.IGNORECASE | re.ASCII,  # no `ı` for `i`, as Rust compares bytes
)

# What Rust's `str::trim` removes: the Unicode White_Space characters.
_WHITE_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def num_value(raw):
    """The `num` parameter's decoded value (None when absent) as a finite
    float, or the 400 message that says why not."""
    if not raw:
        return None, "Missing request parameter 'num'!"
    text = raw.strip(_WHITE_SPACE)
    if not _RUST_FLOAT.fullmatch(text):
        return None, f"Request parameter 'num' is not a number: '{raw}'"
    num = float(text)
    if not math.isfinite(num):
        return None, f"Request parameter 'num' must be finite, got '{raw}'"
    return num, None


def rust_debug(x):
    """Rust's ``{:?}`` of an f64: the shortest digits that read back as
    ``x``, in positional notation from 1e-4 up to 1e16 (with ``.0`` when
    whole), in exponent notation outside it."""
    if math.isnan(x):
        return "NaN"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    x = abs(x)
    if math.isinf(x):
        return sign + "inf"
    if x == 0:
        return sign + "0.0"
    # repr's digits are the shortest that round-trip, as Rust's are.
    _, digit_tuple, exponent = Decimal(repr(x)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent += len(digit_tuple) - len(digits)
    point = len(digits) + exponent  # x = 0.DIGITS * 10**point
    if 1e-4 <= x < 1e16:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}.0"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    fraction = "." + digits[1:] if len(digits) > 1 else ""
    return f"{sign}{digits[0]}{fraction}e{point - 1}"


def square(num):
    """The answer of /square: the square, or 400 when it is not finite."""
    result = num * num
    if math.isfinite(result):
        return rust_debug(result), 200
    return f"The square of {rust_debug(num)} is too large to represent", 400


def is_even(num):
    """The answer of /even, as Rust's ``num % 2.0 == 0.0`` gives it."""
    return "true" if math.fmod(num, 2.0) == 0.0 else "false"
