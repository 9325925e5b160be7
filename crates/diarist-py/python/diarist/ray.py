"""Diarization of many recordings on a Ray cluster: :func:`diarize_dataset`.

Needs Ray Data (``pip install 'diarist[ray]'``), and this package installed on every node.

>>> from diarist.ray import diarize_dataset
>>> summary = diarize_dataset(["s3://bucket/calls/"], "s3://bucket/rttm/")
>>> summary["done"], summary["skipped"], summary["failed"]

Each input is diarized by one actor of a pool spread over the cluster's nodes; an actor loads the
models once and keeps them. Its RTTM and JSON are written into the output directory exactly as
``diarist diarize -o DIR --format rttm|json`` writes them (same names, same text), each
atomically; inputs whose outputs all exist are skipped, so a run that stopped resumes where it
was, and an input that cannot be diarized is recorded with its reason without stopping the
others. A node lost mid-run costs only the inputs it held at the time, which Ray retries on
another actor.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import posixpath
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

try:
    import pyarrow as pa
    import pyarrow.fs as pafs
    import ray
    import ray.data
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError(
        "diarist.ray needs Ray Data, which is not installed: pip install 'diarist[ray]'"
    ) from e

from .pipeline import Diarization, Pipeline, _count

#: Extensions (any case) of the files taken from a directory, as ``diarist diarize`` takes them.
AUDIO_EXTENSIONS = frozenset({"wav", "flac", "mp3", "ogg", "oga", "m4a", "mp4", "aac", "wave"})
#: The output formats: an extension each, text as the command line's ``--format`` writes it.
FORMATS = ("rttm", "json")
#: Written into the output directory at the end of every run: one JSON object per input that
#: failed in that run (``input``, ``file_id``, ``error``), nothing when none failed.
FAILURES_FILE = "failures.jsonl"
#: pyarrow filesystems (``type_name``) whose objects appear whole or not at all.
OBJECT_STORES = frozenset({"s3", "gcs", "abfs"})

__all__ = [
    "AUDIO_EXTENSIONS",
    "FAILURES_FILE",
    "FORMATS",
    "OBJECT_STORES",
    "Failure",
    "Summary",
    "diarize_dataset",
    "file_id",
]


class Failure(TypedDict):
    """An input that could not be diarized or written, and why."""

    input: str
    file_id: str
    error: str


class Summary(TypedDict):
    """What :func:`diarize_dataset` did with each input (inputs as named or found, in order).

    ``done``: diarized and written in this run; ``skipped``: every output existed already;
    ``failed``: the inputs that failed, with their reasons (also in ``failures.jsonl``);
    ``output_dir``: where the outputs are; ``nodes``: how many of the inputs done each Ray node
    (by node id) diarized."""

    done: list[str]
    skipped: list[str]
    failed: list[Failure]
    output_dir: str
    nodes: dict[str, int]


# --- inputs and outputs, on the driver ----------------------------------------------------------


def file_id(path: str) -> str:
    """The RTTM file id and output name of an input, as the command line gives it: the file's
    name without its last extension (``a/b.c.wav`` gives ``b.c``, ``.x`` gives ``.x``)."""
    name = posixpath.basename(path.rstrip("/"))
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name or "audio"


def _resolve(
    location: str | os.PathLike[str], filesystem: pafs.FileSystem | None
) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path of an input or output location: ``filesystem`` with the path as
    given, or one pyarrow finds from a URI (``s3://...``, ``gs://...``, ``hdfs://...``,
    ``file://...``), else the local filesystem with the path made absolute."""
    location = os.fspath(location)
    if filesystem is not None:
        return filesystem, location
    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), os.path.abspath(location)


def _label(location: str, path: str) -> str:
    """How an input is named in the summary: the path, with the scheme of a URI it came from."""
    scheme = location.split("://", 1)[0] if "://" in location else ""
    return f"{scheme}://{path}" if scheme and scheme != "file" else path


def _is_audio(path: str) -> bool:
    """Whether a file met in a directory is taken as audio, by its extension."""
    return posixpath.splitext(path)[1][1:].lower() in AUDIO_EXTENSIONS


def _expand(fs: pafs.FileSystem, path: str) -> tuple[list[str], str | None]:
    """The files an input names (itself, or the audio files under a directory, sorted), or why
    there are none (missing)."""
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return [], "no such file or directory"
    if info.type != pafs.FileType.Directory:
        return [path], None
    found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    return sorted(f.path for f in found if f.is_file and _is_audio(f.path)), None


