"""What the command-line pipelines share: arguments, AWS settings, files, exit codes."""

from __future__ import annotations

import argparse
import datetime
import logging
import math
import os
import sys
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional, Sequence

from beam_kinesis_sink._version import __version__
from beam_kinesis_sink.client import ClientConfig, stream_arguments, stream_name_of
from beam_kinesis_sink.limits import lone_surrogate

from .output import eprint

#: nothing was dead-lettered
EXIT_OK = 0
#: the pipeline failed (an error that is neither bad input nor a usage error)
EXIT_FAILED = 1
#: usage error, or an input that cannot be read at all
EXIT_USAGE = 2
#: the run finished and some records were dead-lettered (or could not be replayed)
EXIT_DEAD_LETTERS = 3

_GLOB_CHARS = set("*?[")


class UsageError(Exception):
    """Bad arguments or an input that cannot be used at all: exit code 2."""


#: each command's console script (setup.py's entry_points say the same)
SCRIPTS = {
    "migrate": "beam-kinesis-migrate",
    "inspect_dead_letters": "beam-kinesis-inspect",
    "replay_dead_letters": "beam-kinesis-replay",
}


def command(module: str) -> str:
    """How a user runs the command ``module`` the way this process was started:
    its console script, or ``python -m <this package>.<module>``."""
    started_as = os.path.splitext(os.path.basename(sys.argv[0] if sys.argv else ""))[0]
    if started_as in SCRIPTS.values():
        return SCRIPTS[module]
    return f"python -m {__package__}.{module}"


def run_command(label: str, run: Callable[[], int]) -> int:
    """``run()``'s exit code; a :class:`UsageError` is said on stderr and is exit code 2."""
    try:
        return run()
    except UsageError as exc:
        eprint(f"{label}: error: {exc}")
        return EXIT_USAGE


# --------------------------------------------------------------------------
# Arguments


def command_parser(module: str, description: str) -> argparse.ArgumentParser:
    """The parser of a command, with ``--version``."""
    parser = argparse.ArgumentParser(prog=command(module), description=description, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"%(prog)s (beam-kinesis-sink) {__version__}")
    return parser


def positive(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r} (leave it out for no cap)")
    return value


def seconds_or_none(text: str) -> float:
    """``--progress-interval``: 0 (no progress lines) or a finite number of seconds."""
    value = float(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be 0 (no progress lines) or a number of seconds, "
                                         f"not {text!r}")
    return value


def add_write_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the commands that write to a stream: rate cap, rate limiter, progress."""
    parser.add_argument("--max-records-per-second", type=positive, metavar="N",
                        help="cap on the whole job's write rate, e.g. to leave room for live producers; "
                        "divided evenly among the workers "
                        "(--num_workers/--max_num_workers/--direct_num_workers/--parallelism)")
    parser.add_argument("--no-rate-limit", action="store_true",
                        help="turn off the per-shard rate limiter (1,000 records/s per shard); "
                        "for local Kinesis servers")
    parser.add_argument("--progress-interval", type=seconds_or_none, default=5.0, metavar="SECONDS",
                        help="seconds between progress lines (default 5; 0: none)")


def add_aws_arguments(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """``--endpoint-url`` and the AWS region.

    ``--region`` is the AWS region, as the issue asks. It shadows Dataflow's
    own ``--region``: when ``--aws-region`` is given, ``--region`` is left to
    Beam instead.
    """
    parser.add_argument(
        "--endpoint-url", help="Kinesis endpoint, e.g. http://localhost:4567 for a local server"
    )
    parser.add_argument(
        "--aws-region",
        help="AWS region of the stream; when given, --region is passed on to Beam (e.g. Dataflow's region)",
    )
    if not any(a == "--aws-region" or a.startswith("--aws-region=") for a in argv):
        parser.add_argument(
            "--region", dest="aws_region", help="AWS region of the stream (same as --aws-region)"
        )


def split_beam_arguments(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[argparse.Namespace, list[str]]:
    """Our arguments, and the rest for Beam. An argument that neither we nor
    Beam know is a usage error (Beam would only log and drop it)."""
    args, rest = parser.parse_known_args(list(argv))
    unknown = unknown_beam_arguments(rest)
    if unknown:
        parser.error(
            "unrecognized arguments: " + " ".join(unknown)
            + " (neither an option of this command nor a Beam pipeline option)"
        )
    return args, rest


def unknown_beam_arguments(beam_args: Sequence[str]) -> list[str]:
    from apache_beam.options.pipeline_options import PipelineOptions

    if not beam_args:
        return []
    options = PipelineOptions(list(beam_args))
    beam_logger = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_logger.level
    beam_logger.setLevel(logging.ERROR)
    try:
        known = options.get_all_options()
        everything = options.get_all_options(retain_unknown_options=True)
    finally:
        beam_logger.setLevel(level)
    extra = {k for k in everything if k not in known}
    unknown = []
    for arg in beam_args:
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0].replace("-", "_")
            if name in extra:
                unknown.append(arg)
    return unknown


def resolve_region(region: Optional[str]) -> str:
    """The region given, else boto3's (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile)."""
    if region:
        return region
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        import boto3

        found = boto3.session.Session().region_name
    except Exception:
        found = None
    if not found:
        raise UsageError("no AWS region: pass --region REGION or set AWS_REGION")
    return str(found)


