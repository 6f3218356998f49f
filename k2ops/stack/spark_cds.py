"""Class-data sharing for Spark's driver JVM: about half the CPU of every Spark start-up.

Every ``spark-submit`` loads and verifies some 20,000 classes (Spark, Scala, Iceberg,
Kafka, Avro) before its first batch. On a 2-core machine that is 15-25 s of CPU per
start: a stream restarted after kill -9, each maintenance task, each test job. A
dynamic CDS archive (JDK 13+: ``-XX:ArchiveClassesAtExit`` once, then
``-XX:SharedArchiveFile``) maps those classes pre-parsed from one file, shared by every
Spark JVM on the machine. Measured on this 2-core machine (busy), a trivial job went
from 22-29 s to 13-15 s of CPU, driver included.

The archive is made once per installation by running :mod:`k2ops.stack.spark_warmup` (a
job touching Iceberg reads, writes, MERGE and streaming, Kafka and Avro) and is keyed
by the JVM and the exact class path, which the JVM also checks itself: any change (new
jars, another Java) makes a new key; a stale or unreadable archive is ignored by the
JVM (``-Xshare:auto``), so it can only make start-up slower, never break a job.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from k2.settings import PlatformSettings, env_for_children
from k2ops.stack.artifacts import spark_jars

ARCHIVE_GLOB = "spark-cds-*.jsa"
# Quiet: a rejected archive (jar changed under it) is a slower start, not an error worth a line.
RUN_FLAGS = "-Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"


def _java() -> Path | None:
    java_home = os.environ.get("JAVA_HOME")
    found = Path(java_home, "bin", "java") if java_home else None
    if found is None or not found.exists():
        which = shutil.which("java")
        found = Path(which) if which else None
    return found.resolve() if found else None


def driver_class_path(s: PlatformSettings) -> list[Path]:
    """K2's jars, then Spark's: the driver's extra class path, all of it archivable."""
    from k2ops.stack.spark import spark_home

    return [*spark_jars(s), *sorted((spark_home() / "jars").glob("*.jar"))]


def archive_path(s: PlatformSettings) -> Path | None:
    """Where the archive for this JVM and class path lives (None: no Java found)."""
    java = _java()
    if java is None:
        return None
    digest = hashlib.sha256(str(java).encode())
    for path in [java, *driver_class_path(s)]:
        info = path.stat()
        digest.update(f"{path}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return s.spark_conf_dir / f"spark-cds-{digest.hexdigest()[:16]}.jsa"


def java_options(s: PlatformSettings) -> str:
    """The driver's extra JVM flags for the archive, if it has been built ("" otherwise)."""
    path = archive_path(s)
    if path is None or not path.exists():
        return ""
    return f"-XX:SharedArchiveFile={path} {RUN_FLAGS}"


def ensure_archive(s: PlatformSettings, base_java_options: str, log) -> Path | None:
    """Build the archive if this class path has none yet; returns it, or None if it failed.

    A failure only costs speed: it is logged with the warm-up's output and start-up goes
    on without an archive (the next ``k2 stack up`` tries again).
    """
    from k2ops.stack.spark import spark_submit

    path = archive_path(s)
    if path is None or path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    warehouse = s.spark_conf_dir / "cds-warmup"
    shutil.rmtree(warehouse, ignore_errors=True)
    log("building Spark's class-data archive (once per install; every later Spark start-up "
        "needs about half the CPU)")
    began = time.monotonic()
    argv = [spark_submit(),
            "--conf", f"spark.driver.extraJavaOptions={base_java_options} -XX:ArchiveClassesAtExit={tmp}",
            str(Path(__file__).with_name("spark_warmup.py")), "--warehouse", str(warehouse)]
    try:  # the warm-up imports only pyspark: no PYTHONPATH needed
        result = subprocess.run(argv, env=env_for_children(s), capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        log("class-data archive: the warm-up job timed out; Spark starts without it")
        return None
    finally:
        shutil.rmtree(warehouse, ignore_errors=True)
    if result.returncode != 0 or not tmp.exists():
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        log("class-data archive: the warm-up job failed; Spark starts without it:\n  " + "\n  ".join(tail))
        tmp.unlink(missing_ok=True)
        return None
    for old in s.spark_conf_dir.glob(ARCHIVE_GLOB):
        old.unlink(missing_ok=True)
    tmp.rename(path)
    log(f"class-data archive ready in {time.monotonic() - began:.0f}s: {path.name} "
        f"({path.stat().st_size / 2**20:.0f} MiB)")
    return path
