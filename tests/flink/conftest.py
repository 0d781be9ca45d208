"""A real standalone Flink cluster (JobManager, TaskManager, Beam job server and
Python SDK worker pool, each its own process) for the tests in this folder.

The cluster comes from ``tools/flink_cluster``; its install is cached in
the user cache, ``~/.cache/beam-kinesis-sink/flink/`` (run ``make
flink-install`` first to keep the download out of the test's time). If
installing or starting fails, every test that uses ``flink_cluster`` ERRORS
with the reason; nothing is skipped.

They run on the matched pair: the Python SDK that submits and runs the SDK
workers is apache-beam 2.62.0, the job server's version (``make test-flink``
runs them with ``.venv-beam-2.62``); a session on another apache-beam fails
at once (``FLINK_ALLOW_SKEW=1`` runs it anyway, unsupported).

To iterate quickly, start a cluster once and attach to it::

    python -m tools.flink_cluster start --detach
    FLINK_CLUSTER_ATTACH=1 pytest tests/flink
    python -m tools.flink_cluster stop
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tools.flink_cluster import FlinkCluster, FlinkSetupError
from tools.flink_cluster.config import BEAM_JAVA_VERSION

REPO_ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.flink)
            item.add_marker(pytest.mark.slow)


def check_matched_pair() -> None:
    """The job submission and the SDK workers (the worker pool runs this
    interpreter) must be the job server's Beam: Beam supports no other pairing.
    ``FLINK_ALLOW_SKEW=1`` runs them anyway (a skewed pair, unsupported)."""
    from importlib.metadata import version

    sdk = version("apache-beam")
    if sdk != BEAM_JAVA_VERSION and not os.environ.get("FLINK_ALLOW_SKEW"):
        pytest.fail(
            f"tests/flink run the Python SDK {sdk} against the Beam {BEAM_JAVA_VERSION} job server: "
            f"run them with the apache-beam {BEAM_JAVA_VERSION} venv (`make test-flink`), "
            "or set FLINK_ALLOW_SKEW=1 for an unsupported skewed pair",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def flink_cluster() -> Iterator[FlinkCluster]:
    """A running cluster; ``.pipeline_options()`` gives PortableRunner options for it."""
    check_matched_pair()
    if os.environ.get("FLINK_CLUSTER_ATTACH"):
        try:
            yield FlinkCluster.attach()
        except (FlinkSetupError, OSError, KeyError, ValueError) as error:
            pytest.fail(f"FLINK_CLUSTER_ATTACH is set but no cluster can be attached: {error}", pytrace=False)
        return
    cluster = FlinkCluster(
        taskmanagers=int(os.environ.get("FLINK_TASKMANAGERS", "1")),
        slots_per_taskmanager=int(os.environ.get("FLINK_SLOTS_PER_TASKMANAGER", "2")),
        # SDK workers import the pipelines' code (this repo, tests included) by name.
        worker_pythonpath=[str(REPO_ROOT)],
    )
    yield from started(cluster, "the Flink test cluster")


def started(cluster: FlinkCluster, what: str) -> Iterator[FlinkCluster]:
    """For a fixture: ``cluster`` started, then stopped; if it cannot start,
    the tests that use it fail with the reason."""
    try:
        cluster.start()
    except FlinkSetupError as error:
        pytest.fail(f"could not install/start {what}: {error}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """On failure, attach the tail of the cluster's logs to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.passed or "flink_cluster" not in getattr(item, "fixturenames", ()):
        return
    cluster = item.funcargs.get("flink_cluster") if hasattr(item, "funcargs") else None
    log_dir = getattr(cluster, "log_dir", None)
    if not log_dir or not Path(log_dir).is_dir():
        return
    for name in ("jobserver.out", "taskmanager-0.log", "worker-pool.out"):
        path = Path(log_dir) / name
        if path.exists():
            lines = path.read_text(errors="replace").splitlines()[1:]
            report.sections.append((f"flink {name} (tail)", "\n".join(lines[-60:])))
