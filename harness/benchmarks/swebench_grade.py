"""Grading SWE-bench predictions with the official `swebench` package, in Docker.

The harness orchestrates, resumes and records; the package does the work: `run_instance`
creates the container from the image the dataset names, applies the patch with its own chain
(git apply, then `patch --fuzz`), runs the instance's eval script with the timeout, parses the
log with the instance's own parser and decides resolution with its own rules. Each instance's
logs live in the run directory under logs/<patch-sha>/..., so a changed patch is never graded
from a stale report.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from harness import metrics, provenance
from harness.benchmarks.swebench import SWEDataset, tests_of, validate_diff
from harness.errors import EnvironmentNotReady
from harness.progress import Progress
from harness.records import SampleResult, Status
from harness.store import RunStore, is_final

RESULTS_SCHEMA_VERSION = 1


@dataclass
class SWEGradeRequest:
    dataset: SWEDataset
    predictions: dict[str, dict]  # instance_id -> {"model_patch", "model_name_or_path"}
    model_name: str
    out_dir: Path
    max_workers: int = 2
    timeout_s: int = 1800
    images: str = "keep"  # keep | remove instance images after use
    min_free_disk_gb: float = 10.0
    bootstrap_seed: int = 1234
    quiet: bool = False
    gold: bool = False
    extra_provenance: dict | None = None
    generation_errors: int = 0
    skip: set[str] = field(default_factory=set)  # instances left ungraded (no generation)


def patch_sha(patch: str | None) -> str:
    return hashlib.sha256((patch or "").encode()).hexdigest()


def _free_gb(path: Path) -> float:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free / 2**30


def _docker_root_free_gb(client) -> float:
    try:
        return _free_gb(Path(client.info().get("DockerRootDir", "/var/lib/docker")))
    except Exception:
        return _free_gb(Path("/"))


def grade_one(instance: dict, pred: dict, client, log_root: Path, timeout_s: int) -> SampleResult:
    """One instance through swebench's run_instance; the outcome mapped to a status."""
    from swebench.harness import run_evaluation as rv
    from swebench.harness.constants import APPLY_PATCH_FAIL
    from swebench.harness.utils import make_test_spec

    iid = instance["instance_id"]
    sha = patch_sha(pred.get("model_patch"))
    base = {"task_id": iid, "sample_id": 0, "program_sha256": sha}
    if not (pred.get("model_patch") or "").strip():
        return SampleResult(
            **base, status=Status.EMPTY_PATCH, duration_s=0.0, detail=pred.get("_why_empty", "empty patch")
        )
    bad = validate_diff(pred["model_patch"])
    if bad:
        return SampleResult(**base, status=Status.PATCH_FAILED, duration_s=0.0, detail=bad)
    run_id = sha[:16]
    model_dir = pred.get("model_name_or_path", "None").replace("/", "__")
    log_dir = log_root / run_id / model_dir / iid
    t0 = time.monotonic()
    try:
        out = rv.run_instance(make_test_spec(instance), {**pred, "instance_id": iid}, client, run_id, timeout_s)
    except Exception as e:  # the package's own failures are infrastructure, never the model's
        return SampleResult(
            **base,
            status=Status.INFRA_ERROR,
            duration_s=time.monotonic() - t0,
            detail=f"{type(e).__name__}: {e}"[:500],
            extra={"log_dir": str(log_dir)},
        )
    dur = time.monotonic() - t0
    if out is None:
        log = (
            (log_dir / "run_instance.log").read_text(errors="replace")
            if (log_dir / "run_instance.log").exists()
            else ""
        )
        if APPLY_PATCH_FAIL in log:
            return SampleResult(
                **base,
                status=Status.PATCH_FAILED,
                duration_s=dur,
                detail="patch did not apply",
                extra={"log_dir": str(log_dir)},
            )
        if "Test timed out" in log or "Timeout error" in log:
            return SampleResult(
                **base,
                status=Status.TIMEOUT,
                duration_s=dur,
                detail=f"tests ran over {timeout_s} s",
                extra={"log_dir": str(log_dir)},
            )
        last = [ln for ln in log.splitlines() if "Error" in ln or "error" in ln][-1:] or ["no report written"]
        return SampleResult(
            **base, status=Status.INFRA_ERROR, duration_s=dur, detail=last[0][:500], extra={"log_dir": str(log_dir)}
        )
    report = out[1][iid]
    ts = report.get("tests_status", {})
    extra = {
        "log_dir": str(log_dir),
        "fail_to_pass": ts.get("FAIL_TO_PASS", {}),
        "pass_to_pass": ts.get("PASS_TO_PASS", {}),
    }
    if report.get("resolved"):
        return SampleResult(**base, status=Status.RESOLVED, duration_s=dur, extra=extra)
    if not report.get("patch_successfully_applied", True):
        return SampleResult(
            **base, status=Status.PATCH_FAILED, duration_s=dur, detail="patch did not apply", extra=extra
        )
    failing = [t for t in ts.get("FAIL_TO_PASS", {}).get("failure", [])][:5]
    return SampleResult(
        **base,
        status=Status.UNRESOLVED,
        duration_s=dur,
        detail=("FAIL_TO_PASS still failing: " + ", ".join(failing)) if failing else "tests failed",
        extra=extra,
    )