def client_config(args: argparse.Namespace) -> ClientConfig:
    try:
        return ClientConfig(region_name=resolve_region(args.aws_region), endpoint_url=args.endpoint_url)
    except ValueError as exc:  # an endpoint that is no URL, a region that is no region name
        named = str(exc).replace("endpoint_url", "--endpoint-url").replace("region_name", "--region")
        raise UsageError(named) from None


def stream_argument(text: str) -> str:
    """``--stream``: a stream name or ARN, as the sink takes them."""
    from beam_kinesis_sink.stream_routes import STREAM_FORMS, is_stream

    if not is_stream(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not {STREAM_FORMS}")
    return text


def buffered_records_for(rate: Optional[float], default: int = 20_000) -> int:
    """The sink's per-worker buffer bound for a capped rate: about a minute of
    records (at least 1,000), so that the final flush of a bundle stays well
    within the sink's flush deadline (600 s) even at a low cap."""
    if not rate:
        return default
    return max(1_000, min(default, int(rate * 60)))


def worker_count(options: Any) -> int:
    """How many workers write at once, from the Beam options given (at least 1):
    the largest of ``--num_workers``, ``--max_num_workers``, ``--direct_num_workers``
    and ``--parallelism``."""
    all_options = options.get_all_options()
    counts = []
    for name in ("num_workers", "max_num_workers", "direct_num_workers", "parallelism"):
        value = all_options.get(name)
        if isinstance(value, int):
            if name == "direct_num_workers" and value == 0:
                value = os.cpu_count() or 1
            if value > 0:
                counts.append(value)
    return max(counts, default=1)


def per_worker_rate(rate: Optional[float], options: Any) -> tuple[Optional[float], int]:
    """``(the rate cap of each worker, the number of workers)`` for a whole job's cap."""
    workers = worker_count(options)
    return (rate / workers if rate else None), workers


class StreamCheck(NamedTuple):
    #: DescribeStreamSummary said ResourceNotFoundException
    missing: bool
    #: what DescribeStreamSummary raised, if anything
    error: Optional[Exception]


def check_stream(config: ClientConfig, stream: str) -> StreamCheck:
    """Whether the stream exists (one DescribeStreamSummary call)."""
    try:
        config.create_client().describe_stream_summary(**stream_arguments(stream))
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        return StreamCheck(code == "ResourceNotFoundException", exc)
    return StreamCheck(False, None)


# --------------------------------------------------------------------------
# Files


def has_glob(path: str) -> bool:
    return any(c in _GLOB_CHARS for c in path)


def _is_local_dir(path: str) -> bool:
    return "://" not in path and os.path.isdir(path)


def match_files(patterns: Iterable[str], dir_glob: str = "*") -> dict[str, list[str]]:
    """``{pattern: [file, ...]}`` on any Beam filesystem. A directory (local, or
    any path ending in ``/``) stands for ``DIR/<dir_glob>``. Directories and
    the temporary files of Beam sinks (``.temp-beam-*``) are left out."""
    from apache_beam.io.filesystems import FileSystems

    found: dict[str, list[str]] = {}
    for pattern in patterns:
        query = pattern
        if not has_glob(pattern) and (pattern.endswith("/") or _is_local_dir(pattern)):
            query = FileSystems.join(pattern.rstrip("/") if "://" not in pattern else pattern, dir_glob)
        try:
            metadata = FileSystems.match([query])[0].metadata_list
        except Exception as exc:
            raise UsageError(f"cannot list {pattern}: {exc}") from exc
        paths = []
        for m in metadata:
            path = m.path
            parts = path.replace("\\", "/").split("/")
            if any(part.startswith(".temp-beam") for part in parts):  # a Beam sink's temporary files
                continue
            if _is_local_dir(path):
                continue
            paths.append(path)
        found[pattern] = sorted(paths)
    return found


def expand_inputs(patterns: Sequence[str], dir_glob: str = "*") -> list[str]:
    """Every file the patterns match, sorted, each once; UsageError if a pattern matches nothing."""
    matched = match_files(patterns, dir_glob)
    empty = [p for p, files in matched.items() if not files]
    if empty:
        raise UsageError("no file matches " + ", ".join(repr(p) for p in empty))
    files: list[str] = []
    seen: set[str] = set()
    for pattern in patterns:
        for path in matched[pattern]:
            if path not in seen:
                seen.add(path)
                files.append(path)
    unnamable = [path for path in files if lone_surrogate(path)]
    if unnamable:
        raise UsageError(
            f"{len(unnamable):,} file name(s) are not valid UTF-8, which Beam cannot carry (its coders "
            f"write names as UTF-8): {', '.join(_shown(path) for path in unnamable[:5])}"
            f"{' ...' if len(unnamable) > 5 else ''}. Rename them (e.g. with convmv), then run again; "
            "nothing was read or written")
    return files


def _shown(path: str) -> str:
    """A file name that is not valid UTF-8 (decoded with surrogateescape, as
    Python does for names on a POSIX disk), with its bad bytes as ``\\xff``."""
    return "'" + os.fsencode(path).decode("utf-8", "backslashreplace") + "'"


def utc_stamp(now: Optional[datetime.datetime] = None) -> str:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ")


def default_dead_letter_dir(stream: str, kind: str = "") -> str:
    name = stream_name_of(stream)
    suffix = f"-{kind}" if kind else ""
    return os.path.join(".", "dead-letters", f"{name}{suffix}-{utc_stamp()}") + "/"


def as_dir(path: str) -> str:
    return path if path.endswith("/") else path + "/"


def count_dead_letters(paths: Sequence[str]) -> int:
    """Dead letters in these files: the fallback when a runner reports no metrics."""
    from beam_kinesis_sink.dead_letter_io import read_file

    return sum(1 for path in paths for _ in read_file(path))


def dead_letter_listing(
    file_prefix: str, counts: Mapping[str, int], dead: int, title: str = "dead-letter files"
) -> tuple[list[str], int]:
    """The summary's last lines, naming this run's dead-letter files (those
    named ``file_prefix...``: ``dead_letter_io.file_prefix``) and their directory, and the number of dead
    letters: ``dead``, or when the runner reported no metrics (``counts`` is
    empty), the dead letters counted in those files."""
    directory = as_dir(os.path.dirname(file_prefix))
    files = dead_letter_files(directory, file_prefix)
    lines = []
    if not counts:
        dead = count_dead_letters(files)
        lines.append(f"  (this runner reported no metrics; {dead:,} dead letters counted in the files)")
    lines.append(f"  {title} ({directory}):")
    # Beam's file sink writes a file even when it has nothing to write: say so.
    empty = "  (empty: no dead letters this run)" if dead == 0 else ""
    lines += [f"    {f}{empty}" for f in files] or ["    (none)"]
    return lines, dead


def dead_letter_files(directory: str, file_prefix: Optional[str] = None) -> list[str]:
    """The dead-letter files under ``directory`` (those of one run, given its ``file_prefix``)."""
    from beam_kinesis_sink.dead_letter_io import FILE_PREFIX, FILE_SUFFIX

    pattern = (file_prefix or as_dir(directory) + FILE_PREFIX) + "*" + FILE_SUFFIX
    try:
        return match_files([pattern])[pattern]
    except UsageError:
        return []
