"""The path users take: ``--runner=FlinkRunner`` with the sink shipped by ``--setup_file``.

A user's pipeline script, run as a subprocess (as a user runs it), submits to
the cluster's JobManager with::

    --runner=FlinkRunner --flink_master=127.0.0.1:<rest port> --flink_version=1.19
    --flink_job_server_jar=<the installed Beam 2.62.0 job server jar>
    --environment_type=PROCESS --environment_config={"command": "<worker boot>"}
    --setup_file=<this repository>/setup.py

FlinkRunner starts its own job server from the jar (``java -jar``; the merged
jar's manifest names ``FlinkJobServerDriver``), stages the sdist Beam builds
from ``setup.py`` and submits to Flink. Each TaskManager runs the worker
command: Beam's own Python SDK boot (the ``boot`` of Beam's SDK container
images, built from Beam's Go module ``sdks/v2/python/container`` at 2.62.0
by ``make``), in a fresh venv that has apache-beam 2.62.0, boto3 and fastavro
and *not* this project: like a Beam SDK container image. The boot fetches the
staged files and pip-installs the sdist; the sink then runs from there,
nothing of this repository is on the workers' ``sys.path``.

The fixture cluster's own job server and worker pool are not used here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from beam_kinesis_sink.testing.readback import read_all
from beam_kinesis_sink.testing.user_cache import user_cache_dir
from tests.flink.test_flink_sink import flink_job
from tools.flink_cluster import ensure_installed

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]
#: Beam's Python SDK boot, built by `make` (see the Makefile's BEAM_BOOT)
BOOT = Path(os.environ.get("BEAM_SDK_BOOT") or user_cache_dir("beam-boot", "2.62.0", "boot"))
#: the "SDK image": apache-beam 2.62.0 and the sink's dependencies, not the sink (make $(VENV_WORKER))
WORKER_BASE = Path(os.environ.get("BEAM_WORKER_VENV", REPO / ".venv-beam-2.62-worker"))
RECORDS = 2_000
SUBMIT_TIMEOUT = 480

# The user's pipeline. It defines no function or class of its own (those would
# be pickled as __main__.X): only Beam's, the sink's and the standard library's.
PIPELINE = '''\
import importlib.metadata
import importlib.resources
import sys
import sysconfig

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from beam_kinesis_sink import ClientConfig, KinesisRecord, WriteToKinesis

stream, endpoint, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with beam.Pipeline(options=PipelineOptions(sys.argv[5:])) as p:
    _ = (
        p
        | "Records" >> beam.Create([KinesisRecord(b"record-%d" % i, "key-%d" % (i % 31)) for i in range(n)])
        | beam.Reshuffle()
        | WriteToKinesis(stream, client_config=ClientConfig(region_name="us-east-1", endpoint_url=endpoint))
    )
    # On the workers: where the packages are, the running Python's site-packages, the versions.
    where = (
        p
        | "Packages" >> beam.Create(["beam_kinesis_sink", "apache_beam"])
        | "Files" >> beam.Map(importlib.resources.files)
        | "Str" >> beam.Map(str)
    )
    site = p | "Site" >> beam.Create(["purelib"]) | "GetPath" >> beam.Map(sysconfig.get_path)
    versions = (
        p
        | "Distributions" >> beam.Create(["apache-beam", "beam-kinesis-sink"])
        | "Versions" >> beam.Map(importlib.metadata.version)
    )
    _ = (where, site, versions) | beam.Flatten() | beam.io.WriteToText(out)
'''


def worker_environment(tmp: Path) -> Dict[str, Any]:
    """A fresh venv on top of the "SDK image", and the PROCESS command that boots a worker in it."""
    if not BOOT.exists():
        pytest.fail(f"no Beam Python SDK boot at {BOOT}: `make test-flink` builds it", pytrace=False)
    if not (WORKER_BASE / "bin" / "python").exists():
        pytest.fail(f"no worker venv at {WORKER_BASE}: `make test-flink` makes it", pytrace=False)
    venv = tmp / "worker-venv"
    subprocess.run([str(WORKER_BASE / "bin" / "python"), "-m", "venv", str(venv)], check=True)
    py = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site, base_site = venv / "lib" / py / "site-packages", WORKER_BASE / "lib" / py / "site-packages"
    (site / "beam_sdk_image.pth").write_text(f"{base_site}\n")
    semi = tmp / "semi-persistent"
    semi.mkdir()
    boot = tmp / "boot.sh"
    # RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT: install into this venv (the
    # "image's" Python) rather than a venv of its own under /opt/apache.
    boot.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        unset PYTHONPATH
        export RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1 VIRTUAL_ENV="{venv}"
        export PYTHON_PATH="{venv}/bin/python" PATH="{venv}/bin:$PATH"
        cd "{tmp}"
        exec "{BOOT}" --semi_persist_dir="{semi}" "$@"
        """))
    boot.chmod(0o755)
    return {"venv": venv, "site": site, "command": str(boot)}


