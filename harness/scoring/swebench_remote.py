"""SWE-bench grading through a remote executor: each instance graded on a node's own Docker engine.

The node side (`grade_on_node`) is the local grader's `grade_one` with the node's engine, its logs
in a scratch directory that travels back with the verdict; the driver side (`grade_remote`) writes
those logs under the run directory's logs/ and hands each verdict to the score stage, which stays
the only writer of samples.jsonl. An infrastructure verdict or a lost node is retried by the
executor on another node; what still fails is `infra_error`, with every attempt in its record.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness.executors.base import (
    Done,
    RemoteExecutor,
    Shipped,
    node_docker,
    read_tree,
    remove_run_containers,
    write_tree,
)
from harness.progress import Progress
from harness.records import Sample, SampleResult, Status, Submission
from harness.scoring.base import OnResult


def grade_on_node(instance: dict, pred: dict, run_dir: str, timeout_s: int, images: str, min_free_gb: float) -> Shipped:
    """Grade one instance with this node's Docker engine; the verdict and its logs."""
    from swebench.harness import run_evaluation as rv

    from harness.sandbox.prune import LabellingClient, Owner
    from harness.scoring.swebench import _sweep, docker_root_free_gb, drop_image, grade_one

    iid = instance["instance_id"]
    try:
        client = LabellingClient(node_docker(), Owner.current(run_dir).labels())
        _sweep(client, Path(run_dir))  # this node's leftovers of workers that died (their owner pid is gone)
        free = docker_root_free_gb(client)
    except Exception as e:
        return Shipped(_infra(iid, pred, f"no Docker engine on this node: {type(e).__name__}: {e}"))
    if free < min_free_gb and (pred.get("model_patch") or "").strip():
        return Shipped(_infra(iid, pred, f"only {free:.1f} GB free for images on this node (min {min_free_gb})"))
    with tempfile.TemporaryDirectory(prefix="harness-grade-") as tmp:
        rv.RUN_EVALUATION_LOG_DIR = Path(tmp)  # one task at a time per worker process
        res = grade_one(instance, pred, client, Path(tmp), timeout_s)
        files = read_tree(Path(tmp))
        if "log_dir" in res.extra:  # relative on the wire; the driver makes it the run directory's
            res.extra["log_dir"] = Path(res.extra["log_dir"]).relative_to(tmp).as_posix()
    drop_image(client, instance, res, images)
    return Shipped(res, files)


def _infra(iid: str, pred: dict, detail: str) -> SampleResult:
    from harness.scoring.swebench import patch_sha

    sha = patch_sha(pred.get("model_patch"))
    return SampleResult(iid, 0, Status.INFRA_ERROR, 0.0, detail=detail[:500], program_sha256=sha)


def _retryable(res: SampleResult) -> str | None:
    return f"infra_error: {res.detail}" if res.status is Status.INFRA_ERROR else None


def grade_remote(
    scorer, executor: RemoteExecutor, todo: Sequence[tuple[Sample, Submission]], on_result: OnResult
) -> dict:
    """Every submission through the executor; each verdict (with its node and failed attempts) handed
    to on_result as it arrives, its logs written under the run directory first."""
    from harness.benchmarks.swebench import validate_diff
    from harness.scoring.swebench import grade_one, patch_sha, prediction

    cfg, log_root = scorer.cfg, scorer.out_dir / "logs"
    items, here = [], []
    for sample, sub in todo:
        pred = prediction(sub, scorer.model)
        patch = (sub.content or "").strip()
        if not patch or validate_diff(sub.content):  # decided without a container: here, not on a node
            here.append(grade_one(sample.data, pred, None, log_root, cfg.timeout_s))
            continue
        args = (sample.data, pred, str(scorer.out_dir.resolve()), cfg.timeout_s, cfg.images, cfg.min_free_disk_gb)
        items.append((sample.task_id, args))
    by_id = {s.task_id: sub for s, sub in todo}
    progress = Progress(len(todo), "grading swebench (ray)", quiet=scorer.quiet, log_every_s=30)
    for res in here:
        res.extra["node"] = None  # the driver's
        on_result(res)
        progress.advance()

    def done(d: Done) -> None:
        if d.value is not None:
            res: SampleResult = d.value.value
            write_tree(log_root, d.value.files)
            if "log_dir" in res.extra:
                res.extra["log_dir"] = str(log_root / res.extra["log_dir"])
        else:  # every attempt lost with its node or worker: infrastructure, never the model's
            sub = by_id[d.key]
            res = SampleResult(d.key, 0, Status.INFRA_ERROR, 0.0, program_sha256=patch_sha(sub.content))
        if d.error is not None:
            res = dataclasses.replace(res, detail=f"after {len(d.attempts)} attempts: {d.error}"[:500])
        res.extra["node"] = d.node
        if d.attempts:
            res.extra["failed_attempts"] = d.attempts
        on_result(dataclasses.replace(res, attempts=len(d.attempts) + (0 if d.error else 1)))
        progress.advance()

    try:
        from harness.sandbox.prune import SWEBENCH_PREFIX

        cleanup = (remove_run_containers, (str(scorer.out_dir.resolve()), {"name": SWEBENCH_PREFIX}))
        prov = executor.map(grade_on_node, items, done, _retryable, cleanup=cleanup)
    finally:
        progress.close()
    return {"grader": scorer.settings(), "executor": prov}
