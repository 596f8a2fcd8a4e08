"""SWE-bench data: instances, prompts in the paper's retrieval-baseline style, and diff extraction.

Instances come from Hugging Face `datasets` (split lite | verified | full | dev) or from a local
parquet / JSON / JSONL file. Grading is done by the official `swebench` package (see
harness/scoring/swebench.py); this module never decides whether a patch resolves. The plug-in
that puts these together is harness/benchmarks/swebench_bench.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import EnvironmentNotReady, UserInputError

SPLITS = {
    "lite": ("SWE-bench/SWE-bench_Lite", "test"),
    "verified": ("SWE-bench/SWE-bench_Verified", "test"),
    "full": ("SWE-bench/SWE-bench", "test"),
    "dev": ("SWE-bench/SWE-bench_Lite", "dev"),
}
REQUIRED = ("instance_id", "repo", "base_commit", "patch", "problem_statement", "FAIL_TO_PASS", "PASS_TO_PASS")


@dataclass
class SWEDataset:
    name: str
    source: str
    sha256: str
    instances: list[dict]
    split: str | None = None  # lite | verified | full | dev when known: the leaderboard it belongs on
    full_tasks: int | None = None  # instances before instance_ids / repos / limit: a filtered run is partial

    @property
    def by_id(self) -> dict[str, dict]:
        return {i["instance_id"]: i for i in self.instances}

    def info(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "sha256": self.sha256,
            "tasks": len(self.instances),
            "split": self.split,
            "full_tasks": self.full_tasks,
        }


# Local copies of the official splits under their published file names (e.g. SWE-bench_Lite.test.parquet).
_LOCAL_SPLITS = {
    "swe-bench_lite.test": "lite",
    "swe-bench_verified.test": "verified",
    "swe-bench.test": "full",
    "swe-bench_lite.dev": "dev",
}


def _read_local(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text()
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    raise UserInputError(f"{path}:{n}: not valid JSON ({e.args[0]})") from None
        return rows
    data = json.loads(text)
    return list(data.values()) if isinstance(data, dict) else data


def content_sha256(rows: list[dict]) -> str:
    """Hash of the instances themselves (independent of the file format they came in)."""
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: r["instance_id"]):
        h.update(json.dumps(r, sort_keys=True, default=str).encode())
    return h.hexdigest()


def load_dataset(
    spec: str, instance_ids: list[str] | None = None, repos: list[str] | None = None, limit: int | None = None
) -> SWEDataset:
    """spec: lite | verified | full | dev (Hugging Face) or a local .parquet / .json / .jsonl path."""
    known_split = spec if spec in SPLITS else None
    if spec in SPLITS:
        name, split = SPLITS[spec]
        try:
            import datasets

            rows = [dict(r) for r in datasets.load_dataset(name, split=split)]
        except Exception as e:
            raise EnvironmentNotReady(
                f"cannot load {name} ({split}) from Hugging Face ({type(e).__name__}: {str(e)[:200]}); "
                "pass a local parquet/JSON file instead"
            ) from None
        source = f"hf:{name}:{split}"
    else:
        path = Path(spec)
        if not path.is_file():
            raise UserInputError(f"--dataset {spec!r}: not one of {', '.join(SPLITS)} and not a file")
        rows = _read_local(path)
        source = str(path.resolve())
        name = path.stem
        known_split = _LOCAL_SPLITS.get(path.stem.lower())
    for n, r in enumerate(rows):
        missing = [k for k in REQUIRED if k not in r]
        if missing:
            raise UserInputError(f"{spec}: instance {n} ({r.get('instance_id', '?')}) lacks {', '.join(missing)}")
    full_tasks = len(rows)
    if instance_ids:
        known = {r["instance_id"] for r in rows}
        unknown = [i for i in instance_ids if i not in known]
        if unknown:
            raise UserInputError(f"instance_ids: not in {spec}: {', '.join(unknown[:5])}")
        rows = [r for r in rows if r["instance_id"] in set(instance_ids)]
    if repos:
        rows = [r for r in rows if r["repo"] in set(repos)]
    if limit:
        rows = rows[:limit]
    if not rows:
        raise UserInputError(f"{spec}: no instances left after the filters")
    return SWEDataset(name, source, content_sha256(rows), rows, known_split, full_tasks)


# -- prompts -------------------------------------------------------------------------------------

PROMPT = """You will be provided with a partial code base and an issue statement explaining a problem to resolve.
<issue>
{issue}
</issue>
<code>
{code}
</code>
Here is an example of a patch file. It consists of changes to the code base. It specifies the file names, \
the line numbers of each change, and the removed and added lines. A single patch file can contain changes \
to multiple files.
<patch>
--- a/file.py
+++ b/file.py
@@ -1,27 +1,35 @@
 def euclidean(a, b):
