import ast
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    """``__version__`` from beam_kinesis_sink/_version.py, parsed (importing the
    package would import Apache Beam, which is not installed yet)."""
    tree = ast.parse((HERE / "beam_kinesis_sink" / "_version.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"]:
            return str(ast.literal_eval(node.value))
    raise RuntimeError("no __version__ in beam_kinesis_sink/_version.py")


setup(
    name="beam-kinesis-sink",
    version=read_version(),
    description="A Python-native Apache Beam sink for Amazon Kinesis Data Streams",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    url="https://github.com/beam-kinesis-sink/beam-kinesis-sink",
    project_urls={
        "Source": "https://github.com/beam-kinesis-sink/beam-kinesis-sink",
        "Issues": "https://github.com/beam-kinesis-sink/beam-kinesis-sink/issues",
        "Documentation": "https://github.com/beam-kinesis-sink/beam-kinesis-sink#readme",
    },
    # (there is no "Framework :: Apache Beam" classifier)
    classifiers=[
        "Intended Audience :: Developers",
        "License :: OSI Approved :: Apache Software License",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Database",
        "Topic :: Software Development :: Libraries :: Python Modules",
        "Topic :: System :: Distributed Computing",
        "Typing :: Typed",
    ],
    python_requires=">=3.10",
    # One top-level import package: the repository's pipelines/ folder is
    # installed as beam_kinesis_sink.pipelines (its modules import each other
    # relatively, so the same files also work as pipelines.X from a checkout).
    packages=[
        *find_packages(include=["beam_kinesis_sink", "beam_kinesis_sink.*"]),
        "beam_kinesis_sink.pipelines",
        *(f"beam_kinesis_sink.pipelines.{sub}" for sub in find_packages("pipelines")),
    ],
    package_dir={"beam_kinesis_sink.pipelines": "pipelines"},
    package_data={"beam_kinesis_sink": ["*.avsc", "py.typed"]},
    entry_points={
        "console_scripts": [
            "beam-kinesis-migrate = beam_kinesis_sink.pipelines.migrate:main",
            "beam-kinesis-inspect = beam_kinesis_sink.pipelines.inspect_dead_letters:main",
            "beam-kinesis-replay = beam_kinesis_sink.pipelines.replay_dead_letters:main",
        ],
    },
    install_requires=[
        "apache-beam>=2.62",  # the lowest tested: make test-low
        "boto3>=1.34",
        "fastavro>=1.9",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            "ruff>=0.6",
            "psutil>=5.9",
            # an independent decoder of KPL aggregated records (tests only)
            "aws-kinesis-agg>=1.2",
            # the benchmark's chart (make test runs the benchmark's --smoke check)
            "matplotlib>=3.8",
        ],
    },
)
