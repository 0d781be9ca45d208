"""Helpers for pipelines under test: collect a PCollection to files, read a stream back."""

from __future__ import annotations

import json
import os
import pickle
import uuid
from typing import Any, Dict, List

import apache_beam as beam

from beam_kinesis_sink import ClientConfig
from beam_kinesis_sink.testing.readback import read_all, shard_ranges


class _CollectFn(beam.DoFn):
    """Writes each element, with its timestamp and window, to a file per bundle.

    Works on any runner that shares this machine's file system.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def start_bundle(self) -> None:
        self._items: List[Any] = []

    def process(self, element, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
        self._items.append((element, int(timestamp.micros), repr(window)))

    def finish_bundle(self) -> None:
        if self._items:
            path = os.path.join(self.directory, f"{uuid.uuid4().hex}.pkl")
            with open(path, "wb") as f:
                pickle.dump(self._items, f)


def collect(pcoll: beam.PCollection, directory: str, label: str) -> None:
    os.makedirs(directory, exist_ok=True)
    _ = pcoll | label >> beam.ParDo(_CollectFn(directory))


def collected(directory: str) -> List[Any]:
    """[(element, timestamp_micros, window_repr)] from :func:`collect`."""
    items: List[Any] = []
    if not os.path.isdir(directory):
        return items
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            items.extend(pickle.load(f))
    return items


def client_config(server) -> ClientConfig:
    return ClientConfig(region_name="us-east-1", endpoint_url=server.endpoint_url)


def read_stream(server, stream: str) -> Dict[str, List[dict]]:
    return read_all(server.client(), stream)


def check_placement(server, stream: str, by_shard: Dict[str, List[dict]], hash_of) -> int:
    """Every record sits on the shard whose range holds its hash. Returns how many were checked."""
    ranges = {r.shard_id: r for r in shard_ranges(server.client(), stream)}
    checked = 0
    for shard_id, records in by_shard.items():
        for record in records:
            assert ranges[shard_id].holds(hash_of(record)), (shard_id, record["partition_key"])
            checked += 1
    return checked


def as_json(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))
