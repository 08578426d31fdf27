#!/usr/bin/env python3
"""A test "guest" for irhost_moto_server.py --ssm-agent: a stand-in SSM agent.

    ssm_guest.py --endpoint http://127.0.0.1:PORT --instance i-...
                 [--workdir DIR] [--platform Linux|Windows|MacOS]
                 [--shell PATH] [--workers N] [--give-up SECONDS]

It registers an online agent for the instance (POST /irhost/ssm/agents),
prints "GUEST READY" on stdout (the only line it ever writes there; logs go to
stderr), then loops: long-polls GET /irhost/ssm/pending?instance_id=... and
runs each invocation as the amazon-ssm-agent does:

  * claims it (POST /irhost/ssm/report status InProgress); a 409 means it was
    cancelled or claimed meanwhile, and it is not run;
  * writes the `commands` lines joined by newlines (and a final newline) to
    _script.sh in a fresh directory under --workdir (the agent's orchestration
    directory), and runs `sh -c <that path>` with --shell (default bash) as
    the program, so bash starts in its POSIX mode as /bin/sh does on Amazon
    Linux; AWS-RunPowerShellScript writes _script.ps1 and runs pwsh -File;
  * in workingDirectory if the document gives one (missing: Failed, response
    code 1, "failed to run commands: chdir ..."), else in that fresh
    directory (AWS: the agent's own working directory);
  * in its own process group, with no stdin, stdout and stderr to files, and
    the guest's environment without any AWS_* variable (no credentials) plus
    AWS_SSM_INSTANCE_ID and AWS_SSM_REGION_NAME, as the agent sets them;
  * killed (SIGKILL to the process group, as the agent does) after the
    document's executionTimeout (TimedOut, response code 137), when its
    invocation is cancelled (it watches the status while the script runs:
    Cancelled, 137), or when the guest is stopped (Failed, 1);
  * then reports: exit 0 Success; exit 137 TimedOut (the agent's reading of
    that code); any other exit Failed with the exit status as ResponseCode and
    "failed to run commands: exit status N" appended to stderr, as the agent
    does. stdout is cut to 24000 characters, stderr to 8000.

Up to --workers invocations run at once (the agent's default is 5 command
workers); more wait, Pending. SIGTERM or SIGINT: running scripts are killed,
the agent is unregistered and the guest exits 0. If the endpoint is
unreachable for --give-up seconds (the server is gone), it exits 3.

Standard library only: runs in the project's venv or any python3.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

STDOUT_MAX = 24000
STDERR_MAX = 8000
STOPPED_PREEMPTIVELY = 137  # the agent's exit code for a killed script (128 + SIGKILL)
GO_SIGNALS = {
    signal.SIGKILL: "killed",
    signal.SIGTERM: "terminated",
    signal.SIGINT: "interrupt",
    signal.SIGHUP: "hangup",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGPIPE: "broken pipe",
}


def log(message: str) -> None:
    try:
        sys.stderr.write(f"ssm_guest: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class Unreachable(Exception):
    pass


class Guest:
    def __init__(self, args: argparse.Namespace) -> None:
        self.endpoint = args.endpoint.rstrip("/")
        self.instance = args.instance
        self.platform = args.platform
        self.shell = args.shell
        self.give_up = args.give_up
        self.stop = threading.Event()
        self.slots = threading.Semaphore(args.workers)
        self.lock = threading.Lock()
        self.active: dict[str, threading.Thread] = {}
        self.own_workdir = args.workdir is None
        self.workdir = args.workdir or tempfile.mkdtemp(prefix="ssm-guest-")
        os.makedirs(self.workdir, exist_ok=True)

    # HTTP -----------------------------------------------------------------

    def call(self, method: str, path: str, body=None, query=None, timeout: float = 30.0):
        url = self.endpoint + "/irhost/ssm" + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            try:
                payload = json.loads(error.read() or b"{}")
            except ValueError:
                payload = {}
            return error.code, payload
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise Unreachable(str(error)) from error

    def report(self, invocation: dict, status: str, timeout: float = 30.0, **fields):
        body = {"command_id": invocation["command_id"], "instance_id": self.instance, "status": status}
        body.update(fields)
        return self.call("POST", "/report", body, timeout=timeout)

    # Lifecycle ------------------------------------------------------------

    def register(self) -> bool:
        since = time.monotonic()
        while not self.stop.is_set():
            try:
                status, payload = self.call(
                    "POST", "/agents", {"instance_id": self.instance, "platform": self.platform}
                )
            except Unreachable as error:
                if time.monotonic() - since > self.give_up:
                    log(f"cannot register: {error}")
                    return False
                time.sleep(0.2)
                continue
            if status != 200:
                log(f"registration refused ({status}): {payload}")
                return False
            return True
        return False

    def unregister(self) -> None:
        try:
            self.call("DELETE", "/agents", query={"instance_id": self.instance}, timeout=5)
        except Unreachable:
            pass

    def serve(self) -> int:
        unreachable_since = None
        while not self.stop.is_set():
            try:
                status, payload = self.call(
                    "GET", "/pending", query={"instance_id": self.instance, "wait": "1"}, timeout=10
                )
                unreachable_since = None
            except Unreachable as error:
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > self.give_up:
                    log(f"endpoint unreachable for {self.give_up:g} s ({error}): giving up")
                    return 3
                self.stop.wait(0.2)
                continue
            if status != 200:
                log(f"pending: {status} {payload}")
                self.stop.wait(0.5)
                continue
            for invocation in payload.get("invocations", []):
                self.start(invocation)
        return 0

    def start(self, invocation: dict) -> None:
        command_id = invocation["command_id"]
        with self.lock:
            if command_id in self.active:
                return
            if not self.slots.acquire(blocking=False):
                return  # all workers busy: it stays Pending, as on the agent
            worker = threading.Thread(target=self.work, args=(invocation,), daemon=True)
            self.active[command_id] = worker
        worker.start()

    def join(self) -> None:
        with self.lock:
            workers = list(self.active.values())
        for worker in workers:
            worker.join(timeout=10)

    # One invocation ---------------------------------------------------------

    def work(self, invocation: dict) -> None:
        try:
            self.execute(invocation)
        except Unreachable as error:
            log(f"{invocation['command_id']}: endpoint unreachable: {error}")
        except Exception as error:  # a bug here must not kill the guest
            log(f"{invocation['command_id']}: {type(error).__name__}: {error}")
        finally:
            with self.lock:
                self.active.pop(invocation["command_id"], None)
            self.slots.release()

    def execute(self, invocation: dict) -> None:
        command_id = invocation["command_id"]
        status, payload = self.report(invocation, "InProgress")
        if status != 200:
            log(f"{command_id}: not run ({status} {payload.get('error')}: {payload.get('status')})")
            return
        plugin = invocation.get("plugin") or "aws:runShellScript"
        plugin_dir = plugin.replace(":", "")
        orchestration = tempfile.mkdtemp(prefix=f"{command_id}.", dir=self.workdir)
        step_dir = os.path.join(orchestration, plugin_dir, "0." + plugin_dir)
        os.makedirs(step_dir)
        commands = [str(line) for line in invocation.get("commands") or []]
        powershell = plugin == "aws:runPowerShellScript"
        script = os.path.join(step_dir, "_script.ps1" if powershell else "_script.sh")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write("\n".join(commands) + "\n")
        os.chmod(script, 0o700)

        if powershell:
            program = shutil.which("pwsh") or shutil.which("powershell")
            if program is None:
                self.finish(invocation, "Failed", 1, "", 'failed to run commands: exec: "pwsh": executable file not found in $PATH')
                return
            argv, executable = [program, "-NoProfile", "-NonInteractive", "-File", script], program
        else:
            argv, executable = ["sh", "-c", script], self.shell

        working_directory = invocation.get("working_directory") or ""
        cwd = working_directory or step_dir
        if not os.path.isdir(cwd):
            self.finish(invocation, "Failed", 1, "", f"failed to run commands: chdir {cwd}: no such file or directory")
            return

        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["AWS_SSM_INSTANCE_ID"] = self.instance
        env["AWS_SSM_REGION_NAME"] = invocation.get("region") or ""
        stdout_path = os.path.join(step_dir, "stdout")
        stderr_path = os.path.join(step_dir, "stderr")
        timeout = int(invocation.get("execution_timeout") or 3600)

        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            try:
                process = subprocess.Popen(
                    argv,
                    executable=executable,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            except OSError as error:
                self.finish(invocation, "Failed", 1, "", f"failed to run commands: {error}")
                return
        log(f"{command_id}: running (pid {process.pid}, timeout {timeout} s)")

        cancelled = threading.Event()
        done = threading.Event()
        watcher = threading.Thread(target=self.watch, args=(invocation, cancelled, done), daemon=True)
        watcher.start()
        deadline = time.monotonic() + timeout
        outcome = None
        try:
            while True:
                try:
                    process.wait(timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if cancelled.is_set():
                    outcome = "Cancelled"
                elif time.monotonic() >= deadline:
                    outcome = "TimedOut"
                elif self.stop.is_set():
                    outcome = "Stopped"
                if outcome:
                    kill(process)
                    break
        finally:
            done.set()
            if process.poll() is None:
                kill(process)

        stdout = read(stdout_path, STDOUT_MAX)
        stderr = read(stderr_path, STDERR_MAX)
        code = process.returncode
        if outcome == "Cancelled":
            self.finish(invocation, "Cancelled", STOPPED_PREEMPTIVELY, stdout, stderr)
        elif outcome == "TimedOut":
            self.finish(invocation, "TimedOut", STOPPED_PREEMPTIVELY, stdout, stderr)
        elif outcome == "Stopped":
            self.finish(invocation, "Failed", 1, stdout, stderr, timeout=3)
        elif code == 0:
            self.finish(invocation, "Success", 0, stdout, stderr)
        elif code == STOPPED_PREEMPTIVELY:
            self.finish(invocation, "TimedOut", code, stdout, stderr)
        else:
            if code < 0:
                reason = "signal: " + GO_SIGNALS.get(-code, f"signal {-code}")
                code = -1  # Go's ExitStatus() of a signalled process
            else:
                reason = f"exit status {code}"
            self.finish(invocation, "Failed", code, stdout, stderr, reason=reason)

    def finish(self, invocation, status, code, stdout, stderr, reason=None, timeout=30.0) -> None:
        if status == "Failed" and reason:
            stderr = (stderr + ("" if not stderr or stderr.endswith("\n") else "\n")) + "failed to run commands: " + reason
        answer, payload = self.report(
            invocation,
            status,
            timeout=timeout,
            response_code=code,
            stdout=stdout[:STDOUT_MAX],
            stderr=stderr[:STDERR_MAX],
        )
        log(f"{invocation['command_id']}: {status} ({code}); server: {answer} {payload.get('status')}")

    def watch(self, invocation: dict, cancelled: threading.Event, done: threading.Event) -> None:
        """Long-poll the invocation's status while its script runs."""
        query = {"command_id": invocation["command_id"], "instance_id": self.instance, "status": "InProgress", "wait": "2"}
        while not done.is_set():
            try:
                status, payload = self.call("GET", "/invocation", query=query, timeout=10)
            except Unreachable:
                done.wait(0.5)
                continue
            if status == 200 and payload.get("status") != "InProgress":
                if payload.get("status") in ("Cancelling", "Cancelled"):
                    cancelled.set()
                return
            if status != 200:
                return


def kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def read(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit * 4)
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")[:limit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the launcher's http://127.0.0.1:PORT")
    parser.add_argument("--instance", required=True, help="the instance id the guest is the agent of")
    parser.add_argument("--workdir", default=None, help="where invocation directories go (default: a temporary one)")
    parser.add_argument("--platform", default="Linux", choices=["Linux", "Windows", "MacOS"])
    parser.add_argument("--shell", default=shutil.which("bash") or "/bin/sh", help="the program run as sh (default bash)")
    parser.add_argument("--workers", type=int, default=5, help="invocations run at once")
    parser.add_argument("--give-up", type=float, default=30.0, help="exit 3 after the endpoint is unreachable this long")
    args = parser.parse_args()

    guest = Guest(args)

    def stop(_signum, _frame):
        guest.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    code = 0
    try:
        if not guest.register():
            return 0 if guest.stop.is_set() else 2
        try:
            print("GUEST READY", flush=True)
        except (OSError, ValueError):
            pass
        log(f"agent for {guest.instance} ({guest.platform}) online at {guest.endpoint}; workdir {guest.workdir}")
        code = guest.serve()
    finally:
        guest.stop.set()
        guest.join()
        if code != 3:
            guest.unregister()
        if guest.own_workdir:
            shutil.rmtree(guest.workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
