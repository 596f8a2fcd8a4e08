"""SWE-bench as a plug-in: instances from a split or a local file, the paper's oracle / text prompts,
a diff extracted from each answer, graded by the official package (scorer `swebench`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from harness.benchmarks.base import Benchmark, BenchmarkConfig, Predictions, reference_failures
from harness.config import PromptConfig, expand_env_fields
from harness.records import Answer, DatasetInfo, Prompt, Sample, SampleResult, Status, Submission


class SWEBenchConfig(BenchmarkConfig):
    name: Literal["swebench"]
    split: Literal["lite", "verified", "full", "dev"] = "lite"
    path: str | None = Field(None, description="local parquet / JSON / JSONL instead of the split")
    instance_ids: list[str] | None = None
    repos: list[str] | None = None
    context: Literal["oracle", "text"] = "oracle"
    repo_url_template: str = Field("https://github.com/{repo}.git", description="where bare mirrors are cloned from")
    repo_cache_dir: str | None = None
    max_workers: int = Field(2, ge=1)
    timeout_s: int = Field(1800, ge=1, description="per instance, for the tests")
    images: Literal["keep", "remove"] = "keep"
    min_free_disk_gb: float = Field(10.0, ge=0)
    expand = expand_env_fields("path", "repo_cache_dir", "repo_url_template")


class SWEBench(Benchmark):
    name = "swebench"
    Config = SWEBenchConfig
    scorer = "swebench"
    headline_metric = "resolved"  # resolved / all selected instances: the leaderboard's denominator
    one_sample_per_task = True
    workers_key = "benchmark.max_workers"
    timeout_key = "benchmark.timeout_s"
    default_timeout_s = 1800.0

    def __init__(self, cfg: SWEBenchConfig) -> None:
        super().__init__(cfg)
        self.cfg: SWEBenchConfig = cfg
        self._cache = None

    @classmethod
    def dataset_option(cls, value: str) -> dict:
        """`--dataset lite|verified|full|dev` picks a split; anything else is a local file."""
        from harness.benchmarks.swebench import SPLITS

        return {"split": value} if value in SPLITS else {"path": value}

    def check(self) -> None:
        from harness.scoring.swebench import require_swebench

        require_swebench()

    def _load(self) -> tuple[list[Sample], DatasetInfo]:
        from harness.benchmarks.swebench import load_dataset

        self.check()
        b = self.cfg
        ds = load_dataset(b.path or b.split, b.instance_ids, b.repos, b.limit)
        return [Sample(i["instance_id"], i) for i in ds.instances], DatasetInfo(**ds.info())

    def _repo_cache(self):
        from platformdirs import user_cache_dir

        from harness.benchmarks.swebench import RepoCache

        if self._cache is None:
            root = Path(self.cfg.repo_cache_dir or Path(user_cache_dir("harness")) / "repos")
            self._cache = RepoCache(root, self.cfg.repo_url_template)
        return self._cache

    def prompt(self, sample: Sample, cfg: PromptConfig) -> Prompt:
        from harness.benchmarks.swebench import build_prompt

        text = build_prompt(sample.data, self.cfg.context, self._repo_cache() if self.cfg.context == "oracle" else None)
        if cfg.mode != "chat":
            return Prompt(sample.task_id, text=text)
        system = [{"role": "system", "content": cfg.system}] if cfg.system else []
        return Prompt(sample.task_id, messages=[*system, {"role": "user", "content": text}])

    def prompt_sha256(self, cfg: PromptConfig) -> str:
        from harness.benchmarks.swebench import prompt_sha256

        return prompt_sha256() if self.cfg.context == "oracle" else "dataset-text"

    def answer(self, sample: Sample, raw: str, cfg: PromptConfig) -> Answer:
        from harness.benchmarks.swebench import extract_diff

        return Answer("patch", extract_diff(raw))

    def submission(self, sample: Sample, sample_id: int, answer: Answer) -> Submission:
        note = "" if answer.code.strip() else "no diff in the answer"
        return Submission(sample.task_id, sample_id, "patch", answer.code, note)

    def read_predictions(self, path: Path, samples: Sequence[Sample]) -> Predictions:
        """Official-format predictions; an instance without one is graded as an empty patch."""
        from harness.benchmarks.swebench import SWEDataset, read_predictions
        from harness.store import sha256_file

        ds = SWEDataset(self.load()[1].name, "", "", [s.data for s in samples])
        preds = read_predictions(path, ds)
        subs = [
            Submission(s.task_id, 0, "patch", preds[s.task_id]["model_patch"])
            if s.task_id in preds
            else Submission(s.task_id, 0, "patch", "", "no prediction")
            for s in samples
        ]
        name = next(iter(preds.values()))["model_name_or_path"] if preds else None
        missing = sum(s.task_id not in preds for s in samples)
        notes = (
            [f"{missing} of {len(samples)} instances have no prediction in the file: graded as empty patches"]
            if missing
            else []
        )
        return Predictions(path, sha256_file(path), subs, name, list(samples), notes)

    def reference_predictions(self, samples: Sequence[Sample]) -> list[Submission]:
        return [Submission(s.task_id, 0, "patch", s.data["patch"]) for s in samples]

    @classmethod
    def leaderboard(cls, info: DatasetInfo) -> str:
        """Lite and Verified never share a board: the key carries the split (or the file's name)."""
        return f"swebench-{info.split or re.sub(r'[^A-Za-z0-9._-]+', '-', info.name).strip('-.') or 'local'}"

    def results_extra(self, verdicts: Sequence[SampleResult], selected: Sequence[str], reference: bool) -> dict:
        out: dict = {"infra_errors": [v.task_id for v in verdicts if v.status is Status.INFRA_ERROR]}
        if reference:
            bad = reference_failures(verdicts, selected)
            out["gold_check"] = {
                "resolved": len(selected) - len(bad),
                "total": len(selected),
                "trusted": not bad,
                "not_resolved": bad,
            }
        return out
