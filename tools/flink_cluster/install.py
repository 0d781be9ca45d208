"""Installing Flink and Beam's Flink job server into the user cache
(``~/.cache/beam-kinesis-sink/flink``, ``FLINK_CACHE_DIR``).

* Flink itself: the PyPI sdist ``apache-flink-libraries==FLINK_VERSION`` ships
  ``flink-dist`` and the other ``lib/`` jars (``org.apache.flink:flink-dist`` is
  not served by Maven Central).  Only ``deps/lib`` and ``deps/bin`` are kept.
* Beam's Flink job server: the shaded ``beam-runners-flink-X-job-server`` jar is
  not served, so a small generated pom depends on
  ``org.apache.beam:beam-runners-flink-FLINK_MINOR:BEAM_JAVA_VERSION`` (which
  contains ``FlinkJobServerDriver``), ``mvn dependency:build-classpath``
  resolves its classpath into a private local repository under the cache, and
  the classpath is merged into one jar (see :mod:`.jars`).

A second install downloads nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from tools.flink_cluster.config import (
    BEAM_JAVA_VERSION,
    CACHE_DIR,
    FLINK_MINOR,
    FLINK_VERSION,
    MAVEN_DEPENDENCY_PLUGIN,
    FlinkSetupError,
    java,
    log,
    mkdir,
)
from tools.flink_cluster.jars import merge_jars

#: bump to rebuild the merged job server jar of an existing install
_JOBSERVER_LAYOUT = "merged-v1"


@dataclass(frozen=True)
class Installation:
    flink_home: Path  # holds lib/ (flink-dist + friends) and bin/
    jobserver_classpath: List[str]  # absolute jar paths
    java: str

    @property
    def flink_lib_jars(self) -> List[str]:
        jars = sorted(str(p) for p in (self.flink_home / "lib").glob("*.jar"))
        # Flink's own scripts put flink-dist last.
        dist = [j for j in jars if "/flink-dist" in j]
        return [j for j in jars if j not in dist] + dist

    @property
    def bash_java_utils_jar(self) -> str:
        return str(self.flink_home / "bin" / "bash-java-utils.jar")


_INSTALLATION: Optional[Installation] = None


def ensure_installed(verbose: bool = True) -> Installation:
    """Install (or reuse the cached) Flink distribution and job server classpath."""
    global _INSTALLATION
    if _INSTALLATION is None:
        java_path = java()
        mkdir(CACHE_DIR)
        # One installer at a time (parallel test sessions share the cache).
        with open(CACHE_DIR / "install.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # The two downloads are independent: do them side by side.
            with ThreadPoolExecutor(max_workers=2) as pool:
                dist = pool.submit(install_flink_dist, verbose)
                jobserver = pool.submit(install_jobserver, verbose)
                home, jars = dist.result(), jobserver.result()
        _INSTALLATION = Installation(flink_home=home, jobserver_classpath=jars, java=java_path)
    return _INSTALLATION


# ---------------------------------------------------------------- Flink
def install_flink_dist(verbose: bool) -> Path:
    """``<cache>/dist/flink-<version>`` with ``lib/`` and ``bin/`` from PyPI."""
    home = CACHE_DIR / "dist" / f"flink-{FLINK_VERSION}"
    marker = home / ".installed"
    if marker.exists():
        return home
    if verbose:
        log(f"installing Flink {FLINK_VERSION} from PyPI apache-flink-libraries ...")
    tmp = Path(tempfile.mkdtemp(prefix="dl-", dir=mkdir(CACHE_DIR / "tmp")))
    try:
        archive = _download_flink_sdist(tmp)
        staging = _extract_deps(archive, tmp / "extract")
        if home.exists():
            shutil.rmtree(home)
        home.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(home)
        marker.write_text(f"apache-flink-libraries=={FLINK_VERSION}\n")
        return home
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pip() -> List[str]:
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        found = shutil.which(name)
        if found:
            return [found]
    raise FlinkSetupError(f"no pip for {sys.executable} and none on PATH")


def _download_flink_sdist(into: Path) -> Path:
    requirement = f"apache-flink-libraries=={FLINK_VERSION}"
    proc = subprocess.run(
        _pip() + ["download", "--no-deps", "-d", str(into), requirement], capture_output=True, text=True
    )
    archives = list(into.glob("apache*flink*libraries-*.tar.gz"))
    if proc.returncode != 0 and not archives:
        raise FlinkSetupError(f"pip download {requirement} failed:\n{proc.stdout}\n{proc.stderr}")
    if not archives:
        raise FlinkSetupError(f"pip downloaded no sdist into {into}: {os.listdir(into)}")
    return archives[0]


def _extract_deps(archive: Path, staging: Path) -> Path:
    """``<top>/deps/{lib,bin}/<file>`` of the sdist into ``staging/{lib,bin}``."""
    staging.mkdir()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) == 4 and parts[1] == "deps" and parts[2] in ("lib", "bin") and member.isfile():
                target = mkdir(staging / parts[2]) / parts[3]
                with tar.extractfile(member) as src, open(target, "wb") as dst:  # type: ignore[union-attr]
                    shutil.copyfileobj(src, dst)
    if (
        not (staging / "lib" / f"flink-dist-{FLINK_VERSION}.jar").exists()
        or not (staging / "bin" / "bash-java-utils.jar").exists()
    ):
        raise FlinkSetupError(f"{archive.name} has no deps/lib/flink-dist or deps/bin/bash-java-utils.jar")
    return staging


# ---------------------------------------------------------------- job server
def jobserver_pom() -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by tools/flink_cluster: the classpath of Beam's Flink job server. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.beam-kinesis-sink</groupId>
  <artifactId>flink-job-server-classpath</artifactId>
  <version>{BEAM_JAVA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.beam</groupId>
      <artifactId>beam-runners-flink-{FLINK_MINOR}</artifactId>
      <version>{BEAM_JAVA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-simple</artifactId>
      <version>1.7.30</version>
    </dependency>
  </dependencies>
</project>
"""


