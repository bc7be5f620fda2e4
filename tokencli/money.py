"""Exact money.

Amounts are `Decimal`s in the code and integers of 10⁻¹² currency units
("picos") in the ledger, so SQLite sums them exactly: prices per million
tokens with up to six decimals give a whole number of picos per token, and a
million calls of $0.000001 add up to exactly $1. A signed 64-bit integer of
picos holds about 9.2 million currency units per sum.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

PICOS_PER_UNIT = 10**12
_PICO = Decimal(1).scaleb(-12)

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CNY": "¥", "JPY": "¥"}


def to_picos(amount: Decimal) -> int:
    """Decimal amount → integer picos, rounding half-even below a pico."""
    return int((amount * PICOS_PER_UNIT).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_picos(picos: int) -> Decimal:
    return (Decimal(picos) * _PICO).normalize() if picos else Decimal(0)


def parse_amount(value: object) -> Decimal:
    """A price or amount from config or JSON: int, float (via its repr) or string."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    else:
        raise ValueError(f"{value!r} is not a number")
    if not result.is_finite():  # (a Decimal too: JSON read with parse_float=Decimal)
        raise ValueError(f"{value!r} is not a finite number")
    return result


def format_money(amount: Decimal | None, currency: str | None, *, places: int | None = None) -> str:
    """Human text: `$0.00123`, `¥1.20`, `unknown`. Small amounts keep significant digits."""
    if amount is None:
        return "unknown"
    symbol = CURRENCY_SYMBOLS.get(currency or "", "")
    if places is None:
        magnitude = abs(amount)
        if magnitude == 0 or magnitude >= 1:
            places = 2
        else:
            # Keep three significant digits for sub-unit amounts ($0.000450).
            exponent = magnitude.adjusted()  # e.g. -4 for 0.00045
            places = min(12, max(2, -exponent + 2))
    quantum = Decimal(1).scaleb(-places)
    text = f"{amount.quantize(quantum, rounding=ROUND_HALF_EVEN):,.{places}f}"
    if symbol:
        return f"-{symbol}{text[1:]}" if text.startswith("-") else f"{symbol}{text}"
    return f"{text} {currency}" if currency else text


def decimal_str(amount: Decimal | None) -> str | None:
    """Plain exact decimal text for JSON and CSV (no exponent)."""
    if amount is None:
        return None
    text = format(amount.normalize(), "f")
    return text