def _collect(
    inputs: Iterable[str | os.PathLike[str]], filesystem: pafs.FileSystem | None
) -> tuple[list[pafs.FileSystem], list[dict[str, Any]], list[Failure]]:
    """The input files as rows (``input`` label, ``fs`` index into the returned filesystems,
    ``path``, ``file_id``), each file once, and the named inputs that do not exist."""
    filesystems: list[pafs.FileSystem] = []
    rows: list[dict[str, Any]] = []
    missing: list[Failure] = []
    seen: set[tuple[int, str]] = set()
    for location in inputs:
        fs, path = _resolve(location, filesystem)
        index = next((i for i, f in enumerate(filesystems) if f.equals(fs)), len(filesystems))
        if index == len(filesystems):
            filesystems.append(fs)
        files, why = _expand(fs, path)
        if why:
            label = _label(os.fspath(location), path)
            missing.append(Failure(input=label, file_id=file_id(path), error=why))
        for f in files:
            if (index, f) not in seen:
                seen.add((index, f))
                label = _label(os.fspath(location), f)
                rows.append({"input": label, "fs": index, "path": f, "file_id": file_id(f)})
    return filesystems, rows, missing


def _refuse_shared_ids(rows: Sequence[Mapping[str, Any]]) -> None:
    """Raises ``ValueError`` naming every group of inputs that share a file id: they would write
    the same output file under the same RTTM file id (the command line refuses them too)."""
    by_id: dict[str, list[str]] = {}
    for row in rows:
        by_id.setdefault(row["file_id"], []).append(row["input"])
    clashes = sorted((i, names) for i, names in by_id.items() if len(names) > 1)
    if clashes:
        named = "; ".join(f"`{i}`: {', '.join(names)}" for i, names in clashes)
        raise ValueError(
            f"inputs share a file id, so they would write the same output file: {named}; "
            "rename them or diarize them in separate runs with separate output directories"
        )


def _output_path(out_dir: str, fid: str, fmt: str) -> str:
    """Where input ``fid``'s output in format ``fmt`` goes."""
    return posixpath.join(out_dir, f"{fid}.{fmt}")


def _already_written(
    rows: Sequence[Mapping[str, Any]], out_fs: pafs.FileSystem, out_dir: str, formats: Sequence[str]
) -> set[str]:
    """The file ids whose outputs in every format exist already (the output directory listed
    once: one paged listing on an object store, not a request per output)."""
    selector = pafs.FileSelector(out_dir, allow_not_found=True)
    names = {posixpath.basename(i.path) for i in out_fs.get_file_info(selector) if i.is_file}
    return {r["file_id"] for r in rows if all(f"{r['file_id']}.{f}" in names for f in formats)}


