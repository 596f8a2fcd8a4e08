"""Reading an agent instance's trajectory (trajectories/<instance>/steps.jsonl) for its page.

steps.jsonl is the harness's own record, one event a line: `start`, then per model call a `turn`
(the raw assistant message, its parsed actions or the format error, usage, latency) followed by
one `observation` per command it ran (command, return code, output, duration), and `exit`
(status, submission, worktree diff). A step here is one turn with the observations after it, so
the page's step count is the number of model calls, as generations.jsonl counts them.

Everything is model- or repository-written text, so it is redacted with the run's secrets, shown
only through jinja2's autoescaping, and cut for display when huge (head and tail kept, with a
note naming the file that holds it whole). A trajectory that is missing or has unreadable lines
is shown with a note rather than failing the report: it explains a verdict, it is not one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.redact import redact_data

# Characters of one text shown on a page; command outputs can be megabytes. The tail is kept too:
# a failing test run or a traceback ends there.
SHOW_HEAD = 12_000
SHOW_TAIL = 4_000
STEPS_FILE = "steps.jsonl"


@dataclass
class Text:
    """A text as shown: maybe cut, with a note saying how much was left out and where it is whole."""

    text: str
    note: str | None = None


def shown(value: Any, where: str) -> Text:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    if len(text) <= SHOW_HEAD + SHOW_TAIL:
        return Text(text)
    cut = len(text) - SHOW_HEAD - SHOW_TAIL
    marker = f"\n[... {cut:,} characters not shown ...]\n"
    note = f"{len(text):,} characters, the first {SHOW_HEAD:,} and last {SHOW_TAIL:,} shown; all of it is in {where}"
    return Text(text[:SHOW_HEAD] + marker + text[-SHOW_TAIL:], note)


@dataclass
class Observation:
    command: Text
    returncode: Any
    output: Text
    exception: Text | None
    duration_s: float | None


@dataclass
class Step:
    n: int
    content: Text | None
    reasoning: Text | None
    tool_calls: list[tuple[str, Text]]
    actions: list[str]
    format_error: Text | None
    finish_reason: str | None
    usage: dict
    latency_s: float | None
    attempts: int | None
    observations: list[Observation] = field(default_factory=list)

    @property
    def label(self) -> str:
        """One line for the collapsed step: what it ran, or that it ran nothing."""
        if self.format_error is not None:
            return "format error"
        if not self.actions:
            return "no action"
        first = self.actions[0].strip().splitlines()[0] if self.actions[0].strip() else "(empty command)"
        first = first if len(first) <= 110 else first[:107] + "..."
        return first + (f" (+{len(self.actions) - 1} more)" if len(self.actions) > 1 else "")

    @property
    def failed(self) -> bool:
        return any(o.returncode not in (0, "0") for o in self.observations)


@dataclass
class Trajectory:
    source: str  # the file, relative to the run directory
    start: dict | None = None
    steps: list[Step] = field(default_factory=list)
    exit: dict | None = None
    problems: list[str] = field(default_factory=list)


def _message(message: Any, where: str) -> tuple[Text | None, Text | None, list[tuple[str, Text]]]:
    """(content, reasoning, tool calls) of a raw assistant message (a chat message, or plain text)."""
    if isinstance(message, str):
        return shown(message, where), None, []
    if not isinstance(message, dict):
        return (shown(message, where) if message is not None else None), None, []
    content = message.get("content")
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    calls = []
    for c in message.get("tool_calls") or []:
        fn = (c.get("function") or {}) if isinstance(c, dict) else {}
        calls.append((str(fn.get("name") or "?"), shown(fn.get("arguments") or "", where)))
    return (
        shown(content, where) if content not in (None, "") else None,
        shown(reasoning, where) if reasoning else None,
        calls,
    )


def _turn(e: dict, where: str) -> Step:
    content, reasoning, calls = _message(e.get("message"), where)
    fe = e.get("format_error")
    return Step(
        n=int(e.get("call") or 0),
        content=content,
        reasoning=reasoning,
        tool_calls=calls,
        actions=[str(a) for a in e.get("actions") or []],
        format_error=shown(fe, where) if fe is not None else None,
        finish_reason=e.get("finish_reason"),
        usage=e.get("usage") or {},
        latency_s=e.get("latency_s"),
        attempts=e.get("attempts"),
    )


def _observation(e: dict, where: str) -> Observation:
    exc = e.get("exception_info")
    return Observation(
        command=shown(str(e.get("command") or ""), where),
        returncode=e.get("returncode"),
        output=shown(e.get("output") or "", where),
        exception=shown(exc, where) if exc else None,
        duration_s=e.get("duration_s"),
    )


def read_trajectory(run_dir: Path, rel: str | None, task_id: str, secrets: list[str]) -> Trajectory:
    """The steps of one instance; `rel` is generations.jsonl's `info.trajectory` (trajectories/<id>)."""
    rel = rel or f"trajectories/{task_id}"
    where = f"{rel}/{STEPS_FILE} in the run directory"
    traj = Trajectory(source=f"{rel}/{STEPS_FILE}")
    root = run_dir.resolve()
    path = (run_dir / rel / STEPS_FILE).resolve()
    if root not in path.parents:  # the row names a place outside its run directory: not read
        traj.problems.append(f"{rel}: outside the run directory; not read")
        return traj
    if not path.is_file():
        traj.problems.append(f"no trajectory was recorded ({traj.source} is missing)")
        return traj
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                traj.problems.append(f"{traj.source}:{i}: not a JSON line (cut short?); skipped")
                continue
            if not isinstance(event, dict):
                traj.problems.append(f"{traj.source}:{i}: not an event; skipped")
                continue
            _add(traj, redact_data(event, secrets), where)
    if traj.exit is None:
        traj.problems.append("the trajectory has no exit event: the instance was cut off before it ended")
    return traj


def _add(traj: Trajectory, e: dict, where: str) -> None:
    kind = e.get("type")
    if kind == "start":
        traj.start = e
    elif kind == "turn":
        traj.steps.append(_turn(e, where))
    elif kind == "observation":
        if not traj.steps:  # a command before any model call: not written by the harness, shown anyway
            traj.steps.append(_turn({"call": 0}, where))
        traj.steps[-1].observations.append(_observation(e, where))
    elif kind == "exit":
        traj.exit = e


def diff_lines(text: str) -> list[tuple[str, str]]:
    """(css class, line) of a unified diff, for colouring added, removed and hunk lines."""
    out = []
    for line in text.splitlines():
        if line.startswith(("+++", "---", "diff ", "index ", "new file", "deleted file", "Binary files")):
            cls = "meta"
        elif line.startswith("@@"):
            cls = "hunk"
        elif line.startswith("+"):
            cls = "add"
        elif line.startswith("-"):
            cls = "del"
        else:
            cls = ""
        out.append((cls, line))
    return out
