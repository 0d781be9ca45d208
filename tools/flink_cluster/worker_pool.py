"""Beam's external SDK worker pool, listening on one address (loopback).

``python -m apache_beam.runners.worker.worker_pool_main`` binds
``[::]:<port>``, every interface, and has no flag for the host; its servicer
starts an SDK worker process for whoever asks. This serves the same servicer
(``BeamFnExternalWorkerPoolServicer``, SDK workers as processes, as
``worker_pool_main`` runs it) on ``--host`` instead.

Run by path with the SDK workers' interpreter (``python worker_pool.py
--host=127.0.0.1 --service_port=N``); it imports only apache_beam and grpc,
not the rest of this package.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

_LOG = logging.getLogger("worker_pool")


def serve(host: str, port: int) -> None:
    """Serve the worker pool on ``host:port`` until the process is stopped."""
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc
    from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer
    from apache_beam.utils import thread_pool_executor

    # the options and servicer arguments of BeamFnExternalWorkerPoolServicer.start
    options = [("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)]
    server = grpc.server(thread_pool_executor.shared_unbounded_instance(), options=options)
    if server.add_insecure_port(f"{host}:{port}") != port:
        raise SystemExit(f"worker pool: cannot listen on {host}:{port}")
    servicer = BeamFnExternalWorkerPoolServicer(
        use_process=True, state_cache_size=0, data_buffer_time_limit_ms=-1
    )
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(servicer, server)
    server.start()
    _LOG.info("Listening for workers at %s:%s", host, port)
    # The SDK workers are this process's children, in its process group: the
    # cluster stops them with it.
    server.wait_for_termination()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True, help="the address to listen on")
    parser.add_argument("--service_port", type=int, required=True, help="the port to listen on")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.host, args.service_port)


if __name__ == "__main__":
    # Run by path, this file's folder is sys.path[0]: drop it, so that its
    # siblings (config.py, cluster.py, ...) cannot shadow top-level modules.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    main()