def _write_atomic(fs: pafs.FileSystem, path: str, text: str) -> None:
    """Writes ``text`` to ``path`` on ``fs`` atomically: straight to an object store (which
    publishes an object whole when its upload completes), elsewhere a temporary file beside it
    and then a move over it (a rename), the temporary file removed if anything fails."""
    if fs.type_name in OBJECT_STORES:
        with fs.open_output_stream(path, compression=None) as out:
            out.write(text.encode())
        return
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with fs.open_output_stream(tmp, compression=None) as out:
            out.write(text.encode())
        fs.move(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            fs.delete_file(tmp)
        raise


def _checked_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """``formats`` without repeats, each one of :data:`FORMATS`; at least one."""
    if isinstance(formats, str):
        formats = (formats,)
    chosen = tuple(dict.fromkeys(formats))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ValueError(f"formats must be some of {FORMATS}, not {tuple(formats)!r}")
    return chosen


def _check_pool(num_actors: int | None, num_cpus_per_actor: int) -> None:
    """Refuses a pool size or CPU count that is not a positive integer."""
    for name, value in (("num_actors", num_actors), ("num_cpus_per_actor", num_cpus_per_actor)):
        if value is None and name == "num_actors":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")


def _read_config(config: str | os.PathLike[str] | None) -> str | None:
    """The configuration file's text (shipped to every actor, whose node may not have the file),
    after checking on the driver that a pipeline loads with it."""
    if config is None:
        return None
    Pipeline(config)  # a bad file fails here, with its ConfigError, before any work
    with open(config, encoding="utf-8") as f:
        return f.read()


# --- the actors ---------------------------------------------------------------------------------


def _load_pipeline(config_text: str | None) -> Pipeline:
    """A pipeline with the configuration text given (through a temporary file, which the
    pipeline reads as it loads), or the defaults."""
    if config_text is None:
        return Pipeline()
    with tempfile.NamedTemporaryFile("w", prefix="diarist-", suffix=".toml") as f:
        f.write(config_text)
        f.flush()
        return Pipeline(f.name)


class _Diarizer:
    """One actor of the pool: a :class:`Pipeline` loaded once, diarizing the rows of each batch
    it is given on up to ``threads`` threads at once (the pipeline releases the GIL and keeps a
    set of models per concurrent call), writing each input's outputs itself."""

    def __init__(
        self,
        *,
        config_text: str | None,
        filesystems: list[pafs.FileSystem],
        out_fs: pafs.FileSystem,
        out_dir: str,
        formats: tuple[str, ...],
        counts: dict[str, int | None],
        threads: int,
    ) -> None:
        self._pipeline = _load_pipeline(config_text)
        self._filesystems = filesystems
        self._out = (out_fs, out_dir)
        self._formats = formats
        self._counts = counts
        self._threads = concurrent.futures.ThreadPoolExecutor(max(1, threads))
        self._node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: pa.Table) -> pa.Table:
        """The outcome of each row of ``batch`` (``status`` done or failed, ``error``)."""
        results = list(self._threads.map(self._one, batch.to_pylist()))
        return pa.Table.from_pylist(results)

    def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        """Diarizes one input and writes its outputs; any error becomes its recorded reason."""
        start = time.monotonic()
        status, error = "done", ""
        try:
            self._write(row["file_id"], self._diarize(row))
        except Exception as e:  # noqa: BLE001 - every reason is recorded, none stops the run
            status, error = "failed", f"{type(e).__name__}: {e}"
        return {
            "input": row["input"],
            "file_id": row["file_id"],
            "status": status,
            "error": error,
            "node": self._node,
            "seconds": time.monotonic() - start,
        }

    def _diarize(self, row: Mapping[str, Any]) -> Diarization:
        """Diarizes the row's file: a local file where it is, any other first copied into a
        temporary file (with its extension, which the decoder may go by)."""
        fs, path = self._filesystems[row["fs"]], row["path"]
        if isinstance(fs, pafs.LocalFileSystem):
            return self._pipeline.diarize(path, **self._counts)
        suffix = posixpath.splitext(path)[1]
        with tempfile.NamedTemporaryFile(prefix="diarist-", suffix=suffix) as local:
            with fs.open_input_stream(path, compression=None) as src:
                while chunk := src.read(1 << 20):
                    local.write(chunk)
            local.flush()
            return self._pipeline.diarize(local.name, **self._counts)

    def _write(self, fid: str, result: Diarization) -> None:
        """Writes the result in every format, each file atomically (RTTM last)."""
        out_fs, out_dir = self._out
        render = {"rttm": result.to_rttm, "json": result.to_json}
        for fmt in sorted(self._formats, key=lambda f: f == "rttm"):
            _write_atomic(out_fs, _output_path(out_dir, fid, fmt), render[fmt](fid))


# --- the run ------------------------------------------------------------------------------------


