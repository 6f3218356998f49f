"""Plain-text summaries for task logs: one aligned line per object and outcome."""

from __future__ import annotations

import logging

log = logging.getLogger("k2.airflow")


def log_summary(title: str, rows: list[tuple[str, str, str]]) -> str:
    """Log ``(kind, name, outcome)`` rows under a title; returns the text for XCom."""
    width_kind = max((len(r[0]) for r in rows), default=4)
    width_name = max((len(r[1]) for r in rows), default=4)
    lines = [f"== {title} ({len(rows)} objects) =="]
    lines += [f"{k:<{width_kind}}  {n:<{width_name}}  {o}" for k, n, o in rows]
    text = "\n".join(lines)
    for line in lines:
        log.info(line)
    return text
