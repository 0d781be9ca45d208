"""What the package installs: one version, the console scripts, the licence, one
top-level import package (``pipelines/`` goes in as ``beam_kinesis_sink.pipelines``).

Read from setup.py itself (run with ``stop_after="init"``: nothing is built),
and from the installed distribution: a stale install (setup.py changed since
``pip install -e .``) fails here on purpose; ``make install`` mends it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import zipfile
from pathlib import Path
from typing import Any

import pytest
import setuptools  # noqa: F401  (provides distutils on Python 3.12)

import beam_kinesis_sink
from pipelines import common

REPO = Path(__file__).resolve().parents[2]
DIST = "beam-kinesis-sink"
#: sha256 of the Apache License 2.0 as apache.org publishes it (LICENSE-2.0.txt)
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
SCRIPTS = {
    "beam-kinesis-migrate": "beam_kinesis_sink.pipelines.migrate:main",
    "beam-kinesis-inspect": "beam_kinesis_sink.pipelines.inspect_dead_letters:main",
    "beam-kinesis-replay": "beam_kinesis_sink.pipelines.replay_dead_letters:main",
}


@pytest.fixture(scope="module")
def setup_py() -> Any:
    """setup.py's Distribution, as setup() saw its arguments."""
    from distutils.core import run_setup  # setuptools' own on Python 3.12 (imported above)

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return run_setup("setup.py", stop_after="init")
    finally:
        os.chdir(cwd)


def console_scripts(entry_points: list[str]) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in entry_points)
    return {name.strip(): target.strip() for name, target in pairs}


def test_one_version(setup_py: Any) -> None:
    from beam_kinesis_sink._version import __version__

    assert setup_py.get_version() == beam_kinesis_sink.__version__ == __version__
    assert "__version__ =" not in (REPO / "beam_kinesis_sink" / "__init__.py").read_text()


def test_metadata(setup_py: Any) -> None:
    assert setup_py.get_license() == "Apache-2.0"
    classifiers = setup_py.get_classifiers()
    assert "License :: OSI Approved :: Apache Software License" in classifiers
    for minor in (10, 11, 12):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert setup_py.metadata.project_urls
    assert "py.typed" in setup_py.package_data["beam_kinesis_sink"]
    assert (REPO / "beam_kinesis_sink" / "py.typed").is_file()


def test_one_top_level_package(setup_py: Any) -> None:
    assert {p.split(".")[0] for p in setup_py.packages} == {"beam_kinesis_sink"}
    assert "beam_kinesis_sink.pipelines" in setup_py.packages
    assert setup_py.package_dir == {"beam_kinesis_sink.pipelines": "pipelines"}
    # every pattern of package data matches a file
    for package, patterns in setup_py.package_data.items():
        folder = REPO / setup_py.package_dir.get(package, package.replace(".", "/"))
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"{package}: {pattern} matches nothing"


def test_pipelines_import_each_other_relatively() -> None:
    """So that the same files work as ``pipelines.X`` and as ``beam_kinesis_sink.pipelines.X``."""
    for path in sorted((REPO / "pipelines").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "from pipelines" not in text and "import pipelines" not in text, path.name


def test_console_scripts_are_the_commands(setup_py: Any) -> None:
    scripts = console_scripts(setup_py.entry_points["console_scripts"])
    assert scripts == SCRIPTS
    # the hints the commands print name the same scripts
    assert {f"beam_kinesis_sink.pipelines.{m}:main": s for m, s in common.SCRIPTS.items()} == {
        t: s for s, t in scripts.items()
    }
    for target in scripts.values():
        module, attr = target.split(":")
        # where setup.py's package_dir puts the module, in this checkout
        in_checkout = module.replace("beam_kinesis_sink.pipelines", "pipelines", 1)
        main = getattr(importlib.import_module(in_checkout), attr)
        assert callable(main)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
            main(["--version"])
        assert exit_.value.code == 0
        assert out.getvalue().strip().endswith(f"(beam-kinesis-sink) {beam_kinesis_sink.__version__}")


def test_the_installed_distribution_is_setup_pys(setup_py: Any) -> None:
    """Run where the project is installed (make install: pip install -e .)."""
    dist = importlib.metadata.distribution(DIST)
    assert dist.version == setup_py.get_version()
    installed = {ep.name: ep for ep in dist.entry_points if ep.group == "console_scripts"}
    assert {name: ep.value for name, ep in installed.items()} == SCRIPTS, (
        "the installed entry points are not setup.py's: reinstall (make install)"
    )
    for ep in installed.values():
        main = ep.load()  # imports beam_kinesis_sink.pipelines.<module>
        assert callable(main) and main.__module__.startswith("beam_kinesis_sink.pipelines.")
    # an editable install maps beam_kinesis_sink.pipelines to the checkout's pipelines/
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct_url.get("dir_info", {}).get("editable"):
        checkout = Path(urllib.parse.urlparse(direct_url["url"]).path)
        package = importlib.import_module("beam_kinesis_sink.pipelines")
        assert Path(str(package.__file__)) == checkout / "pipelines" / "__init__.py"


def test_license_is_apache_2() -> None:
    text = (REPO / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == APACHE_2_SHA256
    assert b"Apache License\n                           Version 2.0, January 2004" in text


@pytest.mark.slow
def test_the_wheel_holds_one_top_level_package(tmp_path: Path) -> None:
    """Builds the wheel from a copy of the sources (pip, isolated build: fetches setuptools)."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("beam_kinesis_sink", "pipelines"):
        shutil.copytree(REPO / folder, source / folder, ignore=ignore)
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist")]
    subprocess.run([*build, str(source)], check=True, timeout=300, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("beam_kinesis_sink-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"beam_kinesis_sink-{beam_kinesis_sink.__version__}.dist-info"
        top_level = archive.read(f"{info}/top_level.txt").decode().split()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert top_level == ["beam_kinesis_sink"]
    assert {name.split("/")[0] for name in names} == {"beam_kinesis_sink", info}
    for module in ("__init__", "migrate", "inspect_dead_letters", "replay_dead_letters", "launch"):
        assert f"beam_kinesis_sink/pipelines/{module}.py" in names
    for data in ("py.typed", "dead_letter.avsc"):
        assert f"beam_kinesis_sink/{data}" in names
    assert any(name.startswith(info) and name.endswith("/LICENSE") for name in names), names
    for script, target in SCRIPTS.items():
        assert f"{script} = {target}" in entry_points


def test_public_names_are_lazy_and_complete():
    import beam_kinesis_sink

    assert sorted(beam_kinesis_sink.__all__) == sorted(beam_kinesis_sink._EXPORTS)
    for name in beam_kinesis_sink.__all__:
        assert getattr(beam_kinesis_sink, name).__name__ == name


def test_the_test_kit_starts_without_importing_beam():
    # The fault front and the local servers run as processes of their own:
    # they must not pay for importing Apache Beam.
    code = ("import sys, beam_kinesis_sink.testing.fault_front.cli, beam_kinesis_sink.testing.local_servers; "
            "print('apache_beam' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
