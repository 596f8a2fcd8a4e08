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


def _call(fn: Callable[..., Shipped], args: tuple) -> tuple[Shipped, dict]:
    """What runs on the node: the function, and the node that ran it."""
    return fn(*args), node_info()


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

    def _connect(self, env: dict[str, str] | None = None):
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
                runtime_env={"env_vars": {**TASK_ENV, **(env or {})}},
            )
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise EnvironmentNotReady(
                f"executor ray: cannot connect to a Ray cluster at {self._address()} ({str(e).splitlines()[0][:200]}); "
                "start one (`ray start --head --resources '{\"harness_docker\": 8}'`) or set executor.address / "
                "--ray-address"
            ) from None
        return ray

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
            raise EnvironmentNotReady(
                f"executor ray: cannot connect to a Ray cluster at {self._address()} ({e.strerror or e}); "
                "start one (`ray start --head --resources '{\"harness_docker\": 8}'`) or set executor.address / "
                "--ray-address"
            ) from None

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
        ray = self._connect(env)
        from ray.exceptions import RayError, RayTaskError

        t0 = time.monotonic()
        task = ray.remote(_call)
        base = {"num_cpus": 0, "resources": {self.cfg.slots_resource: 1}, "max_retries": 0, "retry_exceptions": False}
        pending: dict[Any, tuple[str, tuple, list[dict]]] = {}

        def submit(key: str, args: tuple, attempts: list[dict]) -> None:
            opts = {}
            avoid = {a["node"].get("node_id") for a in attempts if a.get("node")}
            other = self._other_node(ray, avoid) if avoid else None
            if other:  # soft: when that node is busy or gone, any node will do
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(other, soft=True)
            ref = task.options(**base, **opts).remote(fn, args)
            pending[ref] = (key, args, attempts)

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
                    except RayTaskError as e:  # the function raised: a harness fault on that node
                        shipped, why = None, f"task error: {str(e.cause if e.cause else e).splitlines()[-1][:300]}"
                    except RayError as e:  # the worker or its node was lost
                        shipped, why = None, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
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
                        if node is not None:
                            self._nodes[_node_name(node)] += 1
                        on_done(Done(key, shipped, node, attempts, error=why))
        except BaseException as e:
            # Interrupted: the running tasks are killed, then each node removes the run's containers.
            if pending:
                print(f"ray: stopping {len(pending)} task(s) and removing their containers", file=sys.stderr)
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
            if cleanup is not None:
                self._on_every_node(ray, *cleanup)
            inner = e.__cause__ or e.__context__
            if isinstance(e, SystemError) and inner is not None and not isinstance(inner, Exception):
                # A signal handler's exception raised inside Ray's compiled wait comes out wrapped.
                raise inner from None
            raise
        finally:
            self._wall += time.monotonic() - t0
        return self.provenance()

    def _on_every_node(self, ray, fn: Callable[..., Shipped], args: tuple) -> None:
        """fn(*args) once on every alive node with the slots resource (best effort, 30 s at most)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            nodes = [
                n["NodeID"]
                for n in ray.nodes()
                if n.get("Alive") and n.get("Resources", {}).get(self.cfg.slots_resource)
            ]
            task = ray.remote(_call)
            refs = [
                task.options(
                    num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)
                ).remote(fn, args)
                for n in nodes
            ]
            ray.wait(refs, num_returns=len(refs), timeout=30)
        except Exception:
            pass

    def _other_node(self, ray, avoid: set) -> str | None:
        """An alive node with the slots resource that has not failed this item, if any."""
        try:
            nodes = [
                n["NodeID"]
                for n in ray.nodes()
                if n.get("Alive") and n.get("Resources", {}).get(self.cfg.slots_resource)
            ]
        except Exception:
            return None
        return next((n for n in nodes if n not in avoid), None)


def _node_name(node: dict | None) -> str:
    if not node:
        return "unknown"
    return f"{node.get('ip') or node.get('hostname')} ({str(node.get('node_id', ''))[:12]})"


def _node_of(error: Exception) -> dict | None:
    """The node a lost task ran on, as Ray's error names it (None when it does not)."""
    m = re.search(r"\b([0-9a-f]{56})\b", str(error))
    return {"node_id": m.group(1)} if m else None
