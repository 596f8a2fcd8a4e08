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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from harness.benchmarks.swebench import validate_diff
from harness.errors import EnvironmentNotReady
from harness.progress import Progress
from harness.records import Sample, SampleResult, Status, Submission
from harness.scoring.base import OnResult, Scorer


def patch_sha(patch: str | None) -> str:
    return hashlib.sha256((patch or "").encode()).hexdigest()


def _free_gb(path: Path) -> float:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free / 2**30


def docker_root_free_gb(client) -> float:
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
    if report.get("infra_failure"):  # the package's own triage of a test log without results
        why = report.get("infra_failure_reason", "environment fault")
        return SampleResult(
            **base, status=Status.INFRA_ERROR, duration_s=dur, detail=f"environment fault: {why}", extra=extra
        )
    if not report.get("patch_successfully_applied", True):
        # The model's patch applied (else no report), but the log holds no test results: the official
        # harness counts this as not resolved (e.g. a patch touching the tests so the test patch fails).
        return SampleResult(
            **base, status=Status.UNRESOLVED, duration_s=dur, detail="no test results in the log", extra=extra
        )
    failing = [t for t in ts.get("FAIL_TO_PASS", {}).get("failure", [])][:5]
    return SampleResult(
        **base,
        status=Status.UNRESOLVED,
        duration_s=dur,
        detail=("FAIL_TO_PASS still failing: " + ", ".join(failing)) if failing else "tests failed",
        extra=extra,
    )


def prediction(sub: Submission, model: str) -> dict:
    """A submission as the official package's prediction record."""
    return {"model_patch": sub.content, "model_name_or_path": model, "_why_empty": sub.note or "empty patch"}


def drop_image(client, instance: dict, res: SampleResult, policy: str) -> None:
    """Remove the instance's image after grading when the image policy says so (best effort)."""
    if policy == "remove" and res.status is not Status.EMPTY_PATCH:
        try:
            client.images.remove(instance["image"], force=True)
        except Exception:
            pass


class SWEBenchScorer(Scorer):
    """Patches graded by the official package in the instance images, `max_workers` at a time."""

    statuses = (
        Status.RESOLVED,
        Status.UNRESOLVED,
        Status.PATCH_FAILED,
        Status.EMPTY_PATCH,
        Status.TIMEOUT,
        Status.INFRA_ERROR,
    )

    remote = True

    def __init__(self, bench, sandbox, out_dir: Path, quiet: bool = False, model: str = "model", executor=None) -> None:
        super().__init__(bench, sandbox, out_dir, quiet, model, executor)
        self.cfg = bench.cfg  # max_workers, timeout_s, images, min_free_disk_gb live in the benchmark's config
        self._client = None
        self._executor = None

    def executor(self):
        """The executor of the config (local unless it says otherwise), made once."""
        if self._executor is None:
            from harness.executors import make_executor

            self._executor = make_executor(self.executor_cfg)
        return self._executor

    def _docker(self):
        if self._client is None:
            import docker

            try:
                client = docker.from_env(timeout=600)
                client.ping()
            except Exception as e:
                raise EnvironmentNotReady(
                    f"no Docker engine answers ({type(e).__name__}); `bash scripts/setup.sh` starts one"
                ) from None
            self._client = client
        return self._client

    def check(self) -> None:
        require_swebench()
        if self.executor().remote:  # the nodes' engines and disks are checked by each task on its node
            self.executor().check()
            return
        free = docker_root_free_gb(self._docker())
        if free < self.cfg.min_free_disk_gb:
            raise EnvironmentNotReady(
                f"only {free:.1f} GB free for Docker images; SWE-bench needs at least {self.cfg.min_free_disk_gb} GB "
                "(set benchmark.min_free_disk_gb, or free space with `docker image prune`)"
            )

    def settings(self) -> dict:
        return {
            "package": "swebench",
            "version": _swebench_version(),
            "max_workers": self.cfg.max_workers,
            "timeout_s": self.cfg.timeout_s,
            "images": self.cfg.images,
            "executor": self.executor_cfg.name,
        }

    def grade(self, todo: Sequence[tuple[Sample, Submission]], on_result: OnResult) -> dict:
        from swebench.harness import run_evaluation as rv

        from harness.sandbox.prune import LabellingClient, Owner

        self.check()
        if self.executor().remote:
            from harness.scoring.swebench_remote import grade_remote

            return grade_remote(self, self.executor(), todo, on_result)
        # The grader's containers carry this run's owner labels, so that prune and sweeps can tell them apart.
        client = LabellingClient(self._docker(), Owner.current(self.out_dir).labels())
        _sweep(client, self.out_dir)
        free = docker_root_free_gb(client)
        log_root = self.out_dir / "logs"
        rv.RUN_EVALUATION_LOG_DIR = log_root  # the package's logs go into the run directory
        progress = Progress(len(todo), "grading swebench", quiet=self.quiet, log_every_s=30)
        lock = threading.Lock()
        images_before = _images_size(client)

        stop = threading.Event()

        def work(item: tuple[Sample, Submission]) -> None:
            if stop.is_set():
                return
            inst, sub = item[0].data, item[1]
            res = grade_one(inst, prediction(sub, self.model), client, log_root, self.cfg.timeout_s)
            drop_image(client, inst, res, self.cfg.images)
            with lock:
                if not stop.is_set():  # after an interrupt, what fails as its containers go is not a verdict
                    on_result(res)
                    progress.advance()

        pool = ThreadPoolExecutor(max_workers=self.cfg.max_workers)
        try:
            for f in as_completed([pool.submit(work, item) for item in todo]):
                f.result()
            pool.shutdown()
        except BaseException:
            # Interrupted: drop the queued instances and end those in flight (their containers are removed
            # below) instead of grading everything left first, as leaving the `with` of an executor would.
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            progress.close()
            _sweep(client, self.out_dir)
        return {
            "grader": self.settings(),
            "disk": {
                "docker_free_gb_at_start": round(free, 1),
                "images_gb_before": images_before,
                "images_gb_after": _images_size(client),
            },
        }


def require_swebench() -> None:
    """The official package is an extra; without it, say how to install it (exit 3)."""
    try:
        import swebench  # noqa: F401
        import unidiff  # noqa: F401
    except ImportError as e:
        raise EnvironmentNotReady(
            f"SWE-bench needs the swebench extra ({e.name} is not installed): "
            "pip install 'harness[swebench]' (or `bash scripts/setup.sh`)"
        ) from None


def _sweep(client, run_dir: Path) -> None:
    """Remove grader containers left by harness processes that are gone (a killed session's, whose
    creation was in flight at kill -9), and this process's own leftovers of this run. Never those of a
    live run, nor unlabelled ones (an older harness's or a hand-run grader's: whose they are is unknown)."""
    from harness.sandbox.prune import SWEBENCH_PREFIX, sweep

    try:
        sweep(client, {"name": SWEBENCH_PREFIX}, run_dir)
    except Exception:
        pass  # best effort: leftovers never fail grading


def _swebench_version() -> str:
    from importlib.metadata import version

    return version("swebench")


def _images_size(client) -> float | None:
    try:
        return round(sum(i.attrs.get("Size", 0) for i in client.images.list()) / 2**30, 2)
    except Exception:
        return None
