#!/usr/bin/env bash
# Install everything the Flink tests need: Java + Maven (Debian packages, only
# when missing) and, via `python -m tools.flink_cluster install`, Flink and
# Beam's Flink job server into ~/.cache/beam-kinesis-sink/flink/ (from PyPI and Maven Central).
# Idempotent; a cached second run downloads nothing.
#
#   tools/flink_cluster/setup.sh      # uses $PYTHON, else .venv-beam-2.62/bin/python
#
# The Python must have this project installed (`make install-low`): the cluster
# tooling imports beam_kinesis_sink.testing.processes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if ((${#need_apt[@]})); then
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "setup.sh: missing ${need_apt[*]} and cannot apt-get install them" >&2
        exit 1
    fi
    echo "setup.sh: apt-get install ${need_apt[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

python="${PYTHON:-$root/.venv-beam-2.62/bin/python}"
if [[ ! -x "$python" ]] && ! command -v "$python" >/dev/null 2>&1; then
    echo "setup.sh: no $python; run \`make install-low\` first or set PYTHON" >&2
    exit 1
fi
cd "$root"
exec "$python" -m tools.flink_cluster install
