"""mini-swe-agent's scaffold, with each model turn sent through a harness backend.

The loop (DefaultAgent), the prompts (the package's benchmarks/swebench.yaml for `actions: tools`,
swebench_backticks.yaml for `actions: text`, or the user's file), the action parsing and the
observation formatting are the package's own. What the harness replaces is litellm: a turn is one
`backend.chat()` call with the backend's retries, and one that still fails raises (GenerationFailed,
ContextOverflow), never an empty or invented reply. The package's own litellm model is never
imported (it fetches a price list from the network on import).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import EnvironmentNotReady, UserInputError

ACTION_CONFIGS = {"tools": "swebench.yaml", "text": "swebench_backticks.yaml"}
# Defaults of the package's litellm model configs, for configs that do not set them (the package's own
# classes import litellm; tests/unit/test_agent_units.py checks these are still the package's).
TEXT_ACTION_REGEX = r"```mswea_bash_command\s*\n(.*?)\n```"
TEXT_FORMAT_ERROR = "Please always provide EXACTLY ONE action in triple backticks, found {{actions|length}} actions."
# LitellmModelConfig's default observation template (also checked against the package).
DEFAULT_OBSERVATION = (
    "{% if output.exception_info %}<exception>{{output.exception_info}}</exception>\n{% endif %}"
    "<returncode>{{output.returncode}}</returncode>\n<output>\n{{output.output}}</output>"
)
# litellm's own keys of a config's `model:` part: the harness's backend and sampling settings decide these.
LITELLM_ONLY = ("model_name", "model_kwargs", "litellm_model_registry", "set_cache_control", "cost_tracking")
INSTALL = "pip install 'harness[agent]' (or `bash scripts/setup.sh`)"


def require_package() -> str:
    """mini-swe-agent's version; exit 3 with the install command when it is missing."""
    os.environ.setdefault("MSWEA_SILENT_STARTUP", "1")  # no banner on our console
    try:
        import minisweagent
    except ImportError:
        raise EnvironmentNotReady(f"the agent solver needs mini-swe-agent: {INSTALL}") from None
    return minisweagent.__version__


class ModelSettings(BaseModel):
    """The `model:` part of a mini-swe-agent config that the harness uses (the rest is litellm's)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    observation_template: str = DEFAULT_OBSERVATION
    format_error_template: str = "{{ error }}"
    action_regex: str = TEXT_ACTION_REGEX
    multimodal_regex: str = ""


@dataclass(frozen=True)
class Scaffold:
    """One mini-swe-agent config, as loaded: what provenance records and what the agent is built from."""

    actions: str
    path: Path
    sha256: str
    version: str
    data: dict

    @property
    def agent(self) -> dict:
        return dict(self.data.get("agent") or {})

    @property
    def environment(self) -> dict:
        env = dict(self.data.get("environment") or {})
        env.pop("environment_class", None)  # always the harness's hardened container
        return env

    @property
    def model(self) -> ModelSettings:
        """The config's model settings (litellm's keys stay: templates may name them), with the
        package's default for the action format where the config sets none."""
        data = dict(self.data.get("model") or {})
        if self.actions == "text":
            data.setdefault("format_error_template", TEXT_FORMAT_ERROR)
        return ModelSettings(**data)

    def provenance(self) -> dict:
        unused = sorted(k for k in self.data.get("model") or {} if k in LITELLM_ONLY)
        return {
            "package": "mini-swe-agent",
            "version": self.version,
            "config": str(self.path),
            "sha256": self.sha256,
            "unused_model_keys": unused,  # litellm's settings: the run's model and sampling config stand instead
        }


