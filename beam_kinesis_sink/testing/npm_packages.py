"""The npm packages the local Kinesis servers are (kinesalite, kinesis-local)
and the Node.js they run on: where they are found, and their install into
the user cache.

:func:`node_modules_dir` looks, in this order, at:

1. ``$BEAM_KINESIS_SINK_NODE_MODULES``, a ``node_modules`` directory;
2. the checkout's ``node_modules`` (``npm ci`` at the repository root), when
   running from a checkout that has one;
3. the user cache, ``$XDG_CACHE_HOME/beam-kinesis-sink/npm`` (else
   ``~/.cache/beam-kinesis-sink/npm``), where the first use installs the
   pinned versions (:data:`NPM_PACKAGES`) with ``npm install`` when Node.js
   20+ and npm are on PATH. Each install goes into its own temporary
   directory and is renamed into place, so processes racing to install
   all succeed.

Otherwise :class:`LocalServerError` says what is missing.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from beam_kinesis_sink.testing.user_cache import user_cache_dir

NODE_MODULES_ENV = "BEAM_KINESIS_SINK_NODE_MODULES"
#: the npm packages of the servers, pinned as in the repository's package.json
NPM_PACKAGES = {"kinesalite": "3.3.3", "kinesis-local": "0.6.2"}
#: the oldest Node.js major version the servers run on (package.json "engines")
NODE_MAJOR = 20
NPM_INSTALL = ("install", "--no-audit", "--no-fund", "--loglevel=error")
_CHECKOUT_PACKAGE_NAME = "beam-kinesis-sink-test-servers"
#: the file of each package the launchers run
ENTRY_POINTS = {"kinesalite": "index.js", "kinesis-local": "main.js"}


class LocalServerError(RuntimeError):
    """A local Kinesis server could not be found, started or used."""


def checkout_root() -> Optional[Path]:
    """The repository root when running from a checkout (its package.json
    beside the ``beam_kinesis_sink`` package), else None (an installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    try:
        name = json.loads((root / "package.json").read_text()).get("name")
    except (OSError, ValueError):
        return None
    return root if name == _CHECKOUT_PACKAGE_NAME else None


def cache_dir() -> Path:
    """Where the user cache keeps installed npm packages."""
    return user_cache_dir("npm")


def _pins() -> str:
    return " and ".join(f"{name} {version}" for name, version in NPM_PACKAGES.items())


def node_modules_dir() -> Path:
    """The ``node_modules`` that holds the servers; see the module's docstring
    for the order. May install into the user cache (about half a minute)."""
    configured = os.environ.get(NODE_MODULES_ENV)
    if configured:
        if not Path(configured).is_dir():
            raise LocalServerError(
                f"{NODE_MODULES_ENV}={configured} is not a directory: point it at a node_modules "
                f"that holds {_pins()} (`npm ci` in a checkout makes one), or unset it"
            )
        return Path(configured)
    root = checkout_root()
    if root is not None and (root / "node_modules").is_dir():
        return root / "node_modules"
    return install_node_modules(cache_dir())


def _installed(node_modules: Path) -> bool:
    return all((node_modules / name / entry).is_file() for name, entry in ENTRY_POINTS.items())


def install_node_modules(root: Path) -> Path:
    """``<root>/<pins>/node_modules``, installed with ``npm install`` of the
    pinned versions unless it is there already.

    Safe when processes race: each installs into its own temporary directory
    under ``root`` and renames it into place; the first rename wins, the
    others find it done and drop theirs.
    """
    final = root / "+".join(f"{name}-{version}" for name, version in NPM_PACKAGES.items())
    if _installed(final / "node_modules"):
        return final / "node_modules"
    npm = _npm_binary()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".installing-", dir=root))
    try:
        _npm_install(npm, staging)
        try:
            os.rename(staging, final)
        except OSError:
            if not _installed(final / "node_modules"):  # not a finished rival's install
                raise LocalServerError(
                    f"cannot move the npm install into {final}; delete that directory and retry"
                ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final / "node_modules"


def _npm_install(npm: str, directory: Path) -> None:
    package = {"name": "beam-kinesis-sink-servers", "private": True, "dependencies": NPM_PACKAGES}
    (directory / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    try:
        done = subprocess.run(
            [npm, *NPM_INSTALL],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.TimeoutExpired as error:
        raise LocalServerError(f"`npm install` of {_pins()} took over 15 minutes") from error
    if done.returncode != 0 or not _installed(directory / "node_modules"):
        raise LocalServerError(
            f"`npm install` of {_pins()} in {directory} failed (exit code {done.returncode}):\n"
            f"{(done.stdout + done.stderr)[-4000:]}"
        )


def _missing_node() -> Optional[str]:
    """What is wrong with Node.js on PATH, or None if it will do."""
    node = shutil.which("node")
    if node is None:
        return f"Node.js {NODE_MAJOR}+ (`node` is not on PATH)"
    version = _node_version(node)
    match = re.match(r"v(\d+)\.", version)
    if match is None or int(match.group(1)) < NODE_MAJOR:
        return f"Node.js {NODE_MAJOR}+ (`{node}` is {version or 'not working'})"
    return None


@functools.cache
def _node_version(node: str) -> str:
    try:
        return subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _npm_binary() -> str:
    npm = shutil.which("npm")
    missing = [m for m in (_missing_node(), None if npm else "npm (`npm` is not on PATH)") if m]
    if missing:
        raise LocalServerError(
            f"the local Kinesis servers ({_pins()}, from npm) are not installed, and cannot be "
            f"installed into {cache_dir()}: missing {' and '.join(missing)}. Install Node.js "
            f"{NODE_MAJOR}+ with npm, or set {NODE_MODULES_ENV} to a node_modules directory that "
            "holds those packages"
        )
    assert npm is not None
    return npm


def node_binary() -> str:
    """The ``node`` on PATH, if it is Node.js 20+."""
    missing = _missing_node()
    if missing is not None:
        raise LocalServerError(f"the local Kinesis servers need {missing}")
    node = shutil.which("node")
    assert node is not None
    return node


def entry_point(package: str) -> Path:
    """The file the launcher runs of an npm package."""
    modules = node_modules_dir()
    path = modules / package / ENTRY_POINTS[package]
    if not path.is_file():
        raise LocalServerError(
            f"{path} not found: {modules} lacks {package} {NPM_PACKAGES[package]} "
            "(`npm ci` in a checkout installs it)"
        )
    return path