def test_flink_runner_with_setup_file(
    flink_cluster: Any, kinesalite: Any, tmp_path: Path, report: Callable[[str], None]
) -> None:
    stream = f"flink-runner-{uuid.uuid4().hex[:10]}"
    kinesalite.create_stream(stream, shards=2)
    worker = worker_environment(tmp_path)
    (jar,) = ensure_installed(verbose=False).jobserver_classpath
    script = tmp_path / "my_pipeline.py"
    script.write_text(PIPELINE)
    out = tmp_path / "out" / "worker"
    job_name = f"flink-runner-{uuid.uuid4().hex[:8]}"
    options: List[str] = [
        "--runner=FlinkRunner",
        f"--flink_master={flink_cluster.flink_master}",
        "--flink_version=1.19",
        f"--flink_job_server_jar={jar}",
        "--job_server_jvm_properties=-Xmx512m",
        f"--artifacts_dir={tmp_path / 'artifacts'}",
        "--environment_type=PROCESS",
        "--environment_config=" + json.dumps({"command": worker["command"]}),
        f"--setup_file={REPO / 'setup.py'}",
        f"--parallelism={flink_cluster.parallelism}",
        f"--job_name={job_name}",
    ]
    # The submitting Python: this one (the sink installed, as a user's is); not the repository's folder.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script), stream, kinesalite.endpoint_url, str(out), str(RECORDS), *options],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SUBMIT_TIMEOUT,
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"

    # It ran on the cluster, with both slots.
    job = flink_job(flink_cluster, job_name)
    assert job["state"] == "FINISHED"
    assert max(v["parallelism"] for v in job["vertices"]) == flink_cluster.parallelism

    # Every record in the stream once.
    stored = [r for records in read_all(kinesalite.client(), stream).values() for r in records]
    assert sorted(r["data"] for r in stored) == sorted(b"record-%d" % i for i in range(RECORDS))

    # The workers ran the sink from the sdist that the boot installed into their venv,
    # with apache-beam 2.62.0 from the "image", and nothing from this repository.
    lines = sorted(line for f in out.parent.glob("worker*") for line in f.read_text().splitlines())
    site = str(worker["site"])
    assert f"{site}/beam_kinesis_sink" in lines, lines
    assert f"{WORKER_BASE / 'lib' / worker['site'].parent.name / 'site-packages'}/apache_beam" in lines, lines
    assert site in lines, lines  # the workers' Python is the fresh venv's
    assert "2.62.0" in lines and version("beam-kinesis-sink") in lines, lines
    repo, image = str(REPO), str(WORKER_BASE)
    from_repo = [line for line in lines if line.startswith(repo) and not line.startswith(image)]
    assert from_repo == [], lines
    assert list(worker["site"].glob("beam_kinesis_sink-*.dist-info")), "the boot did not install the sdist"
    report(
        f"flink runner: FlinkRunner + --setup_file, {RECORDS} records through Beam's SDK boot (PROCESS), "
        f"sink from the staged sdist; submission to exit {elapsed:.1f}s"
    )
