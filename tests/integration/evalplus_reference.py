"""evalplus 0.3.1's own checker on a samples file (run by the parity test under bubblewrap).

Mirrors evalplus.evaluate: expected outputs from the canonical solution (trusted_exec, with times),
then untrusted_check on the base and the plus inputs; a sample passes HumanEval+ when both pass.
Writes one boolean per sample line, in file order.

    python evalplus_reference.py HumanEvalPlus-v0.1.10.jsonl.gz samples.jsonl out.json
"""

import gzip
import json
import sys
from concurrent.futures import ThreadPoolExecutor

from evalplus.eval import PASS, untrusted_check
from evalplus.gen.util import trusted_exec


def main() -> None:
    data_path, samples_path, out_path = sys.argv[1:4]
    problems = {}
    with gzip.open(data_path, "rt") as f:
        for line in f:
            p = json.loads(line)
            problems[p["task_id"]] = p
    expected = {}
    with open(samples_path) as f:
        samples = [json.loads(line) for line in f if line.strip()]
    for tid in {s["task_id"] for s in samples}:
        p = problems[tid]
        code = p["prompt"] + p["canonical_solution"]
        base, base_t = trusted_exec(code, p["base_input"], p["entry_point"], record_time=True)
        plus, plus_t = trusted_exec(code, p["plus_input"], p["entry_point"], record_time=True)
        expected[tid] = (base, base_t, plus, plus_t)

    def check(s: dict) -> bool:
        p = problems[s["task_id"]]
        sol = s["solution"] if "solution" in s else p["prompt"] + s["completion"]
        base, base_t, plus, plus_t = expected[s["task_id"]]
        b, _ = untrusted_check("humaneval", sol, p["base_input"], p["entry_point"], base, p["atol"], base_t)
        ok = b == PASS
        if ok:
            q, _ = untrusted_check("humaneval", sol, p["plus_input"], p["entry_point"], plus, p["atol"], plus_t)
            ok = q == PASS
        return ok

    with ThreadPoolExecutor(max_workers=4) as pool:  # evalplus runs checks in parallel too
        verdicts = list(pool.map(check, samples))
    with open(out_path, "w") as f:
        json.dump(verdicts, f)


if __name__ == "__main__":
    main()