def grade(req: SWEGradeRequest) -> dict:
    """Grade every instance not yet graded in out_dir (infra errors are retried); write the results."""
    import docker
    from swebench.harness import run_evaluation as rv

    started = provenance.now_iso()
    t0 = time.monotonic()
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as e:
        raise EnvironmentNotReady(
            f"no Docker engine answers ({type(e).__name__}); `bash scripts/setup.sh` starts one"
        ) from None
    free = _docker_root_free_gb(client)
    if free < req.min_free_disk_gb:
        raise EnvironmentNotReady(
            f"only {free:.1f} GB free for Docker images; SWE-bench needs at least {req.min_free_disk_gb} GB "
            "(set benchmark.min_free_disk_gb, or free space with `docker image prune`)"
        )
    log_root = req.out_dir / "logs"
    rv.RUN_EVALUATION_LOG_DIR = log_root  # the package's logs go into the run directory
    instances = [i for i in req.dataset.instances if i["instance_id"] not in req.skip]
    preds = {
        i["instance_id"]: req.predictions.get(i["instance_id"])
        or {"model_patch": "", "model_name_or_path": req.model_name, "_why_empty": "no prediction"}
        for i in instances
    }
    with RunStore(req.out_dir) as store:
        final = {k: v for k, v in store.graded().items() if is_final(v)}

        def key(i: dict) -> tuple[str, int, str]:
            return (i["instance_id"], 0, patch_sha(preds[i["instance_id"]].get("model_patch")))

        todo = [i for i in instances if key(i) not in final]
        progress = Progress(len(todo), "grading swebench", quiet=req.quiet, log_every_s=30)
        lock = threading.Lock()
        images_before = _images_size(client)

        def work(inst: dict) -> None:
            res = grade_one(inst, preds[inst["instance_id"]], client, log_root, req.timeout_s)
            if req.images == "remove" and res.status not in (Status.EMPTY_PATCH,):
                try:
                    client.images.remove(inst["image"], force=True)
                except Exception:
                    pass
            with lock:
                store.append(res)
                final[res.key] = res
                progress.advance()

        try:
            with ThreadPoolExecutor(max_workers=req.max_workers) as pool:
                list(pool.map(work, todo))
        finally:
            progress.close()
            _sweep(client, [f"sweb.eval.{i['instance_id'].lower()}.{key(i)[2][:16]}" for i in instances])
        rows = [final[key(i)] for i in instances if key(i) in final]
        store.finalize_samples(rows)
        results = score(rows, req)
        results["provenance"] = {
            **provenance.host(),
            **(req.extra_provenance or {}),
            "grader": {
                "package": "swebench",
                "version": _swebench_version(),
                "max_workers": req.max_workers,
                "timeout_s": req.timeout_s,
                "images": req.images,
            },
            "disk": {
                "docker_free_gb_at_start": round(free, 1),
                "images_gb_before": images_before,
                "images_gb_after": _images_size(client),
            },
            "bootstrap": {"seed": req.bootstrap_seed, "resamples": metrics.BOOTSTRAP_RESAMPLES},
            "graded_this_session": len(todo),
            "resumed_from_store": len(instances) - len(todo),
            "started_at": started,
            "finished_at": provenance.now_iso(),
            "wall_time_s": round(time.monotonic() - t0, 2),
        }
        store.write_results(results)
    return results


def _sweep(client, names: list[str]) -> None:
    """Remove this run's containers that a killed earlier session may have left (the official harness
    removes its own; a container whose creation was in flight at kill -9 is nobody's)."""
    wanted = set(names)
    try:
        for c in client.containers.list(all=True, filters={"name": "sweb.eval."}):
            if c.name in wanted:
                c.remove(force=True)
    except Exception:
        pass


def _swebench_version() -> str:
    from importlib.metadata import version

    return version("swebench")


def _images_size(client) -> float | None:
    try:
        return round(sum(i.attrs.get("Size", 0) for i in client.images.list()) / 2**30, 2)
    except Exception:
        return None


def score(rows: list[SampleResult], req: SWEGradeRequest) -> dict:
    counts = {s: 0 for s in ("resolved", "unresolved", "patch_failed", "empty_patch", "timeout", "infra_error")}
    for r in rows:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    total = len(req.dataset.instances)
    resolved = [1.0 if r.status is Status.RESOLVED else 0.0 for r in rows]
    resolved += [0.0] * (total - len(rows))
    lo, hi = metrics.bootstrap_ci(resolved, req.bootstrap_seed)
    infra = [r.task_id for r in rows if r.status is Status.INFRA_ERROR]
    complete = not infra and req.generation_errors == 0 and len(rows) == total
    out = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "benchmark": "swebench",
        "model": req.model_name,
        "complete": complete,
        "incomplete_reason": None
        if complete
        else f"{len(infra)} instance(s) hit infrastructure errors, {req.generation_errors} generation error(s); "
        "resume to retry exactly those",
        "metrics": {"resolved": counts["resolved"] / total, "resolved_ci95": [lo, hi]},
        "counts": {"tasks": total, "samples": len(rows), **counts, "generation_error": req.generation_errors},
        "infra_errors": infra,
        "dataset": req.dataset.info(),
    }
    if req.gold:
        bad = [r.task_id for r in rows if r.status is not Status.RESOLVED]
        out["gold_check"] = {"resolved": counts["resolved"], "total": total, "trusted": not bad, "not_resolved": bad}
    return out


def gold_predictions(dataset: SWEDataset) -> dict[str, dict]:
    return {i["instance_id"]: {"model_patch": i["patch"], "model_name_or_path": "gold"} for i in dataset.instances}


def f2p_p2p(instance: dict) -> tuple[list[str], list[str]]:
    return tests_of(instance, "FAIL_TO_PASS"), tests_of(instance, "PASS_TO_PASS")
