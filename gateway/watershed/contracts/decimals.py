"""Exact decimal values as every contract carries them: ``mantissa * 10**exponent``, never a
float; from a sensor's text, to and from ``Decimal``, and as JSON number text."""

from __future__ import annotations

import re
from decimal import Decimal

# A value is mantissa * 10**exponent with at most 15 significant digits, what a float64 keeps
# exactly (DBL_DIG); with |exponent| <= 20 every value is a normal float64 far from its limits.
MAX_EXPONENT = 20
MAX_MANTISSA = 10**15 - 1


_DECIMAL_TEXT = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?", re.ASCII)


def decimal_parts(text: str) -> tuple[int, int]:
    """``"+1.234"`` -> ``(1234, -3)``; exact, keeps trailing zeros (``"1.50"`` -> ``(150, -2)``).

    Sign, ASCII digits and at most one point, like an SDI-12 value; anything else (spaces,
    exponents, ``nan``) raises ValueError, as the firmware's parse_decimal does."""
    m = _DECIMAL_TEXT.fullmatch(text)
    if not m or not (m.group(2) or m.group(3)):
        raise ValueError(f"not a decimal: {text!r}")
    sign, whole, fraction = m.group(1), m.group(2), m.group(3) or ""
    mantissa = int(whole + fraction)
    return (-mantissa if sign == "-" else mantissa), -len(fraction)


def decimal_tuple(value: Decimal) -> tuple[int, int]:
    """The exact ``(mantissa, exponent)`` of a finite Decimal (``Decimal("1.5E+3")`` -> ``(15, 2)``)."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite decimal: {value!r}")
    mantissa = int("".join(map(str, digits)) or "0")
    return (-mantissa if sign else mantissa), exponent


def value_text(mantissa: int, exponent: int) -> str:
    """Exact JSON number text of ``mantissa * 10**exponent`` (contracts 2): plain decimal for an
    exponent <= 0, trailing zeros kept (``1234,-3`` -> ``1.234``, ``150,-2`` -> ``1.50``); a plain
    integer for a positive exponent while it has at most 15 digits (``15,2`` -> ``1500``, ``0,2``
    -> ``0``), else exponent notation (``1,16`` -> ``1E+16``): a reader taking a longer integer
    would find more digits than the contract allows."""
    digits = str(abs(mantissa))
    sign = "-" if mantissa < 0 else ""
    if exponent > 0:
        if not mantissa:
            return "0"
        if len(digits) + exponent > _MAX_INTEGER_DIGITS:
            return f"{sign}{digits}E+{exponent}"
        return sign + digits + "0" * exponent
    if not exponent:
        return sign + digits
    digits = digits.rjust(-exponent + 1, "0")
    return f"{sign}{digits[:exponent]}.{digits[exponent:]}"


_MAX_INTEGER_DIGITS = len(str(MAX_MANTISSA))
