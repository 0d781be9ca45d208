"""A real standalone Apache Flink cluster on loopback, for Beam portable tests.

    python -m tools.flink_cluster install          # fetch + cache everything
    python -m tools.flink_cluster start            # run in the foreground until Ctrl-C
    python -m tools.flink_cluster start --detach   # start, write state, return
    python -m tools.flink_cluster status
    python -m tools.flink_cluster stop             # stop a detached cluster

    from tools.flink_cluster import FlinkCluster
    with FlinkCluster() as c:
        c.pipeline_options("EXTERNAL", job_name="x")

Modules: ``config`` (versions, paths, flink-conf), ``install`` + ``jars`` (the
cache), ``roles`` (each process's command line), ``worker_pool`` (Beam's SDK
worker pool on loopback), ``rest`` (Flink REST), ``runs`` (run dirs, state
file), ``cluster`` (``FlinkCluster``), ``cli``. See README.md.
"""

from tools.flink_cluster.cluster import FlinkCluster
from tools.flink_cluster.config import CACHE_DIR, HOST, STATE_FILE, FlinkSetupError
from tools.flink_cluster.install import Installation, ensure_installed

__all__ = [
    "CACHE_DIR",
    "HOST",
    "STATE_FILE",
    "FlinkCluster",
    "FlinkSetupError",
    "Installation",
    "ensure_installed",
]
