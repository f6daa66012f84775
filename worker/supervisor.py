"""PID 1 of the worker container: runs the Prefect worker, and when the container is stopped ends the flow runs in
flight as Crashed before the worker goes, instead of leaving them Running for ever.

Without it (prefect 3.9, installed source, and seen with this image):
- `docker stop`, and pulumi-docker's delete (ContainerStop with `destroy_grace_seconds` as its timeout), send
  SIGTERM to PID 1. `prefect worker start` turns that into SIGINT for itself (`setup_signal_handlers_worker`,
  prefect/utilities/processutils) and is gone within two seconds, its flow-run processes with it, unreported.
- A process pool's flow run is a `python -m prefect.engine` child of the worker, in a session of its own
  (prefect/runner/_workspace_starter.py, `isolate_process_group`). Nothing else marks it: the server has no
  zombie detection of its own (prefect/server/services/; PrefectHQ/prefect#16746 is open), so it stays RUNNING.
- Sent SIGTERM itself, Prefect's flow engine reports its run Crashed, "Execution was aborted by a termination
  signal." (`capture_sigterm` in prefect/utilities/engine raises TerminationSignal), within a second or two.

So on SIGTERM or SIGINT this process sends SIGTERM to the worker's flow runs (to each one's process group) and
waits until they have exited, and only then to the worker. A run the worker starts meanwhile is signalled too.
When the worker exits on its own, its runs (now orphans of PID 1) are ended the same way, then Docker's restart
policy takes over. Docker's stop timeout bounds the whole sequence. As PID 1 it also reaps orphans. It exits with
the worker's status. Standard library only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

POLL_SECONDS = 0.2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def log(message: str) -> None:
    print(f"worker supervisor: {message}", flush=True)


def flow_runs(worker_pid: int) -> dict[int, int]:
    """Live processes started by the worker, or orphaned to us after it exited: pid -> process group."""
    me = os.getpid()
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (me, worker_pid):
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # "pid (command) state ppid pgrp ...": the command may contain spaces and parentheses.
                state, parent, group = stat.read().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue  # exited meanwhile
        if state != "Z" and int(parent) in (worker_pid, me):
            found[int(entry)] = int(group)
    return found


def terminate(pid: int, group: int) -> None:
    try:
        if group != os.getpgrp():
            os.killpg(group, signal.SIGTERM)  # the run and whatever it started
        else:
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def exit_code(wait_status: int) -> int:
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code  # killed by a signal: the shell's convention


def supervise(command: Sequence[str]) -> int:
    requests: list[int] = []
    for number in STOP_SIGNALS:
        signal.signal(number, lambda received, _frame: requests.append(received))
    worker = subprocess.Popen(command)
    status: int | None = None
    stopping = worker_signalled = False
    signalled: set[int] = set()
    while True:
        try:
            while (reaped := os.waitpid(-1, os.WNOHANG))[0]:
                if reaped[0] == worker.pid:
                    status = exit_code(reaped[1])
                    log(f"the worker exited with status {status}")
        except ChildProcessError:
            return status if status is not None else 0  # nothing left to wait for
        if not stopping and (requests or status is not None):
            stopping = True
            reason = signal.Signals(requests[0]).name if requests else "the worker exited"
            log(f"{reason}: ending the flow runs in flight (Prefect records them Crashed), then the worker")
        if stopping:
            runs = flow_runs(worker.pid)
            for pid in runs.keys() - signalled:
                log(f"SIGTERM to flow run process {pid}")
                terminate(pid, runs[pid])
                signalled.add(pid)
            if not runs and status is None and not worker_signalled:
                log("no flow run left; SIGTERM to the worker")
                worker.send_signal(signal.SIGTERM)
                worker_signalled = True
        time.sleep(POLL_SECONDS)


def main(argv: Sequence[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        print("usage: python -m worker.supervisor <worker command ...>", file=sys.stderr)
        return 2
    return supervise(command)


if __name__ == "__main__":
    sys.exit(main())
