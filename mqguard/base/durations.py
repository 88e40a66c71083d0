"""Durations as people write them: the one spelling mqguard prints (``config`` parses the same grammar)."""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """In the grammar ``config.values.parse_duration`` reads: 0s, 500ms, 20s, 5m, 1h30m, 1d1h1m1s, 1m0.5s."""
    if seconds <= 0:
        return "0s"
    millis = round(seconds * 1000, 3)
    if seconds < 1 and millis == int(millis):
        return f"{int(millis)}ms"
    whole = int(seconds)
    fraction = round(seconds - whole, 6)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    if whole or fraction:
        parts.append(f"{whole + fraction:g}s" if fraction else f"{whole}s")
    return "".join(parts)
