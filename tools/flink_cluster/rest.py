"""The few calls of Flink's REST API the cluster needs."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from typing import Any, Dict, Optional


def get(rest_url: str, path: str, timeout: float = 5.0) -> Any:
    """``GET <rest_url><path>`` as JSON."""
    with urllib.request.urlopen(f"{rest_url}{path}", timeout=timeout) as resp:
        return json.load(resp)


def overview(rest_url: str) -> Dict[str, Any]:
    """``/overview``: TaskManagers, slots and jobs by state."""
    return get(rest_url, "/overview")


def job_metric(rest_url: str, jid: str, name: str) -> Optional[float]:
    """A job-level metric of the JobManager (``numRestarts``, ...), while the
    job runs; None when Flink does not report it (yet)."""
    values = get(rest_url, f"/jobs/{jid}/metrics?get={name}")
    return float(values[0]["value"]) if values else None


def checkpoint_counts(rest_url: str, jid: str) -> Dict[str, int]:
    """``/jobs/<jid>/checkpoints`` counts: ``completed``, ``failed``, ``restored``, ...;
    empty while Flink has none to give (it answers 500 before the job runs)."""
    try:
        return dict(get(rest_url, f"/jobs/{jid}/checkpoints")["counts"])
    except urllib.error.HTTPError as error:
        if error.code == 500:
            return {}
        raise


def user_metrics(rest_url: str, jid: str, prefix: str, vertex_contains: str = "") -> Dict[str, float]:
    """A running job's user counters whose names start with ``prefix`` (Beam
    reports a counter ``<namespace>:<name>`` as ``<namespace>_<name>``; its
    distributions, as text, are left out), summed
    over the subtasks of the vertices whose name holds ``vertex_contains``.
    Flink counts per task attempt: after a restart, from 0 again."""
    totals: Dict[str, float] = {}
    for vertex in get(rest_url, f"/jobs/{jid}")["vertices"]:
        if vertex_contains not in vertex["name"]:
            continue
        base = f"/jobs/{jid}/vertices/{vertex['id']}/metrics"
        # ids are "<subtask>.<operator>.<metric>"
        ids = [m["id"] for m in get(rest_url, base) if m["id"].rsplit(".", 1)[-1].startswith(prefix)]
        if ids:
            for metric in get(rest_url, f"{base}?get={','.join(ids)}"):
                name = metric["id"].rsplit(".", 1)[-1]
                with contextlib.suppress(ValueError):  # a distribution: "DistributionResult{sum=...}"
                    totals[name] = totals.get(name, 0.0) + float(metric["value"])
    return totals


class SlotsProbe:
    """Called, whether ``taskmanagers`` have registered ``slots`` in all;
    ``last`` is the last ``/overview`` seen (for the error message)."""

    def __init__(self, rest_url: str, taskmanagers: int, slots: int) -> None:
        self.rest_url, self.taskmanagers, self.slots = rest_url, taskmanagers, slots
        self.last: Optional[Dict[str, Any]] = None

    def __call__(self) -> bool:
        try:
            self.last = overview(self.rest_url)
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return (
            self.last.get("taskmanagers", 0) >= self.taskmanagers
            and self.last.get("slots-total", 0) >= self.slots
        )
