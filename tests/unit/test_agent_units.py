"""The agent solver's parts without Docker or a model: the scaffold is the package's, the model adapter
parses with the package's code, command output is bounded, and bad settings are refused up front."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UserInputError
from harness.models.base import ChatTurn, GenerationFailed, ToolCall

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _class_defaults(module: str, cls: str) -> dict[str, object]:
    """The literal field defaults of a class in one of the package's modules, read from its source
    (importing the module would import litellm, which takes seconds)."""
    import ast
    import importlib.util

    tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    return {
        s.target.id: s.value.value
        for s in node.body
        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and isinstance(s.value, ast.Constant)
    }


def test_defaults_copied_from_the_package_are_the_packages():
    """The adapter never imports litellm; the defaults it copies must stay the package's."""
    from harness.agent.scaffold import DEFAULT_OBSERVATION, TEXT_ACTION_REGEX, TEXT_FORMAT_ERROR

    text = _class_defaults("minisweagent.models.litellm_textbased_model", "LitellmTextbasedModelConfig")
    base = _class_defaults("minisweagent.models.litellm_model", "LitellmModelConfig")
    assert (text["action_regex"], text["format_error_template"]) == (TEXT_ACTION_REGEX, TEXT_FORMAT_ERROR)
    assert base["observation_template"] == DEFAULT_OBSERVATION


@pytest.mark.parametrize("actions, name", [("tools", "swebench.yaml"), ("text", "swebench_backticks.yaml")])
def test_the_packages_swebench_configs_are_used_unchanged(actions, name):
    import hashlib

    from minisweagent.config import builtin_config_dir

    from harness.agent.scaffold import load_scaffold

    sc = load_scaffold(actions, None)
    path = builtin_config_dir / "benchmarks" / name
    assert sc.path == path.resolve() and sc.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sc.version == "2.4.6" and sc.agent["step_limit"] == 250 and sc.environment["timeout"] == 60
    assert "environment_class" not in sc.environment  # always the harness's hardened container
    assert "model_name" in sc.provenance()["unused_model_keys"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("agent: [", "not valid YAML"),
        ("model: {}\n", "needs an `agent:` mapping"),
        ("agent: {system_template: hi}\n", "agent.instance_template: Field required"),
    ],
)
def test_a_bad_user_config_names_the_file_and_the_key(tmp_path, text, message):
    from harness.agent.scaffold import load_scaffold

    f = tmp_path / "mine.yaml"
    f.write_text(text)
    with pytest.raises(UserInputError) as e:
        load_scaffold("text", str(f))
    assert str(f) in str(e.value) and message in str(e.value)
    with pytest.raises(UserInputError, match="cannot read"):
        load_scaffold("text", str(tmp_path / "missing.yaml"))


class _Backend:
    def __init__(self, turns):
        self.turns, self.seen = list(turns), []

    def chat(self, messages, sampling, tools=None, seed=None):
        self.seen.append((messages, tools, seed))
        t = self.turns.pop(0)
        if isinstance(t, Exception):
            raise t
        return t


def _model(actions, turns):
    from harness.agent.scaffold import HarnessModel, load_scaffold

    events: list[dict] = []
    backend = _Backend(turns)
    m = HarnessModel(backend, None, load_scaffold(actions, None).model, actions, lambda n: 100 + n, events.append)
    return m, backend, events


def test_tools_turns_are_parsed_by_the_package_and_format_errors_carry_its_feedback():
    from minisweagent.exceptions import FormatError

    good = ChatTurn("THOUGHT", (ToolCall("c1", "bash", '{"command": "ls"}'),), "tool_calls", 7, 3)
    bad = ChatTurn(None, (ToolCall("c2", "bash", '{"command": '),), "tool_calls", 7, 3)
    m, backend, events = _model("tools", [good, bad])
    msg = m.query([{"role": "system", "content": "s", "extra": {"x": 1}}])
    assert msg["extra"]["actions"] == [{"command": "ls", "tool_call_id": "c1"}]
    assert msg["tool_calls"][0]["function"]["name"] == "bash"
    messages, tools, seed = backend.seen[0]
    assert messages == [{"role": "system", "content": "s"}]  # the trajectory's `extra` never goes to the API
    assert tools[0]["function"]["name"] == "bash" and seed == 101
    with pytest.raises(FormatError) as e:
        m.query([])
    assert "Error parsing tool call arguments" in e.value.messages[0]["content"]
    assert e.value.messages[0]["extra"]["response"]["usage"]["completion_tokens"] == 3  # the reply is kept
    assert (m.replies, m.prompt_tokens, m.completion_tokens) == (2, 14, 6)
    assert [("actions" in ev, "format_error" in ev) for ev in events] == [(True, False), (False, True)]


