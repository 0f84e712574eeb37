"""Opening hours: a pure rule, with the clock passed in. A tenant's hours are a dict of
weekday -> ranges, e.g. {"mon": "08:00-12:00, 14:00-18:00", "sun": ""} in the tenant's
time zone; a day that is missing or empty is closed; no hours at all means always open."""

from __future__ import annotations

import re
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")


def ranges(spec: str) -> list[tuple[time, time | None]]:
    """"08:00-12:00, 14:00-24:00" -> [(08:00, 12:00), (14:00, None)] (None: midnight)."""
    found = []
    for part in (p.strip() for p in (spec or "").split(",")):
        if not part:
            continue
        match = RANGE.match(part)
        if not match:
            raise ValidationError(f"{part!r} is not a range like 08:00-18:00")
        start = time(int(match[1]), int(match[2]))
        end = None if match[3] == "24" else time(int(match[3]), int(match[4]))
        if end is not None and end <= start:
            raise ValidationError(f"{part!r} ends before it starts")
        found.append((start, end))
    return found


def validate_hours(value: dict) -> None:
    if not isinstance(value, dict) or set(value) - set(DAYS):
        raise ValidationError(f"Use the days {', '.join(DAYS)} as keys.")
    for spec in value.values():
        ranges(spec)


def validate_time_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{value!r} is not a time zone, e.g. Europe/Madrid") from exc


def is_open(hours: dict, time_zone: str, now: datetime) -> bool:
    if not hours:
        return True
    local = now.astimezone(ZoneInfo(time_zone or "UTC"))
    clock = local.time()
    for start, end in ranges(hours.get(DAYS[local.weekday()], "")):
        if start <= clock and (end is None or clock < end):
            return True
    return False