def load_scaffold(actions: str, path: str | None) -> Scaffold:
    """The package's SWE-bench config for the action format, or the user's file (checked here)."""
    version = require_package()
    from minisweagent.agents.default import AgentConfig
    from minisweagent.config import builtin_config_dir

    file = Path(path) if path else builtin_config_dir / "benchmarks" / ACTION_CONFIGS[actions]
    where = f"solver.config {file}" if path else str(file)
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise UserInputError(f"{where}: cannot read ({e.strerror})") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise UserInputError(f"{where}: not valid YAML ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("agent"), dict):
        raise UserInputError(f"{where}: a mini-swe-agent config needs an `agent:` mapping (system_template, ...)")
    for section, check in (("agent", AgentConfig), ("model", ModelSettings)):
        try:
            check(**(data.get(section) or {}))
        except (ValidationError, TypeError) as e:
            first = e.errors()[0] if isinstance(e, ValidationError) else {"loc": (), "msg": "must be a mapping"}
            loc = ".".join([section, *(str(p) for p in first["loc"])])
            raise UserInputError(f"{where}: {loc}: {first['msg']}") from None
    return Scaffold(actions, file.resolve(), hashlib.sha256(raw).hexdigest(), version, data)


def _api_message(m: dict) -> dict:
    """A trajectory message as the chat API takes it (the package's `extra` stays in the trajectory)."""
    return {k: v for k, v in m.items() if k in ("role", "content", "tool_calls", "tool_call_id", "name")}


class HarnessModel:
    """mini-swe-agent's Model protocol over a harness backend; counts tokens and reports each turn."""

    def __init__(
        self,
        backend: Any,
        sampling: Any,
        settings: ModelSettings,
        actions: str,
        seed: Callable[[int], int],
        on_turn: Callable[[dict], None] | None = None,
        label: dict | None = None,
    ) -> None:
        self.backend, self.sampling, self.config, self.actions = backend, sampling, settings, actions
        self.seed, self.on_turn, self.label = seed, on_turn, label or {}
        self.calls = 0  # model calls made (a call that failed included)
        self.replies = 0  # replies received: the instance's steps
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def query(self, messages: list[dict], **kwargs: Any) -> dict:
        """One turn: the assistant message with its parsed actions (FormatError when it has none usable)."""
        from minisweagent.exceptions import FormatError

        tools = self._tools()
        self.calls += 1
        turn = self.backend.chat([_api_message(m) for m in messages], self.sampling, tools, self.seed(self.calls))
        self.replies += 1
        self.prompt_tokens += turn.prompt_tokens or 0
        self.completion_tokens += turn.completion_tokens or 0
        response = {
            "message": turn.raw if turn.raw is not None else turn.message(),
            "finish_reason": turn.finish_reason,
            "usage": {"prompt_tokens": turn.prompt_tokens, "completion_tokens": turn.completion_tokens},
            "latency_s": turn.latency_s,
            "attempts": turn.attempts,
        }
        event = {"type": "turn", "call": self.calls, **response}
        try:
            actions = self._parse(turn)
        except FormatError as e:
            e.messages[0]["extra"].update({"cost": 0.0, "response": response})
            if self.on_turn:
                self.on_turn({**event, "format_error": e.messages[0]["content"]})
            raise
        if self.on_turn:
            self.on_turn({**event, "actions": [a["command"] for a in actions]})
        message = turn.message()
        message["extra"] = {"actions": actions, "response": response, "cost": 0.0, "timestamp": time.time()}
        return message

    def _tools(self) -> list[dict] | None:
        if self.actions != "tools":
            return None
        from minisweagent.models.utils.actions_toolcall import BASH_TOOL

        return [BASH_TOOL]

    def _parse(self, turn: Any) -> list[dict]:
        extra = {"finish_reason": turn.finish_reason}
        if self.actions == "tools":
            from minisweagent.models.utils.actions_toolcall import parse_toolcall_actions

            calls = [
                SimpleNamespace(id=c.id, function=SimpleNamespace(name=c.name, arguments=c.arguments))
                for c in turn.tool_calls
            ]
            return parse_toolcall_actions(
                calls, format_error_template=self.config.format_error_template, template_kwargs=extra
            )
        from minisweagent.models.utils.actions_text import parse_regex_actions

        return parse_regex_actions(
            turn.content or "",
            action_regex=self.config.action_regex,
            format_error_template=self.config.format_error_template,
            template_kwargs=extra,
        )

    def format_message(self, **kwargs: Any) -> dict:
        from minisweagent.models.utils.openai_multimodal import expand_multimodal_content

        return expand_multimodal_content(kwargs, pattern=self.config.multimodal_regex)

    def format_observation_messages(
        self, message: dict, outputs: Sequence[dict], template_vars: dict | None = None
    ) -> list[dict]:
        kw = {
            "observation_template": self.config.observation_template,
            "template_vars": template_vars,
            "multimodal_regex": self.config.multimodal_regex,
        }
        if self.actions == "tools":
            from minisweagent.models.utils.actions_toolcall import format_toolcall_observation_messages

            actions = message.get("extra", {}).get("actions", [])
            return format_toolcall_observation_messages(actions=actions, outputs=list(outputs), **kw)
        from minisweagent.models.utils.actions_text import format_observation_messages

        return format_observation_messages(list(outputs), **kw)

    def get_template_vars(self, **kwargs: Any) -> dict[str, Any]:
        return self.config.model_dump()

    def serialize(self) -> dict:
        return {
            "info": {
                "config": {
                    "model": {
                        **{k: v for k, v in self.config.model_dump(mode="json").items() if k not in LITELLM_ONLY},
                        **self.label,
                    },
                    "model_type": f"{self.__class__.__module__}.{self.__class__.__name__}",
                },
            }
        }
