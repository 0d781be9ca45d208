"""The user's cache folder, for what the project's tests and tools download
once per machine and keep between runs and clones: the npm Kinesis servers,
Flink and Beam's Flink job server, Beam's SDK boot.

``$XDG_CACHE_HOME/beam-kinesis-sink`` (``~/.cache/beam-kinesis-sink``).
"""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir(*parts: str) -> Path:
    """``<user cache>/beam-kinesis-sink/<parts...>`` (not created)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "beam-kinesis-sink", *parts)
