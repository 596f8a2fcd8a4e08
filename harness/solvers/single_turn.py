"""The single-turn solver: every prompt to the backend in one batch (`n` samples per prompt)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from harness import provenance
from harness.config import PluginConfig
from harness.errors import UserInputError
from harness.progress import Progress
from harness.records import Generation, GenerationRow, Sample
from harness.redact import redact_text
from harness.rundir import GenerationWriter, read_generation_provenance, read_generations, write_generation_provenance
from harness.solvers.base import Solver

if TYPE_CHECKING:
    from harness.benchmarks.base import Benchmark


class SingleTurnConfig(PluginConfig):
    name: Literal["single-turn"]


class SingleTurn(Solver):
    """Today's batched path: the backend sees all outstanding prompts at once (vLLM batches them)."""

    Config = SingleTurnConfig

    def check(self, bench: Benchmark, run_dir: Path | None = None) -> None:
        if bench.one_sample_per_task and self.run.sampling.n != 1:
            raise UserInputError(f"sampling.n: {bench.name} grades one answer per task; set sampling.n: 1")
        if run_dir is None or self.needed(bench.load()[0], run_dir):
            super().check(bench, run_dir)

    def needed(self, samples: Sequence[Sample], run_dir: Path) -> dict[str, list[int]]:
        """Sample ids still to generate, by task: missing, or stored with an error."""
        have = read_generations(run_dir)
        n = self.run.sampling.n
        needed = {
            s.task_id: [i for i in range(n) if not ((g := have.get((s.task_id, i))) and g.error is None)]
            for s in samples
        }
        return {k: v for k, v in needed.items() if v}

    def solve(self, bench: Benchmark, samples: Sequence[Sample], run_dir: Path, quiet: bool = False) -> dict:
        from harness.models.base import make_backend

        cfg = self.run
        needed = self.needed(samples, run_dir)
        old = read_generation_provenance(run_dir)
        if not needed:
            return old
        by_id = {s.task_id: s for s in samples}
        backend = make_backend(cfg.model, run_dir)
        backend.preflight()
        if hasattr(backend, "start"):  # the engine's start-up (logged in the run dir) before the progress bar
            backend.start()
        prompts = [bench.prompt(by_id[t], cfg.prompt) for t in needed]  # only what is still to generate
        total = sum(len(v) for v in needed.values())
        progress = Progress(total, f"generating ({cfg.model.backend})", quiet=quiet)
        writer = GenerationWriter(run_dir)
        errors = 0
        first_error: str | None = None

        def sink(gens: list[Generation]) -> None:
            nonlocal errors, first_error
            rows = []
            for g in gens:
                ok = g.error is None and g.raw is not None
                errors += not ok
                first_error = first_error or (None if ok else redact_text(g.error or "no answer"))
                rows.append(GenerationRow.of(g, bench.answer(by_id[g.task_id], g.raw, cfg.prompt) if ok else None))
            writer.write(rows)
            progress.advance(len(gens))

        t0 = time.monotonic()
        try:
            backend.generate(prompts, cfg.sampling, needed, sink)
        finally:
            writer.close()
            progress.close()
            prov = backend.provenance()
            backend.close()  # before any sandbox runs: GPU memory and server ports are free
            if errors:
                # Once, not per sample (even with --quiet): the count alone does not say what went wrong.
                print(f"generation: {errors} of {total} failed; first error: {first_error}", file=sys.stderr)
        sessions = [
            *old.get("sessions", []),
            {
                "generated": total,
                "wall_s": round(time.monotonic() - t0, 2),
                "errors": errors,
                "finished_at": provenance.now_iso(),
            },
        ]
        gen_prov = {
            **prov,
            "sampling": cfg.sampling.model_dump(),
            "solver": self.cfg.name,
            "prompt_mode": cfg.prompt.mode,
            "prompt_template_sha256": bench.prompt_sha256(cfg.prompt),
            "sessions": sessions,
            "generation_wall_s": round(sum(s["wall_s"] for s in sessions), 2),
            # the machine that generated (grading may run elsewhere: `harness evaluate RUN_DIR`)
            "host": provenance.host(),
        }
        write_generation_provenance(run_dir, gen_prov)
        return gen_prov
