"""Plain-text output shaped like kubectl's: aligned tables and short ages (``5m``, ``3h2m``)."""

from __future__ import annotations

from datetime import datetime, timezone


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp from the API (``2024-05-01T12:00:00Z``) as an aware datetime."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(value: str | None, now: datetime | None = None) -> str:
    """How long ago ``value`` was, as kubectl prints it; ``<unknown>`` without a time."""
    when = parse_time(value)
    if when is None:
        return "<unknown>"
    now = now or datetime.now(timezone.utc)
    return human_duration((now - when).total_seconds())


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery's ``duration.HumanDuration`` (kubectl's AGE): precise when short."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if days < 365 * 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def table(headers: list[str], rows: list[list[str]], indent: str = "") -> str:
    """Columns padded to their widest cell and three spaces apart, like ``kubectl get``."""
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(indent + line for line in lines)
