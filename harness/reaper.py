"""Processes a backend starts die with the harness, however it dies; a resumed run stops what is left.

vLLM's engine runs in processes of its own (VLLM::EngineCore, its workers, `vllm serve` with its
engine) that do not notice their parent's death: after kill -9 of the harness they keep the CPU
busy and, on a GPU, the memory the resumed run needs. So before a backend starts such processes it
arms a watchdog (`guard`): a small `python -m harness.reaper` process in a session of its own
(Ctrl-C on the terminal reaches the harness and its engine, never the watchdog), which

- every SCAN_S seconds records the harness's descendants created since it started (pid and create
  time, so a reused pid is never taken for one of them), and process groups the harness names
  (`vllm serve` runs in its own);
- writes that record to RUN_DIR/processes.json (it is the file's only writer);
- once its parent is no longer the harness (the harness died, however), SIGTERMs every recorded
  process that is still the same process, their descendants, the named groups' members and every
  process carrying the run's token in its environment (children spawned after the last scan),
  SIGKILLs what is left after GRACE_S, and exits;
- on `release` (the engine was shut down normally) exits and kills nothing.

Why not PR_SET_PDEATHSIG: it must be set inside each child (vLLM spawns them, by spawn or fork),
it fires when the *thread* that started the child exits, and it reaches direct children only.
vLLM 0.32 has a death pipe between the engine core and its workers, but nothing between the
harness and the engine core. A watchdog covers every start method and every descendant.

`check_leftovers(run_dir)` is for `--resume`: a run directory whose recorded harness still runs is
refused (exit 2); processes of the dead run still alive (its watchdog was killed too) are listed on
stderr and stopped before anything else starts (exit 3 if they cannot be).

HARNESS_NO_REAPER=1 is for tests only: the watchdog records but never kills, as if it had been
killed with the harness, so that a test can show the leftovers its checks must catch.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import EnvironmentNotReady, UserInputError

if TYPE_CHECKING:
    import psutil

PROCESSES_FILE = "processes.json"
TOKEN_VAR = "HARNESS_REAPER_TOKEN"
DISABLE_VAR = "HARNESS_NO_REAPER"
SCAN_S = 0.25  # one scan of /proc costs ~2 ms per 100 processes
GRACE_S = 10.0  # SIGTERM lets vLLM shut its engine down cleanly; SIGKILL after this


# -- processes, identified by pid and create time ------------------------------------------------


def _same(pid: int, create_time: float) -> psutil.Process | None:
    """The live process `pid` if it is still the one created at create_time (zombies are dead)."""
    import psutil

    try:
        p = psutil.Process(pid)
        if p.create_time() == create_time and p.status() != psutil.STATUS_ZOMBIE:
            return p
    except psutil.Error:
        pass
    return None


def _gone(p: psutil.Process) -> bool:
    import psutil

    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def describe(p: psutil.Process) -> dict:
    """pid, create time and command line of a process (as processes.json holds them)."""
    import psutil

    try:
        cmd = " ".join(p.cmdline()).strip() or p.name()  # vLLM pads its process titles with spaces
    except psutil.Error:
        cmd = "?"
    return {"pid": p.pid, "create_time": p.create_time(), "cmdline": cmd[:300]}


def _tagged(token: str, since: float) -> list[psutil.Process]:
    """Processes whose environment carries the run's token (every process the harness exec'd since arming)."""
    import psutil

    needle = f"{TOKEN_VAR}={token}".encode()
    found = []
    for p in psutil.process_iter():
        try:
            if p.create_time() >= since and needle in Path(f"/proc/{p.pid}/environ").read_bytes().split(b"\0"):
                found.append(p)
        except (OSError, psutil.Error):
            pass  # gone, or not ours to read
    return found


def stop_processes(procs: list[psutil.Process], grace_s: float = GRACE_S) -> list[psutil.Process]:
    """SIGTERM, wait up to grace_s, SIGKILL; returns those still alive after that."""
    import psutil

    for sig_name in ("terminate", "kill"):
        for p in procs:
            try:
                getattr(p, sig_name)()  # psutil checks the pid was not reused
            except psutil.Error:
                pass
        deadline = time.monotonic() + (grace_s if sig_name == "terminate" else 5.0)
        while (procs := [p for p in procs if not _gone(p)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not procs:
            break
    return procs


def _write(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)  # readers never see half a file


# -- the harness's side ----------------------------------------------------------------------------


class Watchdog:
    """The harness's handle on its watchdog process: a pipe only the harness writes to."""

    def __init__(self, run_dir: Path | None) -> None:
        self.run_dir = run_dir
        self.token = secrets.token_hex(8)
        self.proc: subprocess.Popen | None = None
        self._w: int | None = None
        self._old_token: str | None = None

    def start(self) -> None:
        """Spawn the watchdog and wait until it has written its first record."""
        r, self._w = os.pipe()  # not inherited by what the harness starts later (O_CLOEXEC)
        env = {k: v for k, v in os.environ.items() if k != TOKEN_VAR}
        argv = [sys.executable, "-m", "harness.reaper", str(os.getpid()), self.token, str(self.run_dir or "")]
        self.proc = subprocess.Popen(argv, stdin=r, stdout=subprocess.PIPE, start_new_session=True, env=env)
        os.close(r)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        if not ready or self.proc.stdout.readline() != b"ready\n":
            self.stop()
            raise EnvironmentNotReady("the process watchdog (python -m harness.reaper) did not start")
        # Every process started from now on carries the token, even one born after the last scan.
        self._old_token = os.environ.get(TOKEN_VAR)
        os.environ[TOKEN_VAR] = self.token

    def _send(self, line: str) -> None:
        if self._w is not None:
            try:
                os.write(self._w, line.encode() + b"\n")  # one short line: atomic on a pipe
            except OSError:
                pass

    def add_group(self, pgid: int) -> None:
        """Also stop this process group's members (created since arming) if the harness dies."""
        self._send(f"group {pgid}")

    def stop(self) -> None:
        """Disarm: the watchdog exits and kills nothing."""
        self._send("stop")
        if self._w is not None:
            os.close(self._w)
            self._w = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        if os.environ.get(TOKEN_VAR) == self.token:
            if self._old_token is None:
                del os.environ[TOKEN_VAR]
            else:
                os.environ[TOKEN_VAR] = self._old_token


