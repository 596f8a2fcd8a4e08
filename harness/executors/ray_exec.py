"""The `ray` executor: each instance is one Ray task needing one unit of the slots resource.

Ray places the tasks on the nodes that advertise the resource (`ray start --resources
'{"harness_docker": 8}'`) and each task uses its node's own Docker engine. Retries are the
driver's, not Ray's (`max_retries=0`): a task lost with its node or ending in an infrastructure
error is sent again, preferring a node that has not failed it, at most `max_attempts` times in all,
and every attempt is recorded. The driver writes the run directory; tasks only return values.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from harness.errors import EnvironmentNotReady
from harness.executors.base import Done, RemoteExecutor, Retryable, Shipped, node_info
from harness.redact import redact_url

INSTALL = "pip install 'harness[ray]' (or `bash scripts/setup.sh`)"
# Set for every task: litellm (imported by mini-swe-agent's modules) would fetch a price list at import.
TASK_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "RAY_USAGE_STATS_ENABLED": "0"}


def require_ray():
    """The ray module, or exit 3 naming the install command."""
    try:
        import ray
    except ImportError as e:
        what = e.name or "ray"
        raise EnvironmentNotReady(f"executor ray needs the ray extra ({what} is not installed): {INSTALL}") from None
    return ray


def _call(fn: Callable[..., Shipped], args: tuple, env: dict[str, str] | None = None) -> tuple[Shipped, dict]:
    """What runs on the node: the function (with env set while it runs: a key travels as an argument,
    never in Ray's job or task metadata, which the cluster's dashboard shows), and the node that ran it."""
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        return fn(*args), node_info()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class RayExecutor(RemoteExecutor):
    """Instances as Ray tasks on an existing cluster (address: auto, host:port or ray://...)."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self._nodes: Counter[str] = Counter()
        self._failed = 0
        self._wall = 0.0

    def check(self) -> None:
        """The package, a cluster that answers, and at least one node with the slots resource."""
        ray = self._connect()
        slots = ray.cluster_resources().get(self.cfg.slots_resource, 0)
        if not slots:
            raise EnvironmentNotReady(
                f"executor ray: no node of the cluster at {self._address()} advertises the resource "
                f"{self.cfg.slots_resource!r}; start each node with "
                f"`ray start ... --resources '{{\"{self.cfg.slots_resource}\": 8}}'` (the containers it may hold)"
            )

    def _address(self) -> str:
        return redact_url(self.cfg.address)

    def _connect(self):
        ray = require_ray()
        if ray.is_initialized():
            return ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        self._probe()
        try:
            ray.init(
                address=self.cfg.address,
                namespace="harness",
                log_to_driver=False,  # the tasks' output comes back in their records; progress stays readable
                logging_level="WARNING",
                runtime_env={"env_vars": dict(TASK_ENV)},
            )
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise EnvironmentNotReady(self._unreachable(_first_line(e))) from None
        finally:
            from harness import interrupt

            if threading.current_thread() is threading.main_thread():
                interrupt.install()  # ray.init makes SIGTERM a bare sys.exit; the harness's own handling stays
        return ray

    def _unreachable(self, why: str) -> str:
        return (
            f"executor ray: cannot connect to a Ray cluster at {self._address()} ({why[:200]}); start one "
            "(`ray start --head --resources '{\"harness_docker\": 8}'`) or set executor.address / --ray-address "
            "(from outside the cluster: ray://HEAD:10001)"
        )

    def _probe(self) -> None:
        """A host:port that refuses connections fails now: ray.init would retry it for minutes."""
        import socket

        addr = self.cfg.address.removeprefix("ray://")
        host, _, port = addr.rpartition(":")
        if self.cfg.address == "auto" or not host or not port.isdigit():
            return
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        except OSError as e:
            raise EnvironmentNotReady(self._unreachable(str(e.strerror or e))) from None

    def provenance(self) -> dict:
        out = {
            "name": "ray",
            "address": self._address(),
            "slots_resource": self.cfg.slots_resource,
            "max_attempts": self.cfg.max_attempts,
        }
        if self._nodes:
            out["instances_by_node"] = dict(sorted(self._nodes.items()))
            out["failed_attempts"] = self._failed
            out["wall_s"] = round(self._wall, 2)
        try:
            import ray

            if ray.is_initialized():
                out["ray_version"] = ray.__version__
                out["cluster_slots"] = ray.cluster_resources().get(self.cfg.slots_resource, 0)
        except ImportError:
            pass
        return out

    def map(
        self,
        fn: Callable[..., Shipped],
        items: Sequence[tuple[str, tuple]],
        on_done: Callable[[Done], None],
        retryable: Retryable,
        env: dict[str, str] | None = None,
        cleanup: tuple[Callable[..., Shipped], tuple] | None = None,
    ) -> dict:
        import harness

        ray = self._connect()
        from ray.exceptions import RayError, RayTaskError
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        t0 = time.monotonic()
        task = ray.remote(_call)
        base = {"num_cpus": 0, "resources": {self.cfg.slots_resource: 1}, "max_retries": 0, "retry_exceptions": False}
        pending: dict[Any, tuple[str, tuple, list[dict]]] = {}

        def submit(key: str, args: tuple, attempts: list[dict]) -> None:
            opts = {}
            avoid = {a["node"].get("node_id") for a in attempts if a.get("node")}
            others = [n for n in self._alive_nodes(ray) if n not in avoid] if avoid else []
            if others:  # soft, spilling: when that node is busy or gone, any node will do
                node_id = others[len(attempts) % len(others)]
                opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                    node_id, soft=True, _spill_on_unavailable=True
                )
            pending[task.options(**base, **opts).remote(fn, args, env)] = (key, args, attempts)

        for key, args in items:
            submit(key, args, [])
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    key, args, attempts = pending.pop(ref)
                    node: dict | None = None
                    try:
                        shipped, node = ray.get(ref)
                        why = retryable(shipped.value)
                        if node.get("harness") != harness.__version__:
                            why = f"the node runs harness {node.get('harness')}, the driver {harness.__version__}"
                    except RayTaskError as e:  # the function raised: a harness fault on that node
                        shipped, why = None, f"task error: {_last_line(e.cause or e)}"
                        node = {"ip": getattr(e, "ip", None)}
                    except RayError as e:  # the worker or its node was lost
                        shipped, why = None, f"{type(e).__name__}: {_first_line(e)}"
                        node = _node_of(e)
                    if why is None:
                        self._nodes[_node_name(node)] += 1
                        on_done(Done(key, shipped, node, attempts))
                        continue
                    self._failed += 1
                    attempts = [*attempts, {"node": node, "error": why, "at": round(time.monotonic() - t0, 2)}]
                    if len(attempts) < self.cfg.max_attempts:
                        print(f"ray: {key}: attempt {len(attempts)} failed ({why[:120]}); retrying", file=sys.stderr)
                        submit(key, args, attempts)
                    else:
                        self._nodes[_node_name(node)] += 1
                        on_done(Done(key, shipped, node, attempts, error=why))
        except BaseException as e:
            # Interrupted: the running tasks are killed (the clean-up below then removes their containers).
            if pending:
                print(f"ray: stopping {len(pending)} task(s) and removing their containers", file=sys.stderr)
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
            try:
                ray.wait(list(pending), num_returns=len(pending), timeout=10)  # the killed workers are gone
            except BaseException:
                pass
            inner = e.__cause__ or e.__context__
            if isinstance(e, SystemError) and inner is not None and not isinstance(inner, Exception):
                # A signal handler's exception raised inside Ray's compiled wait comes out wrapped.
                raise inner from None
            raise
        finally:
            if cleanup is not None:  # also after a clean end: containers of workers that died
                self._on_every_node(ray, *cleanup)
            self._wall += time.monotonic() - t0
        return self.provenance()

    def _alive_nodes(self, ray) -> list[str]:
        """The ids of the alive nodes that advertise the slots resource."""
        try:
            res = self.cfg.slots_resource
            return [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(res)]
        except Exception:
            return []

    def _on_every_node(self, ray, fn: Callable[..., Shipped], args: tuple) -> None:
        """fn(*args) once on every alive node with the slots resource (best effort, 30 s at most)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            task = ray.remote(_call)
            refs = [
                task.options(
                    num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)
                ).remote(fn, args)
                for n in self._alive_nodes(ray)
            ]
            ray.wait(refs, num_returns=len(refs), timeout=30)
        except Exception:
            pass


def _first_line(x: object) -> str:
    return (str(x).strip().splitlines() or [type(x).__name__])[0][:300]


def _last_line(x: object) -> str:
    return (str(x).strip().splitlines() or [type(x).__name__])[-1][:300]


def _node_name(node: dict | None) -> str:
    if not node:
        return "unknown"
    return f"{node.get('ip') or node.get('hostname')} ({str(node.get('node_id', ''))[:12]})"


def _node_of(error: Exception) -> dict | None:
    """The node a lost task ran on, as Ray's error names it (None when it does not)."""
    m = re.search(r"node ID:\s*([0-9a-f]{56})\b", str(error), re.IGNORECASE)
    return {"node_id": m.group(1)} if m else None
