"""The run directory of `harness run`: config.yaml, generations.jsonl and generation.json.

This module is the one reader and the one writer of those three files; samples.jsonl and
results.json belong to store.py. generations.jsonl is append-only and fsynced per batch, so a
killed run loses at most the batch in flight; the newest row of a (task, sample) wins on read.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from harness.errors import UserInputError
from harness.records import GenerationRow
from harness.redact import has_credentials, redact_data, redact_text
from harness.store import read_jsonl_tolerant, repair_tail, write_json_atomic

CONFIG_FILE = "config.yaml"
GENERATIONS = "generations.jsonl"
GEN_PROVENANCE = "generation.json"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_run_id(run_id: str | None) -> None:
    """A run id names a directory under --out; it is never a path."""
    if run_id is not None and (not _RUN_ID.match(run_id) or run_id in (".", "..")):
        raise UserInputError(f"--run-id {run_id!r}: a run id is a name (letters, digits, '.', '_', '-'), not a path")


def new_run_dir(resolved_config: dict, default_id: str, out_root: Path, run_id: str | None) -> Path:
    """Create out_root/run_id holding config.yaml; an existing run there is refused (use --resume).
    `resolved_config` comes from config.resolved_dict: URL credentials only as ${VAR} references."""
    check_run_id(run_id)
    text = yaml.safe_dump(resolved_config, sort_keys=False)
    if has_credentials(text):  # resolved_dict refuses these first; nothing may write them here either
        raise UserInputError("the resolved config holds URL credentials; they must come from ${VAR}")
    rid = run_id or f"{default_id}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    run_dir = out_root / rid
    check_new_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(text)
    return run_dir


def check_new_run_dir(run_dir: Path) -> None:
    """A new run's directory must not exist with files in it (a run to resume, or others' verdicts)."""
    if (run_dir / CONFIG_FILE).exists():
        raise UserInputError(f"{run_dir} already holds a run; use `harness run --resume {run_dir}`")
    if run_dir.is_dir() and any(p.name != ".lock" for p in run_dir.iterdir()):
        raise UserInputError(
            f"{run_dir} already holds files (verdicts of `harness evaluate`?); choose another --run-id"
        )


def config_path(run_dir: Path) -> Path:
    """config.yaml of a run directory; UserInputError if the directory holds no run."""
    path = run_dir / CONFIG_FILE
    if not path.exists():
        raise UserInputError(f"{run_dir}: not a run directory (no {CONFIG_FILE})")
    return path


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


def read_generations(run_dir: Path) -> dict[tuple[str, int], GenerationRow]:
    """Stored generations by (task_id, sample_id); the newest row wins (a retried error is replaced)."""
    rows, _ = read_jsonl_tolerant(run_dir / GENERATIONS)
    out: dict[tuple[str, int], GenerationRow] = {}
    for i, row in enumerate(rows, 1):
        try:
            g = GenerationRow.from_json(row)
        except (KeyError, TypeError, ValueError) as e:
            raise UserInputError(f"{run_dir / GENERATIONS}:{i}: not a generation row ({e})") from None
        out[(g.task_id, g.sample_id)] = g
    return out


class GenerationWriter:
    """Appends generation rows durably (one fsync per batch)."""

    def __init__(self, run_dir: Path) -> None:
        path = run_dir / GENERATIONS
        repair_tail(path)
        self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, rows: list[GenerationRow]) -> None:
        for r in rows:
            row = r.to_json()
            if row.get("error"):
                # Backends mask their own key; this catches credential headers and URLs any backend echoes.
                row["error"] = redact_text(row["error"])
            self.f.write(json.dumps(row) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


def read_generation_provenance(run_dir: Path) -> dict[str, Any]:
    """generation.json, or {} when nothing was generated yet."""
    path = run_dir / GEN_PROVENANCE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise UserInputError(f"{path}: not valid JSON; restore it or start a new run directory") from None


def write_generation_provenance(run_dir: Path, data: dict[str, Any]) -> None:
    """generation.json, with URL credentials and credential headers masked wherever a backend put them."""
    write_json_atomic(run_dir / GEN_PROVENANCE, redact_data(data))
