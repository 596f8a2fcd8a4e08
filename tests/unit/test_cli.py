import subprocess
import sys

HEAVY = ("docker", "numpy", "vllm", "torch", "transformers", "swebench", "httpx")


def test_help_does_not_import_heavy_modules():
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "harness", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "evaluate" in proc.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), imported & set(HEAVY)


def test_list_shows_registries():
    proc = subprocess.run([sys.executable, "-m", "harness", "list"], capture_output=True, text=True)
    assert proc.returncode == 0
    for word in (
        "benchmarks:",
        "humaneval",
        "humaneval-plus",
        "sandboxes:",
        "docker",
        "bwrap",
        "model backends:",
    ):
        assert word in proc.stdout
