"""Quality flags by name (contracts 1.4): the bitmask a reading carries, in words a hydrologist
reads, and back."""

from __future__ import annotations

from ..contracts.wire import (CLOCK_JUMP, CLOCK_UNSYNCED, EVENT, FLATLINE, MISSING, OUT_OF_RANGE,
                              SPIKE, SUSPECT)

NAMES: dict[int, str] = {MISSING: "missing", OUT_OF_RANGE: "out_of_range", SUSPECT: "suspect",
                         CLOCK_UNSYNCED: "clock_unsynced", SPIKE: "spike", FLATLINE: "flatline",
                         CLOCK_JUMP: "clock_jump", EVENT: "event"}
BITS = {name: bit for bit, name in NAMES.items()}
QUALITY_DEFECTS = 0xFF & ~EVENT  # every bit but the event bit (provenance, not a defect)


def flag_names(flags: int | None) -> str:
    """``spike|event`` for 0x90; "" for 0 or None."""
    if not flags:
        return ""
    return "|".join(name for bit, name in NAMES.items() if flags & bit)


def defect_kinds(flags: int | None) -> list[str]:
    """The quality defects among ``flags`` (the event bit is not one)."""
    return [name for bit, name in NAMES.items() if (flags or 0) & bit & QUALITY_DEFECTS]


def parse_flag_names(text: str) -> int:
    """``spike|suspect`` (or comma-separated) -> the bitmask; raises ValueError naming an
    unknown flag and the known ones."""
    flags = 0
    for name in filter(None, (n.strip() for n in text.replace(",", "|").split("|"))):
        if name not in BITS:
            raise ValueError(f"unknown flag {name!r}; known: {', '.join(BITS)}")
        flags |= BITS[name]
    return flags
