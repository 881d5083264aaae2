"""ISO-8601 durations as SageMaker's ``CacheConfig.ExpireAfter`` takes them (``P30D``, ``PT1H``, ``P1Y2M``).

One parser for the config (``steps.cache_expire_after``, checked at load time) and the local engine's
step cache (checked again when it reads a definition), so both accept and refuse the same texts.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(
    r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$"
)


def parse_iso_duration(text: str) -> timedelta:
    """``P30D`` → 30 days; months count 30 days and years 365. Each unit at most once, in order, and at
    least one; anything else (``P``, ``PT``, ``P1D1D``, ``30``) is a ValueError naming the text."""
    match = _DURATION.match(text or "")
    if not match or not any(match.groups()):
        raise ValueError(f"not an ISO-8601 duration (e.g. P30D, PT12H): {text!r}")
    years, months, weeks, days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(
        days=365 * years + 30 * months + 7 * weeks + days, hours=hours, minutes=minutes, seconds=seconds
    )
