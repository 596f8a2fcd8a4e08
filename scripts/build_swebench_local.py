"""Build the local SWE-bench-format test instance (image and dataset) without a registry; print the
dataset's path. The same instance the tests use (tests/integration/swebench_local.py).

    python scripts/build_swebench_local.py [DIR]      # default: ~/.cache/harness/swebench-local
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from platformdirs import user_cache_dir

from harness.sandbox.docker import docker_client
from tests.integration import swebench_local


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(user_cache_dir("harness")) / "swebench-local")
    shutil.rmtree(out, ignore_errors=True)  # the repository is made afresh; the images are reused
    out.mkdir(parents=True)
    built = swebench_local.build(docker_client(timeout=600), out, log=lambda *a: print(*a, file=sys.stderr))
    print(built["dataset"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
