"""What a run directory's verdicts belong to: grading.json.

A run directory holds the verdicts of one input (a `harness run`'s generations, one predictions
file, or the dataset's reference solutions) on one dataset, graded with one set of the settings that
can change a verdict (timeout, sandbox kind and limits, grader version). grading.json records these
when grading first starts, and every grading session (host, commit, sandbox, times, how many it
graded), so a resume on another machine is visible in provenance. A later grading of the directory
with another input or other verdict settings is refused before anything is written: mixing them
would publish figures that no single grading produced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from harness.errors import UserInputError
from harness.records import Results

FILE = "grading.json"
SCHEMA_VERSION = 1


class GradingManifest(BaseModel):
    """The identity of a run directory's verdicts and the sessions that graded them."""

    schema_version: int = SCHEMA_VERSION
    benchmark: str
    dataset_sha256: str | None = None
    source: dict[str, Any]  # {"kind": "run", "config_sha256"} | {"kind": "predictions", "sha256", "path"} | reference
    settings: dict[str, Any]  # the settings that can change a verdict
    sessions: list[dict[str, Any]] = Field(default_factory=list)


def read_manifest(root: Path) -> GradingManifest | None:
    """grading.json of a run directory, or None when grading never started there."""
    path = root / FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        manifest = GradingManifest.model_validate(data)
    except (OSError, ValueError) as e:
        raise UserInputError(f"{path}: not a grading record ({str(e).splitlines()[0]}); move it away") from None
    if manifest.schema_version != SCHEMA_VERSION:
        raise UserInputError(
            f"{path}: schema_version {manifest.schema_version} is not readable by this harness "
            f"(it reads {SCHEMA_VERSION}); grade with the harness that wrote it"
        )
    return manifest


def _describe(source: dict[str, Any]) -> str:
    kind = source.get("kind")
    if kind == "run":
        return "the generations of its own `harness run` (config.yaml)"
    if kind == "reference":
        return "the dataset's reference solutions (--gold)"
    return f"the predictions file {source.get('path')} (sha256 {str(source.get('sha256'))[:12]})"


def legacy_manifest(results: Results | None, root: Path, settings_keys: list[str]) -> GradingManifest | None:
    """What a directory graded before grading.json existed belongs to, read from its results.json."""
    if results is None:
        return None
    prov = results.provenance or {}
    if (root / "config.yaml").is_file():
        source: dict[str, Any] = {"kind": "run"}
    elif prov.get("predictions_file") == "gold":
        source = {"kind": "reference"}
    else:
        source = {"kind": "predictions", "sha256": prov.get("predictions_sha256"), "path": prov.get("predictions_file")}
    sandbox = prov.get("sandbox") if isinstance(prov.get("sandbox"), dict) else {}
    nested = {  # the exec scorer's settings, where older files kept them
        "sandbox_kind": sandbox.get("kind"),
        "image": sandbox.get("image"),
        "memory_mb": (sandbox.get("limits") or {}).get("memory_mb"),
    }
    found = {**{k: v for k, v in nested.items() if v is not None}, **prov}
    settings = {k: found[k] for k in settings_keys if k in found}
    # The grading that made the verdicts, as its results.json described it: the first session.
    first = {k: prov[k] for k in ("hostname", "cpu_model", "harness_git_sha", "started_at", "finished_at") if k in prov}
    first.update(graded=results.counts.get("samples"), settings=settings, recorded_from="results.json")
    return GradingManifest(
        benchmark=results.benchmark,
        dataset_sha256=results.dataset.get("sha256"),
        source=source,
        settings=settings,
        sessions=[first],
    )


def check_same(root: Path, old: GradingManifest, new: GradingManifest, settings: bool = True) -> None:
    """UserInputError (exit 2) when `new` would mix other verdicts into `root`; names what differs.
    With settings False only the benchmark, dataset and input must match (a re-grade discards the rest)."""
    if old.benchmark != new.benchmark or (old.dataset_sha256 and old.dataset_sha256 != new.dataset_sha256):
        raise UserInputError(
            f"{root} holds verdicts for {old.benchmark} (dataset sha256 {old.dataset_sha256}); "
            f"use another --out for {new.benchmark} (dataset sha256 {new.dataset_sha256})"
        )
    same_source = old.source.get("kind") == new.source.get("kind") and (
        old.source.get("kind") != "predictions" or old.source.get("sha256") in (None, new.source.get("sha256"))
    )
    if not same_source:
        raise UserInputError(
            f"{root} holds the verdicts of {_describe(old.source)}; this grading is of {_describe(new.source)}. "
            "A directory holds one input's verdicts: grade it into another --out"
        )
    changed = [
        f"{k} {old.settings[k]!r} -> {new.settings.get(k)!r}"
        for k in old.settings
        if k in new.settings and old.settings[k] != new.settings[k]
    ]
    if changed and settings:
        raise UserInputError(
            f"{root}: its verdicts were graded with other settings ({'; '.join(changed)}); mixing them would "
            "describe no single grading. Grade with the recorded settings, re-grade every sample with the new "
            "ones (`harness evaluate ... --regrade`), or grade into another --out"
        )
