"""The agentic SWE-bench solver's parts: mini-swe-agent's scaffold driven by the harness.

- scaffold.py: the mini-swe-agent config (the package's SWE-bench configs or the user's), and the
  model adapter that sends each turn through a harness backend and parses it with the package's code;
- container.py: the hardened per-instance container the agent's commands run in;
- instance.py: one instance from a clean container to an exit status, a patch and trajectories;
- the solver itself is harness/solvers/agent.py.
"""

# How an instance can end. The model's outcomes are scored (whatever was submitted is graded); the
# infrastructure's are error rows: never scored, the run is incomplete and resume retries them.
MODEL_STATUSES = ("submitted", "step_limit", "time_limit", "format_errors", "context_overflow", "disk_limit")
INFRA_STATUSES = ("generation_error", "env_error")