def test_text_turns_need_exactly_one_block_and_a_failed_turn_is_never_a_reply():
    from minisweagent.exceptions import FormatError

    one = ChatTurn("THOUGHT: x\n\n```mswea_bash_command\nls -la\n```", (), "stop", 1, 1)
    two = ChatTurn("```mswea_bash_command\nls\n```\n```mswea_bash_command\npwd\n```", (), "stop", 1, 1)
    m, backend, _ = _model("text", [one, two, GenerationFailed("HTTP 500", 6)])
    assert m.query([])["extra"]["actions"] == [{"command": "ls -la"}]
    assert backend.seen[0][1] is None  # no tools in text mode
    with pytest.raises(FormatError) as e:
        m.query([])
    assert "found 2 actions" in e.value.messages[0]["content"]
    with pytest.raises(GenerationFailed):
        m.query([])
    assert (m.calls, m.replies) == (3, 2)


def test_command_output_is_bounded_with_head_tail_and_count():
    from harness.agent.container import OUTPUT_KEEP, _Bounded

    b = _Bounded()
    b.add(b"a" * OUTPUT_KEEP)
    b.add(b"b" * 1000)
    b.add(b"c" * (OUTPUT_KEEP * 3))
    text = b.text()
    assert text.startswith("a" * OUTPUT_KEEP) and text.endswith("c" * OUTPUT_KEEP)
    assert f"[harness: {OUTPUT_KEEP * 2 + 1000} bytes of output not kept]" in text
    small = _Bounded()
    small.add("é".encode()[:1])  # a cut multi-byte character is replaced, as the package decodes
    assert small.text() == "\ufffd"


def test_vllm_serve_gets_the_tool_call_parser_flags():
    from harness.config import VLLMServerModel
    from harness.models.vllm_server import server_argv

    cfg = VLLMServerModel(backend="vllm-server", name="q", model="q", tool_call_parser="hermes")
    argv = server_argv(cfg, 8000)
    i = argv.index("--tool-call-parser")
    assert argv[i + 1] == "hermes" and "--enable-auto-tool-choice" in argv
    assert "--tool-call-parser" not in server_argv(VLLMServerModel(backend="vllm-server", name="q", model="q"), 1)


def _run(tmp_path: Path, config: str, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    (tmp_path / "c.yaml").write_text(config)
    return subprocess.run(
        [sys.executable, *extra, "-m", "harness", "run", "c.yaml", "--out", "out"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env=env,
    )


DATASET = {"instance_id": "a__b-1", "repo": "a/b", "base_commit": "0" * 40, "patch": "", "problem_statement": "x",
           "FAIL_TO_PASS": "[]", "PASS_TO_PASS": "[]", "image": "img:1"}  # fmt: skip


@pytest.mark.parametrize(
    "model, solver, bench, message",
    [
        ("{backend: vllm-server, name: m, model: m}", "{name: agent}", None,
         "model.tool_call_parser is not set, so vllm-server would answer in text only"),
        ("{backend: vllm, name: m, model: m}", "{name: agent, actions: tools}", None, "or use solver.actions: text"),
        ("{backend: openai, name: m, model: m, base_url: 'http://127.0.0.1:9/v1'}", "{name: agent}", "humaneval",
         "solver.name agent: works on SWE-bench instances, not benchmark 'humaneval'"),
        ("{backend: openai, name: m, model: m, base_url: 'http://127.0.0.1:9/v1'}", "{name: agent, config: nope.yaml}",
         None, "solver.config nope.yaml: cannot read"),
        ("{backend: openai, name: m, model: m, base_url: 'http://127.0.0.1:9/v1'}", "{name: agent}", None,
         "sampling.max_tokens: set it for agent turns"),
    ],
)  # fmt: skip
def test_agent_settings_that_cannot_work_are_refused_before_any_work(tmp_path, model, solver, bench, message):
    (tmp_path / "d.jsonl").write_text(json.dumps(DATASET) + "\n")
    benchmark = bench or "{name: swebench, path: d.jsonl}"
    p = _run(tmp_path, f"model: {model}\nbenchmark: {benchmark}\nsolver: {solver}\n")
    assert p.returncode == 2, p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()


def test_without_mini_swe_agent_the_agent_solver_is_exit_3_naming_the_install(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps(DATASET) + "\n")
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['minisweagent'] = None\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")
    cfg = "model: {backend: openai, name: m, model: m, base_url: 'http://127.0.0.1:9/v1'}\n"
    p = _run(tmp_path, cfg + "benchmark: {name: swebench, path: d.jsonl}\nsolver: {name: agent}\n", env=env)
    assert p.returncode == 3, p.stderr
    assert "pip install 'harness[agent]'" in p.stderr and "Traceback" not in p.stderr