_active: Watchdog | None = None
_users = 0
_lock = threading.Lock()


def guard(run_dir: Path | None) -> Watchdog:
    """Arm this process's watchdog before starting engine processes (first call starts it; calls
    pair with release()). With a run directory, first stops what a dead run there left behind."""
    global _active, _users
    with _lock:
        if run_dir is not None:
            check_leftovers(run_dir)
        if _active is None:
            wd = Watchdog(run_dir)
            wd.start()
            _active = wd
        _users += 1
        return _active


def release() -> None:
    """The engine processes were stopped normally; the last release disarms the watchdog."""
    global _active, _users
    with _lock:
        _users = max(_users - 1, 0)
        if _users == 0 and _active is not None:
            _active.stop()
            _active = None


# -- the watchdog process --------------------------------------------------------------------------


def _watch(parent_pid: int, token: str, run_dir: Path | None) -> None:
    import psutil

    me = psutil.Process()
    since = me.create_time()  # what the harness started before arming is not ours to kill
    parent = psutil.Process(parent_pid)
    record: dict = {
        "harness": describe(parent),
        "watchdog": describe(me),
        "token": token,
        "state": "watching",
        "groups": [],
        "processes": [],
    }
    path = run_dir / PROCESSES_FILE if run_dir else None

    def save(**changes: object) -> None:
        record.update(changes)
        if path is not None:
            try:
                _write(path, record)
            except OSError as e:  # the record helps a resume; watching matters more
                print(f"harness watchdog: cannot write {path}: {e}", file=sys.stderr)

    save()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    known: dict[tuple[int, float], psutil.Process] = {}
    groups: set[int] = set()
    buf = b""
    while os.getppid() == parent_pid:
        ready, _, _ = select.select([0], [], [], SCAN_S)
        if ready:
            data = os.read(0, 4096)
            buf += data
            if b"stop\n" in buf:  # the harness disarmed
                save(state="stopped")
                return
            if not data:  # end of file without "stop": the harness died (its files close before we are reparented)
                break
            *lines, buf = buf.split(b"\n")
            groups |= {int(x.split()[1]) for x in lines if x.startswith(b"group ")}
        try:
            kids = [k for k in parent.children(recursive=True) if k.pid != me.pid and k.create_time() >= since]
        except psutil.Error:
            continue  # the parent is gone: the loop's condition says so next
        before = set(known)
        known.update({(k.pid, k.create_time()): k for k in kids})
        known = {i: k for i, k in known.items() if not _gone(k)}
        if set(known) != before or sorted(groups) != record["groups"]:
            save(processes=[describe(k) for k in known.values()], groups=sorted(groups))
    # The harness died. Take everything it started, including children it spawned since the last scan.
    targets = {p.pid: p for p in known.values() if not _gone(p)}
    for p in list(targets.values()):
        try:
            targets.update({c.pid: c for c in p.children(recursive=True)})
        except psutil.Error:
            pass
    targets.update({p.pid: p for p in _tagged(token, since)})
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) in groups and p.create_time() >= since:
                targets[p.pid] = p
        except (OSError, psutil.Error):
            pass
    targets.pop(me.pid, None)
    procs = list(targets.values())
    if os.environ.get(DISABLE_VAR) == "1":
        save(state="harness died; HARNESS_NO_REAPER=1, nothing stopped", processes=[describe(p) for p in procs])
        return
    save(state="harness died; stopping its processes", processes=[describe(p) for p in procs])
    if procs:
        print(f"harness (pid {parent_pid}) died; stopping {len(procs)} process(es) it started", file=sys.stderr)
    left = stop_processes(procs)
    save(state="harness died; its processes were stopped", processes=[describe(p) for p in left])


