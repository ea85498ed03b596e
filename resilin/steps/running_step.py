"""One step running on the master: its own SSH channel and its own process group there.

Several can run at once (StepConcurrencyLevel).  Cancelling one kills its process group
on the master, then the YARN applications it submitted, which a killed client would
leave running.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from collections.abc import Callable

from resilin.clouds.ssh import CommandResult, Node, SshError
from resilin.steps import commands as step_scripts
from resilin.steps import yarn_apps

log = logging.getLogger(__name__)

KILL_GRACE = 5  # seconds between SIGTERM and SIGKILL to the step's process group
PID_WAIT = 30  # a step that just started may not have written its process group id yet


class RunningStep:
    def __init__(
        self, step_id: str, master: Node, script: str, on_end: Callable[[], None] = lambda: None
    ) -> None:
        self.step_id = step_id
        self.master = master
        self.on_end = on_end  # wakes the cluster's worker: the step's end is recorded at once
        self.result: CommandResult | None = None
        self.error: Exception | None = None
        self.killed = False  # the cancellation reached the step's processes
        self._cancel_thread: threading.Thread | None = None
        self._thread = threading.Thread(target=self._run, args=(script,), name=f"step-{step_id}", daemon=True)
        self._thread.start()

    @classmethod
    def reattach(cls, step_id: str, master: Node, on_end: Callable[[], None] = lambda: None) -> RunningStep:
        """A step an earlier run of Resilin started, which runs on: followed until its script ends."""
        return cls(step_id, master, step_scripts.reattach_script(step_id), on_end)

    def _run(self, script: str) -> None:
        try:
            self.result = self.master.run_script(script)
        except Exception as exc:  # SSH dropped: the step's fate is unknown
            self.error = exc
        finally:
            self.on_end()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive() and (
            self._cancel_thread is None or not self._cancel_thread.is_alive()
        )

    @property
    def succeeded(self) -> bool:
        return self.result is not None and self.result.exit_status == 0

    def cancel(self) -> None:
        """Start killing the step (once); ``done`` turns true when the kill and the step have ended."""
        if self._cancel_thread is None:
            self._cancel_thread = threading.Thread(
                target=self._kill, name=f"cancel-{self.step_id}", daemon=True
            )
            self._cancel_thread.start()

    def _kill(self) -> None:
        logs = f"{step_scripts.STEP_LOG_ROOT}/{self.step_id}"
        pid_file = shlex.quote(f"{logs}/pid")
        # TERM the step's process group, give it a moment, then KILL whatever is left.
        script = f"""
for _ in $(seq {PID_WAIT * 2}); do [ -s {pid_file} ] && break; sleep 0.5; done
pg=$(cat {pid_file} 2>/dev/null) || exit 3
kill -TERM -- -"$pg" 2>/dev/null || exit 0
for _ in $(seq {KILL_GRACE * 5}); do kill -0 -- -"$pg" 2>/dev/null || exit 0; sleep 0.2; done
kill -KILL -- -"$pg" 2>/dev/null
exit 0
"""
        try:
            outcome = self.master.run_script(script, timeout=PID_WAIT + KILL_GRACE + 30)
            if outcome.exit_status != 0:
                log.warning("step %s: no process group to kill (it had not started)", self.step_id)
            self.killed = True
            # Only now, with the client gone, can the list of what it submitted be complete.
            texts = []
            for name in ("syslog", "stderr"):
                try:
                    texts.append(self.master.read_file(f"{logs}/{name}").decode(errors="replace"))
                except (OSError, SshError):
                    pass
            apps = yarn_apps.submitted_applications(*texts)
            if apps:
                log.info("step %s: killing YARN application(s) %s", self.step_id, ", ".join(apps))
                started = time.monotonic()
                done = self.master.run(yarn_apps.kill_command(apps), timeout=300)
                log.info(
                    "step %s: yarn application -kill exited %d after %.0fs",
                    self.step_id,
                    done.exit_status,
                    time.monotonic() - started,
                )
        except Exception as exc:
            log.warning("step %s: cancelling failed: %s", self.step_id, exc)
        finally:
            self.on_end()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