def install_jobserver(verbose: bool) -> List[str]:
    """The job server's classpath: one merged jar under ``<cache>/jobserver``."""
    pom = jobserver_pom()
    digest = hashlib.sha256((pom + _JOBSERVER_LAYOUT).encode()).hexdigest()[:16]
    home = CACHE_DIR / "jobserver" / f"beam-{BEAM_JAVA_VERSION}-flink-{FLINK_MINOR}"
    merged = home / "beam-flink-job-server.jar"
    marker = home / ".installed"
    if marker.exists() and marker.read_text().strip() == digest and merged.exists():
        return [str(merged)]
    if verbose:
        log(
            f"resolving Beam {BEAM_JAVA_VERSION} Flink {FLINK_MINOR} job server "
            "classpath from Maven Central ..."
        )
    jars = _resolve_classpath(mkdir(home), pom)
    if verbose:
        log(f"merging {len(jars)} jars into {merged.name} ...")
    merge_jars(jars, merged)
    marker.write_text(digest + "\n")
    return [str(merged)]


def _resolve_classpath(home: Path, pom: str) -> List[str]:
    mvn = shutil.which("mvn")
    if not mvn:
        raise FlinkSetupError("no `mvn` on PATH (apt-get install maven)")
    (home / "pom.xml").write_text(pom)
    cp_file = home / "classpath.txt"
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(home / "pom.xml"),
        f"-Dmaven.repo.local={CACHE_DIR / 'm2'}",
        f"{MAVEN_DEPENDENCY_PLUGIN}:build-classpath",
        "-Dmdep.includeScope=runtime",
        f"-Dmdep.outputFile={cp_file}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not cp_file.exists():
        raise FlinkSetupError(
            "mvn could not resolve the Beam Flink job server classpath "
            f"(org.apache.beam:beam-runners-flink-{FLINK_MINOR}:{BEAM_JAVA_VERSION}):\n"
            f"$ {' '.join(cmd)}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
        )
    return cp_file.read_text().strip().split(os.pathsep)