# -- resume ----------------------------------------------------------------------------------------


def check_leftovers(run_dir: Path, wait_s: float = GRACE_S + 10) -> None:
    """Before resuming run_dir: refuse (exit 2) while the harness that ran it is alive; otherwise
    list on stderr and stop the processes of that run still running (exit 3 if some cannot be)."""
    path = run_dir / PROCESSES_FILE
    if not path.exists():
        return
    try:
        import psutil
    except ImportError:
        print(f"warning: psutil is not installed; leftovers listed in {path} were not checked", file=sys.stderr)
        return
    try:
        record = json.loads(path.read_text())
        h, wd = record["harness"], record.get("watchdog") or {}
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"warning: {path} is unreadable ({e}); leftovers of the earlier run were not checked", file=sys.stderr)
        return
    if h["pid"] == os.getpid() and _same(h["pid"], h["create_time"]):
        return  # our own record (this process started an engine here before)
    if _same(h["pid"], h["create_time"]):
        raise UserInputError(
            f"{run_dir} is in use by a running harness (pid {h['pid']}: {h['cmdline']}); "
            f"wait for it to finish, or stop it (kill {h['pid']}) and resume again"
        )
    deadline = time.monotonic() + wait_s
    while wd and _same(wd["pid"], wd["create_time"]) and time.monotonic() < deadline:
        time.sleep(0.2)  # the dead run's watchdog is still stopping its processes
    record = json.loads(path.read_text())  # as the watchdog left it
    mine = {p.pid for p in [psutil.Process(), *psutil.Process().parents()]}
    left = {p.pid: p for e in [*record["processes"], wd] if e and (p := _same(e["pid"], e["create_time"]))}
    left.update({p.pid: p for p in _tagged(record["token"], wd.get("create_time", 0.0))})
    left = {pid: p for pid, p in left.items() if pid not in mine}
    if not left:
        return
    lines = "\n".join(f"  pid {e['pid']}: {e['cmdline']}" for e in (describe(p) for p in left.values()))
    print(
        f"harness: {len(left)} process(es) of the interrupted run in {run_dir} are still running; "
        f"stopping them:\n{lines}",
        file=sys.stderr,
        flush=True,
    )
    stuck = stop_processes(list(left.values()))
    if stuck:
        pids = " ".join(str(p.pid) for p in stuck)
        raise EnvironmentNotReady(f"could not stop process(es) {pids} of the interrupted run; `kill -9 {pids}`")
    print(f"harness: stopped {len(left)} leftover process(es)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    _watch(int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]) if sys.argv[3] else None)
