"""How logs look and how much of them the platform keeps: the line format, stack service
logs by size, Airflow task logs by age.

Core settings (they import nothing but :mod:`k2.config`), read by the stack manager
when it starts a service and by the Airflow task that cleans old task logs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from k2.config import load, register, require, setting

FORMATS = ("auto", "json", "text")


@register
@dataclass(frozen=True)
class LogSettings:
    """Log line format, log rotation of the local stack's services and age-based cleanup of
    Airflow task logs."""

    format: str = setting(
        "LOG_FORMAT", "auto",
        "Format of the workers' and jobs' event lines: json (one JSON object per line), text (one "
        "aligned, human-readable line per event, the same fields), or auto: text on a terminal, "
        "json otherwise (files, pipes, Airflow, the stack's service logs).",
    )

    max_mb: int = setting(
        "LOG_MAX_MB", 50,
        "Size in MB at which a stack service's log ($K2_HOME/logs/<service>.log) is rotated "
        "to <service>.log.1 (applies from the service's next start).",
    )
    backups: int = setting(
        "LOG_BACKUPS", 5,
        "Rotated files kept per service log (<service>.log.1 .. .N); the oldest is deleted.",
    )
    airflow_retention_days: int = setting(
        "AIRFLOW_LOG_RETENTION_DAYS", 7,
        "Airflow task and DAG-processor log files not written for this many days are deleted "
        "by the retention DAG's airflow_task_logs_cleanup task (0 keeps them forever).",
    )

    def validate(self) -> None:
        require(self.format in FORMATS, "LOG_FORMAT", f"must be one of {', '.join(FORMATS)}, got {self.format!r}")
        require(self.max_mb >= 1, "LOG_MAX_MB", f"must be >= 1, got {self.max_mb}")
        require(self.backups >= 1, "LOG_BACKUPS", f"must be >= 1, got {self.backups}")
        require(self.airflow_retention_days >= 0, "AIRFLOW_LOG_RETENTION_DAYS",
                f"must be >= 0 (0 keeps them forever), got {self.airflow_retention_days}")

    @property
    def max_bytes(self) -> int:
        return self.max_mb * 1024 * 1024


@functools.cache
def log_settings() -> LogSettings:
    return load(LogSettings)
