"""Run directory store: append-only JSONL with fsync, resume, and atomic final files.

During a run every verdict is appended to samples.jsonl and fsynced, so a killed evaluation
loses at most the line being written; a torn last line is ignored on the next open. At the end
the file is rewritten atomically with exactly one line per sample of the current samples file,
in task order (stale rows from another samples file or superseded infra errors are dropped).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.errors import UserInputError
from harness.records import Results, SampleResult, Status


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file, fsync, rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_jsonl_tolerant(path: Path) -> tuple[list[dict], int]:
    """Rows of a JSONL file, skipping a torn final line. Returns (rows, torn_line_count)."""
    if not path.exists():
        return [], 0
    rows, torn = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            if i >= len(lines) - 2:  # only the last line may be torn by a crash
                torn += 1
                continue
            raise UserInputError(f"{path}:{i + 1}: corrupt line in the run store") from None
    return rows, torn


def read_graded(root: Path) -> dict[tuple[str, int, str], SampleResult]:
    """Verdicts stored in root/samples.jsonl by key (newest row wins); readable without the lock."""
    rows, _ = read_jsonl_tolerant(root / RunStore.SAMPLES)
    out: dict[tuple[str, int, str], SampleResult] = {}
    for row in rows:
        try:
            res = SampleResult.from_json(row)
        except (KeyError, ValueError):
            continue
        out[res.key] = res
    return out


def repair_tail(path: Path) -> None:
    """Cut a torn last line so appends start on a line boundary."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data.endswith(b"\n"):
            return
        f.truncate(data.rfind(b"\n") + 1)


RESULTS_SCHEMA_READ = 1


def read_results(root: Path) -> Results | None:
    """results.json of a run directory (None when there is none yet). Bad JSON, or a schema version
    this harness does not read, is a UserInputError saying what to do."""
    path = root / RunStore.RESULTS
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserInputError(f"{path}: not valid JSON ({e}); move it away to grade into this directory") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: expected a JSON object")
    version = data.get("schema_version")
    if version is None:
        raise UserInputError(
            f"{path}: no schema_version: not a harness results file of a known schema (this harness reads "
            f"schema_version {RESULTS_SCHEMA_READ}); re-grade the run with `harness evaluate RUN_DIR` to rewrite it"
        )
    if version != RESULTS_SCHEMA_READ:
        newer = isinstance(version, int) and version > RESULTS_SCHEMA_READ
        raise UserInputError(
            f"{path}: schema_version {version!r} is not readable by this harness (it reads {RESULTS_SCHEMA_READ})"
            + ("; it was written by a newer harness: upgrade harness to report it" if newer else "")
        )
    try:
        return Results.model_validate(data)
    except ValidationError as err:
        e = err.errors()[0]
        key = ".".join(str(p) for p in e["loc"])
        raise UserInputError(f"{path}: {key}: {e['msg']} (results.json schema_version 1)") from None


class RunStore:
    """One run directory. Use as a context manager: it holds an exclusive lock while open."""

    SAMPLES = "samples.jsonl"
    RESULTS = "results.json"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock_fd: int | None = None
        self._samples_f = None

    def __enter__(self) -> RunStore:
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.root / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise UserInputError(f"{self.root}: another harness process is using this run directory") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._samples_f is not None:
            self._samples_f.close()
            self._samples_f = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- samples -------------------------------------------------------------------------------
    def graded(self) -> dict[tuple[str, int, str], SampleResult]:
        """Verdicts already stored, by key; the newest row wins. Infra errors are not final."""
        return read_graded(self.root)

    def append(self, result: SampleResult) -> None:
        """Append one verdict durably."""
        if self._samples_f is None:
            path = self.root / self.SAMPLES
            repair_tail(path)
            self._samples_f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        self._samples_f.write(json.dumps(result.to_json()) + "\n")
        self._samples_f.flush()
        os.fsync(self._samples_f.fileno())

    def finalize_samples(self, results: Iterable[SampleResult]) -> None:
        """Rewrite samples.jsonl atomically with exactly these rows."""
        if self._samples_f is not None:
            self._samples_f.close()
            self._samples_f = None
        path = self.root / self.SAMPLES
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for r in results:
                f.write(json.dumps(r.to_json()) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def discard_verdicts(self) -> None:
        """Empty samples.jsonl and remove results.json and grading.json: a re-grade starts from nothing."""
        self.finalize_samples([])
        for name in (self.RESULTS, "grading.json"):
            (self.root / name).unlink(missing_ok=True)

    def write_manifest(self, manifest: BaseModel) -> None:
        """The only write of grading.json (harness/manifest.py reads it)."""
        write_json_atomic(self.root / "grading.json", manifest.model_dump(mode="json"))

    def write_results(self, results: Results) -> None:
        """The only write of results.json (called by scoring.aggregate)."""
        write_json_atomic(self.root / self.RESULTS, results.to_json())


def is_final(result: SampleResult) -> bool:
    """A stored verdict that resume keeps (everything but infra errors)."""
    return result.status is not Status.INFRA_ERROR
