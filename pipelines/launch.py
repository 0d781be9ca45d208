"""Running a command's pipeline: progress lines while it runs, its counters at the end.

Progress lines come from one of two places, never both:

- the run's tally (``progress.py``), when the DoFns run in this process (the
  DirectRunner, whose ``run()`` only returns at the end; Beam's ``LOOPBACK``
  environment): its thread prints them;
- otherwise, on runners whose ``run()`` returns while the job runs, the
  job's Beam metrics, polled every ``interval`` seconds.

Fresh metrics on portable runners. ``PipelineResult.metrics()`` of Beam's
PortableRunner (Flink and Spark job servers) asks the job service once and
caches the answer (``if not self._metrics`` in portable_runner.py): polled
while the job runs, it would freeze the counts the summary reads at the end
(seen on Flink: every count 0, and exit code 0 although records were
dead-lettered). So when the job service is known (``--job_endpoint``), the
counters come from it directly, through the public Job API: ``GetJobs``
before and after the submission tells which job is ours, and every read is a
new ``GetJobMetrics`` call. Without it (a runner that starts its own job
server), the job's metrics are not polled: the result is asked once, at the
end, when its first answer is the final one.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, NamedTuple, Optional, TextIO

from beam_kinesis_sink.messages import describe

from . import progress
from .common import eprint

#: seconds a Job API call may take
JOB_API_TIMEOUT = 30.0


def counters_of(metrics: Any) -> dict[str, int]:
    """Every counter of :data:`progress.NAMESPACE` in Beam ``MetricResults``:
    committed values, else attempted ones (a running job has only those)."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        counters = metrics.query(MetricsFilter().with_namespace(progress.NAMESPACE))["counters"]
    except Exception:  # a runner without metrics support
        return {}
    values: dict[str, int] = {}
    for counter in counters:
        try:
            value = counter.committed
        except Exception:
            value = None
        if value is None:
            value = counter.attempted
        name = counter.key.metric.name
        values[name] = values.get(name, 0) + int(value or 0)
    return values


class JobService:
    """A portable job service, through the Job API every portable job server offers."""

    def __init__(self, endpoint: str) -> None:
        import grpc
        from apache_beam.portability.api import beam_job_api_pb2_grpc

        self.endpoint = endpoint
        self._channel = grpc.insecure_channel(endpoint)
        self._stub = beam_job_api_pb2_grpc.JobServiceStub(self._channel)

    @classmethod
    def of(cls, options: Any) -> Optional[JobService]:
        """The job service ``--job_endpoint`` names, or None (none given, or ``embed``)."""
        from apache_beam.options.pipeline_options import PortableOptions

        endpoint = options.view_as(PortableOptions).job_endpoint
        return cls(endpoint) if endpoint and endpoint != "embed" else None

    def job_ids(self) -> set[str]:
        from apache_beam.portability.api import beam_job_api_pb2

        response = self._stub.GetJobs(beam_job_api_pb2.GetJobsRequest(), timeout=JOB_API_TIMEOUT)
        return {info.job_id for info in response.job_info}

    def metrics(self, job_id: str) -> Any:
        """The job's metrics as Beam ``MetricResults``, asked now."""
        from apache_beam.portability.api import beam_job_api_pb2
        from apache_beam.runners.portability.portable_runner import PortableMetrics

        request = beam_job_api_pb2.GetJobMetricsRequest(job_id=job_id)
        return PortableMetrics(self._stub.GetJobMetrics(request, timeout=JOB_API_TIMEOUT))

    def close(self) -> None:
        self._channel.close()


def _is_portable(result: Any) -> bool:
    from apache_beam.runners.portability.portable_runner import PipelineResult

    return isinstance(result, PipelineResult)


class JobCounters:
    """Where the launcher reads the counters of the job it ran (see the module doc)."""

    def __init__(
        self, result: Any, service: Optional[JobService] = None, job_id: Optional[str] = None
    ) -> None:
        self._result = result
        self._service = service if job_id else None
        self._job_id = job_id

    @property
    def live(self) -> bool:
        """Whether reading them while the job runs leaves the final read right."""
        return self._service is not None or not _is_portable(self._result)

    def read(self, final: bool = False) -> dict[str, int]:
        """The counters now; ``final``: the job has ended (the summary's read)."""
        if self._service is not None and self._job_id is not None:
            try:
                return counters_of(self._service.metrics(self._job_id))
            except Exception as exc:
                eprint(f"warning: the job service at {self._service.endpoint} did not tell the job's "
                       f"metrics: {describe(exc)}")
                if not final:
                    return {}
                # the result's own answer is fresh: it has never been asked
        try:
            metrics = self._result.metrics()
        except Exception:  # a runner without metrics support
            return {}
        return counters_of(metrics)


def wait_with_progress(
    result: Any,
    config: progress.ProgressConfig,
    tally: progress.Tally,
    counters: JobCounters,
    out: Optional[TextIO] = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Wait for ``result``; while it runs (runners whose ``run()`` returns at once),
    print progress from its metrics, unless DoFns count into this process's
    ``tally`` (whose thread prints it then). Returns the final state."""
    from apache_beam.runners.runner import PipelineState

    started = last_time = time.monotonic()
    last_written = 0
    next_line = started + config.interval
    while not PipelineState.is_terminal(result.state):
        sleep(0.25)
        now = time.monotonic()
        if config.interval > 0 and now >= next_line and counters.live and not tally.attached:
            counts = counters.read()
            written = counts.get(progress.WRITTEN, 0)
            rate = (written - last_written) / max(now - last_time, 1e-9)
            last_time, last_written = now, written
            line = progress.format_progress(
                config.label, now - started, counts.get(progress.READ, 0), written, rate,
                counts.get(progress.DEAD, 0),
            )
            print(line, file=out or sys.stderr, flush=True)
            next_line = now + config.interval
    return result.wait_until_finish()


class Finished(NamedTuple):
    #: every counter of the job (empty when the runner reports no metrics)
    counts: dict[str, int]
    #: seconds from the submission to the end
    elapsed: float


def _job_ids(service: Optional[JobService]) -> Optional[set[str]]:
    if service is None:
        return None
    try:
        return service.job_ids()
    except Exception:  # not a job service we can ask: the result is asked at the end instead
        return None


def _new_job(service: Optional[JobService], before: Optional[set[str]]) -> Optional[str]:
    """Our job's id: the one job the service lists now that it did not before."""
    after = _job_ids(service) if before is not None else None
    new = (after or set()) - (before or set())
    return next(iter(new)) if len(new) == 1 else None


def run_pipeline(pipeline: Any, config: progress.ProgressConfig, out: Optional[TextIO] = None
                 ) -> Optional[Finished]:
    """Run ``pipeline`` (built with ``config``) with progress lines; its counters, or
    None when it failed (said on stderr, prefixed with the config's label)."""
    service = JobService.of(pipeline.options)
    try:
        return _run(pipeline, config, progress.launcher_tally(config, out), service, out)
    finally:
        if service is not None:
            service.close()


def _run(pipeline: Any, config: progress.ProgressConfig, tally: progress.Tally,
         service: Optional[JobService], out: Optional[TextIO]) -> Optional[Finished]:
    before = _job_ids(service)
    started = time.monotonic()
    tally.start()
    try:
        result = pipeline.run()
        counters = JobCounters(result, service, _new_job(service, before))
        wait_with_progress(result, config, tally, counters, out)
    except Exception as exc:
        eprint(f"{config.label}: the pipeline failed: {type(exc).__name__}: {exc}")
        return None
    finally:
        tally.stop()
    return Finished(counters.read(final=True), time.monotonic() - started)
