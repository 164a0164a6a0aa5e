"""Identifiers that travel through every stage: station, gateway, basin and channel names.

They become MQTT topic levels and InfluxDB tag values, so the contract limits them to a charset
that needs no escaping anywhere (no spaces, commas, '=', quotes, '/', '+', '#', newlines).
"""

import re

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


def is_valid_id(text: str) -> bool:
    return bool(ID_PATTERN.fullmatch(text))


def check_id(kind: str, text: str) -> str:
    """Return ``text`` or raise ValueError naming what is wrong."""
    if not isinstance(text, str) or not is_valid_id(text):
        raise ValueError(
            f"invalid {kind} {text!r}: 1-32 characters from A-Z a-z 0-9 _ . -, starting with a "
            "letter or digit")
    return text
