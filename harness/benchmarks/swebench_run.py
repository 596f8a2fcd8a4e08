"""SWE-bench inside `harness run`: prompts from the dataset (oracle or text context), a diff
extracted from each answer, and grading of the stored generations by the official harness."""

from __future__ import annotations

import json
from pathlib import Path

from harness.benchmarks.swebench import RepoCache, build_prompt, extract_diff, load_dataset, prompt_sha256
from harness.benchmarks.swebench_grade import SWEGradeRequest, grade
from harness.config import RunConfig, SWEBenchConfig
from harness.errors import UserInputError
from harness.records import Prompt


def dataset_for(b: SWEBenchConfig):
    return load_dataset(b.path or b.split, b.instance_ids, b.repos, b.limit)


def swebench_workload(cfg: RunConfig):
    from platformdirs import user_cache_dir

    from harness.run import GEN_PROVENANCE, Workload, stored_generations

    b = cfg.benchmark
    assert isinstance(b, SWEBenchConfig)
    if cfg.sampling.n != 1:
        raise UserInputError("sampling.n: SWE-bench runs grade one patch per instance; set sampling.n: 1")
    ds = dataset_for(b)
    cache = RepoCache(Path(b.repo_cache_dir or Path(user_cache_dir("harness")) / "repos"), b.repo_url_template)

    def prompts(ids: set[str]) -> list[Prompt]:
        out = []
        for inst in ds.instances:
            if inst["instance_id"] in ids:
                text = build_prompt(inst, b.context, cache)
                if cfg.prompt.mode == "chat":
                    msgs = [{"role": "system", "content": cfg.prompt.system}] if cfg.prompt.system else []
                    out.append(Prompt(inst["instance_id"], messages=[*msgs, {"role": "user", "content": text}]))
                else:
                    out.append(Prompt(inst["instance_id"], text=text))
        return out

    def evaluate(run_dir: Path, quiet: bool = False, sandbox=None, workers=None) -> dict:
        gens = stored_generations(run_dir)
        preds, skipped = {}, set()
        for inst in ds.instances:
            row = gens.get((inst["instance_id"], 0))
            if row is None or row.get("error") is not None:
                skipped.add(inst["instance_id"])  # no answer: not graded, the run stays incomplete
                continue
            preds[inst["instance_id"]] = {
                "model_patch": row["code"] or "",
                "model_name_or_path": cfg.model.name,
                "_why_empty": "no diff in the answer",
            }
        gen_prov = json.loads((run_dir / GEN_PROVENANCE).read_text()) if (run_dir / GEN_PROVENANCE).exists() else {}
        req = SWEGradeRequest(
            ds,
            preds,
            cfg.model.name,
            run_dir,
            max_workers=workers or b.max_workers,
            timeout_s=b.timeout_s,
            images=b.images,
            min_free_disk_gb=b.min_free_disk_gb,
            bootstrap_seed=cfg.bootstrap_seed,
            quiet=quiet,
            generation_errors=len(skipped),
            skip=skipped,
            extra_provenance={"model": gen_prov, "context": b.context, "run_dir": str(run_dir)},
        )
        return grade(req)

    def check() -> None:
        from harness.sandbox.docker import docker_client

        docker_client()

    return Workload(
        ids=[i["instance_id"] for i in ds.instances],
        prompts=prompts,
        extract=lambda tid, raw: ("patch", extract_diff(raw)),
        template_sha256=prompt_sha256() if b.context == "oracle" else "dataset-text",
        evaluate=evaluate,
        check=check,
    )
