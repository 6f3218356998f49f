"""JVM artifacts from Maven Central, copied into the shared download cache.

The versions live in small poms beside this module, in ``k2ops/stack/jvm/``; Maven resolves them through its
own local repository (``~/.m2``), so a second clone or a re-run downloads nothing. A
marker holding the pom's hash makes the copy step idempotent.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
from pathlib import Path

from k2.settings import PlatformSettings
from k2ops.stack.errors import StackError
from k2ops.stack.progress import step

POM_DIR = Path(__file__).parent / "jvm"

# Only what pyspark does not already ship: duplicates of its own jars on the classpath
# (scala-library, hadoop client, compression codecs) cause subtle version clashes.
SPARK_JARS = (
    "iceberg-spark-runtime-4.1_2.13",
    "iceberg-aws-bundle",
    "spark-sql-kafka-0-10_2.13",
    "spark-token-provider-kafka-0-10_2.13",
    "kafka-clients",
    "commons-pool2",
    "spark-avro_2.13",
    "postgresql",
)


def jvm_dir(settings: PlatformSettings, component: str) -> Path:
    return Path(settings.cache_dir) / "jvm" / component


def kafka_classpath(settings: PlatformSettings) -> str:
    return str(jvm_dir(settings, "kafka") / "*")


def spark_jars(settings: PlatformSettings) -> list[Path]:
    return sorted(jvm_dir(settings, "spark").glob("*.jar"))


def registry_jar(settings: PlatformSettings) -> Path:
    found = sorted(jvm_dir(settings, "registry").glob("*-runner.jar"))
    if not found:
        raise StackError("registry", "Apicurio Registry is not installed", "run `make setup`")
    return found[-1]


# Apicurio Registry (Confluent-compatible API at /apis/ccompat/v7). 3.0.9 is the newest
# 3.x served here that runs on Java 17 (3.1.x is not served; 3.2+ needs Java 21). Its
# parent pom is not served either, so it is fetched without dependency resolution.
REGISTRY_ARTIFACT = "io.apicurio:apicurio-registry-app:3.0.9:tar.gz:all"


def _fingerprint(component: str) -> str:
    if component == "registry":
        source = REGISTRY_ARTIFACT.encode()
    else:
        source = (POM_DIR / component / "pom.xml").read_bytes()
    return hashlib.sha256(source).hexdigest()


def _mvn(args: list[str], component: str) -> None:
    if shutil.which("mvn") is None:
        raise StackError(
            component, "Maven (mvn) is not installed", "install it: apt-get install -y maven"
        )
    proc = subprocess.run(["mvn", "-q", "-B", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise StackError(
            component,
            "could not download its jars from Maven Central",
            "check the network access to Maven Central and ~/.m2/settings.xml, then re-run "
            "`make setup`\n" + tail,
        )


def _fetch_registry(dest: Path) -> None:
    group, artifact, version, packaging, classifier = REGISTRY_ARTIFACT.split(":")
    _mvn(["dependency:get", f"-Dartifact={REGISTRY_ARTIFACT}", "-Dtransitive=false"], "registry")
    archive = (
        Path.home() / ".m2" / "repository" / group.replace(".", "/") / artifact / version
        / f"{artifact}-{version}-{classifier}.{packaging}"
    )
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")


def _ensure(component: str, dest: Path, extra_args: list[str]) -> None:
    marker = dest / ".k2-fingerprint"
    if marker.exists() and marker.read_text() == _fingerprint(component):
        return
    with step(f"{component}: fetching JVM artifacts from Maven Central"):
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        if component == "registry":
            _fetch_registry(dest)
        else:
            pom = POM_DIR / component / "pom.xml"
            _mvn(["-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={dest}",
                  "-DincludeScope=runtime", *extra_args], component)
        marker.write_text(_fingerprint(component))


COMPONENTS = ("kafka", "spark", "registry")


def ensure_all(settings: PlatformSettings, components: tuple[str, ...] = COMPONENTS) -> None:
    """Download (once) the JVM artifacts of ``components`` (default: all the stack needs)."""
    if "kafka" in components:
        _ensure("kafka", jvm_dir(settings, "kafka"), [])
    if "registry" in components:
        _ensure("registry", jvm_dir(settings, "registry"), [])
    if "spark" not in components:
        return
    _ensure("spark", jvm_dir(settings, "spark"), ["-DincludeArtifactIds=" + ",".join(SPARK_JARS)])
    missing = [a for a in SPARK_JARS if not any(p.name.startswith(a) for p in spark_jars(settings))]
    if missing:
        raise StackError("spark", f"jars missing after download: {missing}", "re-run `make setup`")
