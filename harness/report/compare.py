"""Pairwise comparison of two runs on one benchmark, paired over the tasks both graded.

The paired difference is mean(score_A - score_B) over shared tasks (score = fraction of a task's
graded samples that passed, so with one sample per task it is pass@1), with a percentile bootstrap
CI that resamples tasks. McNemar's exact test and the solved-by lists need a yes/no per task: a
task is solved when more than half its samples passed (with one sample: when it passed).
"""

from __future__ import annotations

import itertools

from harness import metrics
from harness.errors import UserInputError
from harness.report.runs import Run
from harness.report.schema import Comparison, McNemar, Paired, RunSummary

SOLVED_RULE = (
    "a task counts as solved when more than half of its graded samples passed "
    "(with one sample per task: when that sample passed)"
)


def comparison_id(a: Run, b: Run) -> str:
    return f"{a.run_id}--vs--{b.run_id}"


def compare(a: Run, b: Run, sa: RunSummary, sb: RunSummary, seed: int) -> Comparison:
    """Paired statistics of A against B; refuses runs of different benchmarks or without shared tasks."""
    if a.leaderboard != b.leaderboard:
        raise UserInputError(
            f"--compare {a.run_id} {b.run_id}: different benchmarks ({a.leaderboard} and {b.leaderboard}); "
            "a paired comparison needs the same tasks"
        )
    ta, tb = a.by_task(), b.by_task()
    shared = [t for t, s in ta.items() if s.score is not None and t in tb and tb[t].score is not None]
    if not shared:
        raise UserInputError(f"--compare {a.run_id} {b.run_id}: the runs share no graded task")
    av = [ta[t].score or 0.0 for t in shared]
    bv = [tb[t].score or 0.0 for t in shared]
    solved_a = {t for t in shared if 2 * ta[t].passed > ta[t].n}
    solved_b = {t for t in shared if 2 * tb[t].passed > tb[t].n}
    groups: dict[str, list[str]] = {"both": [], "only_a": [], "only_b": [], "neither": []}
    for t in shared:
        key = {(True, True): "both", (True, False): "only_a", (False, True): "only_b", (False, False): "neither"}
        groups[key[(t in solved_a, t in solved_b)]].append(t)
    lo, hi = metrics.paired_bootstrap_ci(av, bv, seed)
    mean_a, mean_b = sum(av) / len(av), sum(bv) / len(bv)
    paired = Paired(
        shared_tasks=len(shared),
        a_value=mean_a,
        b_value=mean_b,
        difference=mean_a - mean_b,
        difference_ci95=(lo, hi),
        mcnemar=McNemar(
            both=len(groups["both"]),
            only_a=len(groups["only_a"]),
            only_b=len(groups["only_b"]),
            neither=len(groups["neither"]),
            p_value=metrics.mcnemar_exact(len(groups["only_a"]), len(groups["only_b"])),
        ),
        solved_rule=SOLVED_RULE,
        bootstrap_seed=seed,
        bootstrap_resamples=metrics.BOOTSTRAP_RESAMPLES,
    )
    cid = comparison_id(a, b)
    return Comparison(
        id=cid,
        page=f"compare/{cid}.html",
        benchmark=a.leaderboard,
        a=sa,
        b=sb,
        paired=paired,
        warnings=_warnings(a, b, sa, sb, len(shared)),
        **groups,
    )


def _warnings(a: Run, b: Run, sa: RunSummary, sb: RunSummary, shared: int) -> list[str]:
    out = []
    for r, s in ((a, sa), (b, sb)):
        if not s.complete:
            out.append(f"{r.run_id} is incomplete ({s.incomplete_reason}); the comparison uses the tasks it graded")
        if len([t for t in r.tasks if t.score is not None]) > shared:
            out.append(f"{r.run_id} graded tasks the other run did not; only the {shared} shared tasks are compared")
    if sa.dataset.get("sha256") != sb.dataset.get("sha256"):
        out.append(
            f"the runs were graded on different dataset files (sha256 {str(sa.dataset.get('sha256'))[:12]} and "
            f"{str(sb.dataset.get('sha256'))[:12]}); tasks with the same id may differ"
        )
    if sa.samples_per_task != sb.samples_per_task:
        out.append(
            f"samples per task differ ({sa.samples_per_task} and {sb.samples_per_task}): per-task scores are "
            "fractions over different numbers of samples"
        )
    return out


def auto_pairs(runs: list[Run], summaries: dict[str, RunSummary]) -> list[tuple[Run, Run]]:
    """Every pair of ranked runs on the same benchmark, the better-ranked run first."""
    by_board: dict[str, list[Run]] = {}
    for r in runs:
        if summaries[r.run_id].ranked:
            by_board.setdefault(r.leaderboard, []).append(r)
    pairs = []
    for board in sorted(by_board):
        ordered = sorted(by_board[board], key=lambda r: (summaries[r.run_id].rank or 0, r.run_id))
        pairs += list(itertools.combinations(ordered, 2))
    return pairs


def resolve(name: str, runs: list[Run]) -> list[Run]:
    """Runs a --compare argument names: a run id, a run directory, or a model name."""
    by_id = [r for r in runs if r.run_id == name]
    if by_id:
        return by_id
    by_path = [r for r in runs if str(r.path) == name or r.path.name == name.rstrip("/").split("/")[-1]]
    if by_path:
        return by_path
    by_model = [r for r in runs if r.results.model == name]
    if not by_model:
        known = ", ".join(sorted({r.run_id for r in runs} | {r.results.model for r in runs}))
        raise UserInputError(f"--compare {name!r}: no run or model of that name among the inputs; known: {known}")
    return by_model


def requested_pairs(requests: list[tuple[str, str]], runs: list[Run]) -> list[tuple[Run, Run]]:
    """The pairs asked with --compare A B: for model names, one pair per benchmark both have runs on;
    a model with several runs on that benchmark must be named by run id."""
    pairs = []
    for x, y in requests:
        ra, rb = resolve(x, runs), resolve(y, runs)
        boards = sorted({r.leaderboard for r in ra} & {r.leaderboard for r in rb})
        if not boards:
            raise UserInputError(f"--compare {x} {y}: they have no benchmark in common")
        for board in boards:
            ca = [r for r in ra if r.leaderboard == board]
            cb = [r for r in rb if r.leaderboard == board]
            for side, cands in ((x, ca), (y, cb)):
                if len(cands) > 1:
                    ids = ", ".join(r.run_id for r in cands)
                    raise UserInputError(f"--compare {side!r}: {len(cands)} runs on {board} ({ids}); name one run id")
            if ca[0].run_id == cb[0].run_id:
                raise UserInputError(f"--compare {x} {y}: both name the run {ca[0].run_id}")
            pairs.append((ca[0], cb[0]))
    return pairs