def _compute(num_actors: int | None, num_cpus_per_actor: int, batches: int) -> Any:
    """The actor pool: ``num_actors`` actors, else from one up to as many as the cluster's CPUs
    hold; never more than there are batches."""
    if num_actors is not None:
        return ray.data.ActorPoolStrategy(size=max(1, min(num_actors, batches)))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    most = max(1, min(cpus // num_cpus_per_actor, batches))
    return ray.data.ActorPoolStrategy(min_size=1, max_size=most)


def _run(
    rows: list[dict[str, Any]],
    actor_args: dict[str, Any],
    num_actors: int | None,
    num_cpus_per_actor: int,
    ray_remote_args: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Diarizes ``rows`` on the actor pool (one block per input, so that inputs spread over the
    actors) and returns each input's outcome."""
    batches = -(-len(rows) // num_cpus_per_actor)
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    out = ds.map_batches(
        _Diarizer,
        batch_size=num_cpus_per_actor,
        batch_format="pyarrow",
        compute=_compute(num_actors, num_cpus_per_actor, batches),
        num_cpus=num_cpus_per_actor,
        fn_constructor_kwargs=actor_args,
        **ray_remote_args,
    )
    return list(out.iter_rows())


def _summarize(
    rows: list[dict[str, Any]],
    skipped: set[str],
    outcomes: list[dict[str, Any]],
    missing: list[Failure],
    output_dir: str,
) -> Summary:
    """The summary, inputs in the order they were collected; an input whose outcome never came
    back (it should not happen) is failed with that reason."""
    by_id = {o["file_id"]: o for o in outcomes}
    done: list[str] = []
    failed: list[Failure] = list(missing)
    nodes: dict[str, int] = {}
    for r in rows:
        if r["file_id"] in skipped:
            continue
        o = by_id.get(r["file_id"], {"status": "failed", "error": "no outcome came back"})
        if o["status"] == "done":
            done.append(r["input"])
            nodes[o["node"]] = nodes.get(o["node"], 0) + 1
        else:
            failed.append(Failure(input=r["input"], file_id=r["file_id"], error=o["error"]))
    skipped_inputs = [r["input"] for r in rows if r["file_id"] in skipped]
    return Summary(
        done=done, skipped=skipped_inputs, failed=failed, output_dir=output_dir, nodes=nodes
    )


def diarize_dataset(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    *,
    num_actors: int | None = None,
    num_cpus_per_actor: int = 1,
    config: str | os.PathLike[str] | None = None,
    formats: Iterable[str] = FORMATS,
    filesystem: pafs.FileSystem | None = None,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    address: str | None = None,
    ray_remote_args: Mapping[str, Any] | None = None,
) -> Summary:
    """Diarizes every input on a Ray cluster and writes ``<output_dir>/<file id>.rttm`` and
    ``.json`` for each, as ``diarist diarize -o output_dir`` does; returns a :class:`Summary`.

    ``inputs``: audio files, or directories searched recursively for audio files (by
    extension, as the command line does), as local paths or URIs of any filesystem pyarrow
    supports (``s3://bucket/calls/``); with ``filesystem`` (a ``pyarrow.fs.FileSystem``),
    ``inputs`` and ``output_dir`` are paths in it. Local paths must name the same files on
    every node (a shared mount). Inputs that share a file id (the name without its extension)
    are refused with ``ValueError`` before any work, as the command line refuses them.

    Each actor reserves ``num_cpus_per_actor`` CPUs, loads the models once and diarizes that
    many inputs at a time, one thread each. ``num_actors`` fixes the pool's size; ``None``
    scales it from one actor to as many as the cluster's CPUs hold. ``config`` is a
    configuration file (only the keys it changes; read here and sent to every actor, so paths
    in it must be absolute or model names); ``num_speakers``, ``min_speakers`` and
    ``max_speakers`` are as for :meth:`Pipeline.diarize`. ``formats`` chooses among
    ``"rttm"`` and ``"json"``.

    Inputs whose outputs in every format exist already are skipped. Each output is written
    atomically through the output's filesystem (a temporary file and a rename; on an object
    store, the object itself). An input that cannot be read, decoded or diarized is recorded in
    the summary's ``failed`` with its reason, and in ``<output_dir>/failures.jsonl`` (rewritten
    each run); the others go on. A node lost mid-run costs only the inputs its actors held:
    Ray restarts the actors and retries them (a fixed pool's lost actor waits for room on the
    remaining nodes).

    Connects to the running Ray instance, else ``ray.init(address=address)`` (``None``: the
    ``RAY_ADDRESS`` cluster, else a local one). ``ray_remote_args`` go to the actors (such as
    ``{"resources": {...}}``, ``{"runtime_env": {...}}``).
    """
    _check_pool(num_actors, num_cpus_per_actor)
    formats = _checked_formats(formats)
    counts = {
        "num_speakers": _count("num_speakers", num_speakers),
        "min_speakers": _count("min_speakers", min_speakers),
        "max_speakers": _count("max_speakers", max_speakers),
    }
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    filesystems, rows, missing = _collect(inputs, filesystem)
    _refuse_shared_ids(rows)
    config_text = _read_config(config)
    out_fs, out_dir = _resolve(output_dir, filesystem)
    out_fs.create_dir(out_dir, recursive=True)
    skipped = _already_written(rows, out_fs, out_dir, formats)
    pending = [r for r in rows if r["file_id"] not in skipped]
    outcomes: list[dict[str, Any]] = []
    if pending:
        if not ray.is_initialized():
            ray.init(address=address)
        actor_args = {
            "config_text": config_text,
            "filesystems": filesystems,
            "out_fs": out_fs,
            "out_dir": out_dir,
            "formats": formats,
            "counts": counts,
            "threads": num_cpus_per_actor,
        }
        outcomes = _run(pending, actor_args, num_actors, num_cpus_per_actor, ray_remote_args or {})
    summary = _summarize(rows, skipped, outcomes, missing, os.fspath(output_dir))
    failures = "".join(json.dumps(f) + "\n" for f in summary["failed"])
    _write_atomic(out_fs, posixpath.join(out_dir, FAILURES_FILE), failures)
    return summary
