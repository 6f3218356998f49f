"""Where a Spark job's file is, and the spark-submit that runs it.

Every launcher (Airflow's SparkSubmitOperator, the pipeline harness, the benchmarks, the
tests) names a job by its module name under ``spark_jobs/`` and asks here for the path,
so the layout of the jobs is decided once.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from k2.settings import REPO_ROOT

SPARK_JOBS_DIR = REPO_ROOT / "spark_jobs"


def job_path(job: str) -> Path:
    """``spark_jobs/<job>.py``; the job may not exist yet (a DAG is parsed before it runs)."""
    return SPARK_JOBS_DIR / f"{job}.py"


def spark_submit() -> str:
    """The venv's spark-submit (the one pip installed with pyspark), else the one on PATH."""
    path = Path(sys.executable).parent / "spark-submit"
    if path.exists():
        return str(path)
    found = shutil.which("spark-submit")
    if not found:
        raise FileNotFoundError(f"spark-submit is neither beside {sys.executable} nor on PATH")
    return found
