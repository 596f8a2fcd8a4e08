"""transformers `generate`, batched with left padding, for models vLLM cannot load."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from harness.config import SamplingConfig, TransformersModel
from harness.errors import EnvironmentNotReady, UserInputError
from harness.models.base import ChatTurn, Sink, request_seed
from harness.models.vllm_engine import model_fingerprint, software_versions, tokenizer_fingerprint
from harness.records import Generation, Prompt


class TransformersBackend:
    def __init__(self, cfg: TransformersModel, run_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.model = None
        self.tok = None
        self.stats = {"prompt_tokens": 0, "completion_tokens": 0, "generate_s": 0.0}

    def preflight(self) -> None:
        import importlib.util

        for mod in ("torch", "transformers"):
            if importlib.util.find_spec(mod) is None:
                raise EnvironmentNotReady(f"the transformers backend needs {mod}: pip install -e '.[hf]'")

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        c = self.cfg
        self.tok = AutoTokenizer.from_pretrained(c.model, revision=c.revision, trust_remote_code=c.trust_remote_code)
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        dtype = getattr(torch, c.dtype) if c.dtype != "auto" else "auto"
        self.model = AutoModelForCausalLM.from_pretrained(
            c.model,
            revision=c.revision,
            dtype=dtype,
            device_map=c.device,
            trust_remote_code=c.trust_remote_code,
        )
        self.model.eval()

    def generate(
        self, prompts: Sequence[Prompt], sampling: SamplingConfig, needed: dict[str, list[int]], sink: Sink
    ) -> None:
        import torch

        if self.model is None:
            self._load()
        assert self.tok is not None and self.model is not None
        work = [(p, s) for p in prompts for s in needed.get(p.task_id, [])]
        for start in range(0, len(work), self.cfg.batch_size):
            batch = work[start : start + self.cfg.batch_size]
            texts = [
                p.text
                if p.messages is None
                else self.tok.apply_chat_template(p.messages, tokenize=False, add_generation_prompt=True)
                for p, _ in batch
            ]
            enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=batch[0][0].messages is None)
            enc = enc.to(self.model.device)
            seed = request_seed(sampling.seed, batch[0][0].task_id, batch[0][1])
            torch.manual_seed(seed)
            t0 = time.monotonic()
            with torch.no_grad():
                out = self.model.generate(
                    **enc,
                    max_new_tokens=sampling.max_tokens,
                    do_sample=sampling.temperature > 0,
                    temperature=sampling.temperature if sampling.temperature > 0 else None,
                    top_p=sampling.top_p if sampling.temperature > 0 else None,
                    pad_token_id=self.tok.pad_token_id,
                )
            elapsed = time.monotonic() - t0
            self.stats["generate_s"] += elapsed
            width = enc["input_ids"].shape[1]
            gens = []
            for (p, s), row, mask in zip(batch, out, enc["attention_mask"], strict=True):
                new = row[width:]
                ids = [int(t) for t in new if int(t) != self.tok.pad_token_id]
                text = self.tok.decode(ids, skip_special_tokens=True)
                for stop in list(p.stop) + list(sampling.stop or []):
                    if stop in text:
                        text = text[: text.index(stop)]
                finish = "length" if len(ids) >= sampling.max_tokens else "stop"
                self.stats["prompt_tokens"] += int(mask.sum())
                self.stats["completion_tokens"] += len(ids)
                gens.append(
                    Generation(
                        p.task_id,
                        s,
                        text,
                        finish,
                        int(mask.sum()),
                        len(ids),
                        round(elapsed / len(batch), 4),
                        seed,
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
        """Not offered: agents need a server-grade backend (tool calls, concurrent conversations)."""
        raise UserInputError(
            "model.backend: the transformers backend does not support chat (per-turn calls for agents); "
            "use vllm, vllm-server or openai"
        )

    def provenance(self) -> dict:
        s = self.stats
        extra = tokenizer_fingerprint(self.tok) if self.tok is not None else {}
        return {
            "backend": "transformers",
            "model_id": self.cfg.model,
            **model_fingerprint(self.cfg.model, self.cfg.revision),
            **extra,
            "software": software_versions(),
            **s,
            "tokens_per_s": round(s["completion_tokens"] / s["generate_s"], 1) if s["generate_s"] else None,
        }

    def close(self) -> None:
        self.model = None
        self.tok = None
