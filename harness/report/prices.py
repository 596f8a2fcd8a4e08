"""Prices file (configs/prices.yaml) and the cost and speed of a run's generation.

Cost is what generating the answers would cost, scaled to 1,000 tasks at the run's own settings
(so n=20 sampling costs about 20x greedy): hosted endpoints by tokens at the model's token
prices; self-hosted runs by accelerator-hours (GPUs x generation wall time, engine start
included) at the GPU's hourly price, or machine-hours at a CPU's price. Every price carries its
source and date, which the page prints beside the figure.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from harness.report.runs import Run
from harness.report.schema import CostSpeed, Hardware
from harness.yamlfile import SourceURL, load_yaml_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class _Sourced(_Strict):
    source: SourceURL = Field(description="where the price was read")
    as_of: dt.date


class HourPrice(_Sourced):
    match: str = Field(description="matched (case-insensitive substring) against the GPU or CPU name")
    price: float = Field(gt=0, description="per GPU-hour (gpu_hour) or per machine-hour (cpu_hour)")


class TokenPrice(_Sourced):
    model: str = Field(description="model.name of the runs this price applies to")
    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class PricesFile(_Strict):
    currency: str = "USD"
    gpu_hour: list[HourPrice] = Field(default_factory=list)
    cpu_hour: list[HourPrice] = Field(default_factory=list)
    api: list[TokenPrice] = Field(default_factory=list)


def load_prices(path: Path) -> PricesFile:
    return load_yaml_model(path, PricesFile, "prices")


def _first(entries: list[HourPrice], name: str | None) -> HourPrice | None:
    if not name:
        return None
    return next((e for e in entries if e.match.lower() in name.lower()), None)


def token_price(run: Run, prices: PricesFile | None) -> TokenPrice | None:
    """The per-token price of a run's model, for hosted endpoints only (self-hosted runs pay by the hour)."""
    gen = run.results.provenance.get("model") or {}
    if prices is None or gen.get("backend") != "openai":
        return None
    return next((p for p in prices.api if p.model == run.results.model), None)


def token_cost(price: TokenPrice, prompt_tokens: int, completion_tokens: int) -> float:
    """What the tokens cost at the price, in the prices file's currency."""
    return (prompt_tokens * price.input_per_million + completion_tokens * price.output_per_million) / 1e6


def cost_speed(run: Run, hw: Hardware, tasks: int, prices: PricesFile | None) -> CostSpeed:
    """Tokens, generation time and, where the prices file has the hardware or model, price per 1k tasks."""
    gen = run.results.provenance.get("model") or {}
    wall = gen.get("generation_wall_s")
    pt, ct = run.generations.get("prompt_tokens"), run.generations.get("completion_tokens")
    out = CostSpeed(
        prompt_tokens=pt,
        completion_tokens=ct,
        generation_wall_s=wall,
        tokens_per_s=round(ct / wall, 1) if ct and wall else None,
    )
    if prices is None or not tasks:
        return out
    per_task = 1000 / tasks
    out.currency = prices.currency
    api = token_price(run, prices)
    if api is not None and pt is not None and ct is not None:
        cost = token_cost(api, pt, ct)
        out.price_per_1k_tasks = round(cost * per_task, 4)
        out.price_basis = (
            f"{pt:,} input + {ct:,} output tokens at {api.input_per_million:g} / {api.output_per_million:g} "
            f"{prices.currency} per million ({api.source}, {api.as_of})"
        )
        return out
    if not wall:
        return out
    if hw.gpu_count:
        entry, units, unit = _first(prices.gpu_hour, hw.gpu_type), hw.gpu_count, "GPU-hours"
    else:
        entry, units, unit = _first(prices.cpu_hour, hw.generation_cpu), 1, "machine-hours"
    if entry is None:
        return out
    hours = units * wall / 3600
    out.gpu_hours = round(hours, 4) if hw.gpu_count else None
    out.price_per_1k_tasks = round(hours * entry.price * per_task, 4)
    out.price_basis = (
        f"{hours:.4f} {unit} ({units} x {wall:.0f} s) at {entry.price:g} {prices.currency}/hour for "
        f"'{entry.match}' ({entry.source}, {entry.as_of})"
    )
    return out