-    while b:
-        a, b = b, a % b
-    return a
+    if b == 0:
+        return a
+    return euclidean(b, a % b)
</patch>
I need you to solve the provided issue by generating a single patch file that I can apply directly to this \
repository using git apply. Please respond with a single patch file in the format shown above.
Respond below:
"""


def prompt_sha256() -> str:
    return hashlib.sha256(PROMPT.encode()).hexdigest()


def numbered(path: str, text: str) -> str:
    lines = "\n".join(f"{i} {line}" for i, line in enumerate(text.splitlines(), 1))
    return f"[start of {path}]\n{lines}\n[end of {path}]"


def gold_files(instance: dict) -> list[str]:
    """Files the gold patch modifies (the 'oracle' retrieval of the SWE-bench paper)."""
    from unidiff import PatchSet

    return [f.source_file[2:] for f in PatchSet(instance["patch"]) if f.source_file != "/dev/null"]


class RepoCache:
    """One bare mirror per repository under the cache dir; files are read at base_commit from it."""

    def __init__(self, root: Path, url_template: str = "https://github.com/{repo}.git") -> None:
        self.root = root
        self.url_template = url_template

    def mirror(self, repo: str) -> Path:
        path = self.root / (repo.replace("/", "__") + ".git")
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".partial")
            subprocess.run(["rm", "-rf", str(tmp)], check=True)
            proc = subprocess.run(
                ["git", "clone", "--mirror", "--quiet", self.url_template.format(repo=repo), str(tmp)],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise EnvironmentNotReady(f"cannot clone {repo}: {proc.stderr.strip()[-300:]}")
            tmp.rename(path)
        return path

    def read(self, repo: str, commit: str, path: str) -> str | None:
        proc = subprocess.run(
            ["git", "--git-dir", str(self.mirror(repo)), "show", f"{commit}:{path}"], capture_output=True
        )
        return proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else None


def build_prompt(instance: dict, context: str, cache: RepoCache | None) -> str:
    """The paper's prompt: the issue, the code with line numbers, the instruction to answer with a diff."""
    if context == "text":
        if not instance.get("text"):
            raise UserInputError(f"{instance['instance_id']}: context 'text' needs a 'text' column in the dataset")
        return instance["text"]
    assert cache is not None
    parts = []
    for f in gold_files(instance):
        content = cache.read(instance["repo"], instance["base_commit"], f)
        if content is not None:
            parts.append(numbered(f, content))
    return PROMPT.format(issue=instance["problem_statement"], code="\n".join(parts))


# -- extraction ----------------------------------------------------------------------------------

_TAG = re.compile(r"<patch>\s*\n?(.*?)(?:</patch>|\Z)", re.S)
_FENCE = re.compile(r"```(?:diff|patch)?[ \t]*\n(.*?)(?:```|\Z)", re.S)
_BARE = re.compile(r"^(?:diff --git |--- (?:a/|/dev/null))", re.M)


def extract_diff(raw: str) -> str:
    """The diff in an answer: inside <patch> tags, else a fenced diff block, else from the first diff header."""
    for pattern in (_TAG, _FENCE):
        for block in pattern.findall(raw):
            if _BARE.search(block):
                return block[_BARE.search(block).start() :].rstrip() + "\n"
    m = _BARE.search(raw)
    return raw[m.start() :].rstrip() + "\n" if m else ""


def validate_diff(diff: str) -> str | None:
    """None if unidiff parses it into at least one file, else the reason."""
    from unidiff import PatchSet
    from unidiff.errors import UnidiffParseError

    if not diff.strip():
        return "empty"
    try:
        ps = PatchSet(diff)
    except UnidiffParseError as e:
        return f"not a unified diff: {e}"
    return None if len(ps) else "no file in the diff"


def read_predictions(path: Path, dataset: SWEDataset) -> dict[str, dict]:
    """Predictions in the official format (JSONL, or JSON list / dict): instance_id, model_patch,
    model_name_or_path; gzip-compressed or not, with or without a UTF-8 byte-order mark. Any problem
    is a UserInputError naming the file and the line."""
    from harness.inputfile import is_json_name, read_json, read_jsonl

    rows: list[tuple[str, object]]
    if is_json_name(path):  # x.json or x.json.gz: one document; anything else is JSON Lines
        data = read_json(path)
        items = list(data.values()) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise UserInputError(f"{path}: expected a list of predictions or a dict by instance_id")
        rows = [(f"{path}: item {n}", r) for n, r in enumerate(items)]
    else:
        rows = [(f"{path}:{n}", r) for n, r in read_jsonl(path)]
    if not rows:
        raise UserInputError(f"{path}: the predictions file is empty")
    known = dataset.by_id
    out: dict[str, dict] = {}
    for where, r in rows:
        if not isinstance(r, dict):
            raise UserInputError(f"{where}: expected a JSON object")
        for k in ("instance_id", "model_patch"):
            if k not in r:
                raise UserInputError(f"{where}: missing field {k!r}")
        if r["instance_id"] not in known:
            raise UserInputError(f"{where}: instance_id {r['instance_id']!r} is not in {dataset.name}")
        if r["model_patch"] is not None and not isinstance(r["model_patch"], str):
            raise UserInputError(f"{where}: model_patch must be a string or null")
        if r["instance_id"] in out:
            raise UserInputError(f"{where}: a second prediction for {r['instance_id']}")
        out[r["instance_id"]] = {
            "model_patch": r["model_patch"] or "",
            "model_name_or_path": str(r.get("model_name_or_path") or "model"),
        }
    return out
