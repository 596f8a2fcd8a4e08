"""SWE-bench helpers: diff extraction and validation, the real splits' files, predictions formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.benchmarks.swebench import (
    build_prompt,
    extract_diff,
    gold_files,
    load_dataset,
    numbered,
    read_predictions,
    validate_diff,
)
from harness.errors import UserInputError
from tests.conftest import SHARED_DATA

DIFF = """diff --git a/x.py b/x.py
--- a/x.py
+++ b/x.py
@@ -1,2 +1,2 @@
 def f():
-    return 1
+    return 2
"""


@pytest.mark.parametrize(
    "answer",
    [
        f"Sure.\n<patch>\n{DIFF}</patch>\nDone.",
        f"Here:\n```diff\n{DIFF}```\n",
        f"Here:\n```\n{DIFF}```",
        f"{DIFF}",
        f"The change is below.\n\n{DIFF}\nHope it helps",
    ],
)
def test_extract_diff_forms(answer):
    got = extract_diff(answer)
    assert got.startswith("diff --git a/x.py") and "+    return 2" in got
    assert validate_diff(got) is None


def test_no_diff_is_empty_and_garbage_is_invalid():
    assert extract_diff("I cannot help with that.") == ""
    assert validate_diff("") == "empty"
    assert validate_diff("--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n-only one line\n") is not None


def test_real_lite_dev_split_loads_with_every_field():
    ds = load_dataset(str(SHARED_DATA / "swebench/SWE-bench_Lite.dev.parquet"))
    assert len(ds.instances) == 23 and len(ds.sha256) == 64
    inst = ds.instances[0]
    assert inst["image"] and inst["eval_script"].startswith("#!/bin/bash") and inst["log_parser"]
    assert gold_files(inst) and all(not f.startswith(("a/", "b/")) for f in gold_files(inst))
    lim = load_dataset(str(SHARED_DATA / "swebench/SWE-bench_Lite.test.parquet"), repos=["django/django"], limit=5)
    assert len(lim.instances) == 5 and {i["repo"] for i in lim.instances} == {"django/django"}
    # the split is recognised from the official file name, and the size before filtering is kept,
    # so the report puts the run on the Lite board and marks it partial
    assert (ds.info()["split"], ds.info()["full_tasks"]) == ("dev", 23)
    assert (lim.info()["split"], lim.info()["tasks"], lim.info()["full_tasks"]) == ("lite", 5, 300)
    with pytest.raises(UserInputError, match="not in"):
        load_dataset(str(SHARED_DATA / "swebench/SWE-bench_Lite.dev.parquet"), instance_ids=["nope__x-1"])


def test_text_context_uses_the_dataset_column():
    inst = {"instance_id": "a__b-1", "text": "PROMPT TEXT"}
    assert build_prompt(inst, "text", None) == "PROMPT TEXT"
    with pytest.raises(UserInputError, match="needs a 'text' column"):
        build_prompt({"instance_id": "a__b-1"}, "text", None)
    assert numbered("f.py", "a\nb") == "[start of f.py]\n1 a\n2 b\n[end of f.py]"


def test_predictions_json_dict_and_list(tmp_path: Path):
    ds = load_dataset(str(SHARED_DATA / "swebench/SWE-bench_Lite.dev.parquet"), limit=2)
    ids = [i["instance_id"] for i in ds.instances]
    as_dict = {i: {"instance_id": i, "model_patch": DIFF, "model_name_or_path": "m"} for i in ids}
    f = tmp_path / "p.json"
    f.write_text(json.dumps(as_dict))
    assert set(read_predictions(f, ds)) == set(ids)
    f.write_text(json.dumps(list(as_dict.values())))
    assert read_predictions(f, ds)[ids[0]]["model_patch"] == DIFF
    f.write_text(json.dumps([as_dict[ids[0]], as_dict[ids[0]]]))
    with pytest.raises(UserInputError, match="a second prediction"):
        read_predictions(f, ds)
