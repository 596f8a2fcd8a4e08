"""Shared fixtures. Integration tests use the real Docker engine and real bubblewrap: when either
is missing they fail (a missing engine in CI is a failure, not a skip)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
HEPLUS_FILE = SHARED_DATA / "humanevalplus" / "HumanEvalPlus-OriginFmt-v0.1.10.jsonl.gz"


@pytest.fixture(scope="session", autouse=True)
def _data_dir() -> None:
    # Tests read HumanEval+ from ../shared/data, never from the network.
    os.environ["HARNESS_DATA_DIR"] = str(SHARED_DATA / "humanevalplus")


@pytest.fixture(scope="session")
def humaneval():
    from harness.benchmarks.humaneval import HumanEval

    return HumanEval()


@pytest.fixture(scope="session")
def humaneval_plus():
    from harness.benchmarks.humaneval import HumanEvalPlus

    return HumanEvalPlus(HEPLUS_FILE)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tree_digest(root: Path) -> str:
    """Hash of every file's name and content under root (to prove nothing was written)."""
    h = hashlib.sha256()
    if root.exists():
        for p in sorted(root.rglob("*")):
            h.update(str(p.relative_to(root)).encode())
            if p.is_file():
                h.update(p.read_bytes())
    return h.hexdigest()


TIERS = ("unit", "docker", "bwrap", "vllm", "swebench", "browser", "ray")


def pytest_collection_modifyitems(config, items) -> None:
    """Tests under tests/unit are the `unit` tier; every other test must carry a tier marker, so that
    `-m` selects real subsets and no test falls outside every tier."""
    untiered = []
    for item in items:
        if "tests/unit/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.unit)
        elif not any(item.get_closest_marker(t) for t in TIERS):
            untiered.append(item.nodeid)
    if untiered:
        raise pytest.UsageError(f"tests without a tier marker ({', '.join(TIERS)}): {', '.join(untiered)}")


@pytest.fixture(
    scope="session",
    params=[pytest.param("docker", marks=pytest.mark.docker), pytest.param("bwrap", marks=pytest.mark.bwrap)],
)
def sandbox_kind(request) -> str:
    """Each integration test runs in both sandboxes; the fixture checks the sandbox is ready."""
    from harness.sandbox import make_sandbox

    make_sandbox(request.param, 1)  # raises EnvironmentNotReady with the fixing command
    return request.param


@pytest.fixture(scope="session")
def tiny_model() -> str:
    """The real tiny model's checkpoint directory (provisioned once, idempotently)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(REPO / "scripts/provision_tiny_model.py")], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


# The settings of the tiny model for the vLLM fixtures that stay up while others start (CPU: the
# share of RAM for the KV cache; the weights alone need more than 0.1).
TINY_VLLM = {
    "device": "cpu",
    "dtype": "bfloat16",
    "max_model_len": 2048,
    "gpu_memory_utilization": 0.25,
    "enforce_eager": True,
    "enable_prefix_caching": False,
}


@pytest.fixture(scope="session")
def tiny_server(tiny_model, tmp_path_factory):
    """One `vllm serve` of the tiny model on loopback (with the pythonic tool-call parser), shared by
    every test that only talks to a server: started once per session, stopped at its end."""
    from harness.config import VLLMServerModel
    from harness.models.vllm_server import VLLMServerBackend

    srv = VLLMServerBackend(
        VLLMServerModel(backend="vllm-server", name="tiny", model=tiny_model, tool_call_parser="pythonic", **TINY_VLLM),
        tmp_path_factory.mktemp("tiny-server"),
    )
    try:
        srv.start()
        yield srv
    finally:
        srv.close()
