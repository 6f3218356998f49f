"""Where the stack's secrets show while it starts: `ps`, its logs, the secret files' modes.

:class:`Watcher` samples, in a thread, what `ps -eo args` shows (every process's
/proc/PID/cmdline) and the modes of the files in a secrets folder, until stopped.
"""

from __future__ import annotations

import stat
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from k2.settings import PlatformSettings

MIN_SECRET = 12  # shorter configured values ("admin") would match innocent text


class Watcher(threading.Thread):
    """Every process's command line and the secret files' modes, sampled until stopped."""

    def __init__(self, secrets_dir: Path) -> None:
        super().__init__(daemon=True)
        self.secrets_dir = secrets_dir
        self.args: set[str] = set()
        self.modes: dict[str, set[int]] = defaultdict(set)
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    raw = cmdline.read_bytes()
                except OSError:  # the process is gone
                    continue
                if raw:
                    self.args.add(raw.replace(b"\0", b" ").decode(errors="replace").strip())
            try:
                self.modes["secrets/"].add(stat.S_IMODE(self.secrets_dir.stat().st_mode))
                for path in self.secrets_dir.iterdir():
                    self.modes[path.name].add(stat.S_IMODE(path.stat().st_mode))
            except OSError:  # not created yet, or a file just renamed
                pass
            time.sleep(0.005)

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self.join(10)


def stack_secrets(s: PlatformSettings) -> list[str]:
    """The values of the stack's secrets: $K2_HOME/secrets/*, the PostgreSQL and Airflow
    passwords (configured or generated)."""
    from k2ops.stack import airflow

    values = [s.pg_password.reveal(), s.airflow_password.reveal()]
    folder = s.home_path / "secrets"
    values += [p.read_text().strip() for p in folder.iterdir()] if folder.exists() else []
    if (s.airflow_home / airflow.PASSWORDS_FILE).exists():
        values.append(airflow.password(s).reveal())
    return sorted({v for v in values if len(v) >= MIN_SECRET})


def leaks(secrets: Iterable[str], texts: dict[str, str], logs: Path | None = None,
          since: float = 0.0) -> list[str]:
    """Which of ``texts`` (name: text), and of the files under ``logs`` written since
    ``since``, hold one of ``secrets``."""
    secrets = list(secrets)
    found = [name for name, text in texts.items() if any(v in text for v in secrets)]
    for path in sorted(logs.rglob("*")) if logs is not None and logs.exists() else []:
        if path.is_file() and path.stat().st_mtime >= since:
            text = path.read_text(errors="replace")
            found += [str(path)] if any(v in text for v in secrets) else []
    return found
