"""The --ssm-agent model of irhost_moto_server.py, with ssm_guest.py running
real scripts. Stdlib unittest + boto3, no cargo:

    ~/.cache/irhost/venv/bin/python -m unittest tests/moto/test_ssm_agent.py
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import boto3
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = os.path.join(HERE, "irhost_moto_server.py")
GUEST = os.path.join(HERE, "ssm_guest.py")
KEYS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def start_launcher(*flags):
    process = subprocess.Popen(
        [sys.executable, LAUNCHER, "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline()
    if not line.startswith("READY "):
        process.kill()
        raise AssertionError(f"launcher {flags} said {line!r}")
    return process, f"http://127.0.0.1:{int(line.split()[1])}"


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def read(path):
    with open(path) as handle:
        return handle.read()


def http(endpoint, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(endpoint + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw or b"{}")
        except ValueError:
            return error.code, raw


class SsmAgentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server, cls.endpoint = start_launcher("--ssm-agent")
        cls.ec2 = boto3.client("ec2", endpoint_url=cls.endpoint, **KEYS)
        cls.ssm = boto3.client("ssm", endpoint_url=cls.endpoint, **KEYS)
        cls.image = cls.ec2.describe_images()["Images"][0]["ImageId"]

    @classmethod
    def tearDownClass(cls):
        stop(cls.server)

    def setUp(self):
        self.guests = []
        self.workdir = tempfile.mkdtemp(prefix="ssm-agent-test-")
        self.addCleanup(shutil.rmtree, self.workdir, True)

    def tearDown(self):
        for guest in self.guests:
            stop(guest)

    # Helpers ----------------------------------------------------------------

    def instance(self):
        return self.ec2.run_instances(ImageId=self.image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]

    def guest(self, instance_id, *extra):
        process = subprocess.Popen(
            [sys.executable, GUEST, "--endpoint", self.endpoint, "--instance", instance_id,
             "--workdir", self.workdir, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.guests.append(process)
        self.assertEqual(process.stdout.readline().strip(), "GUEST READY")
        return process

    def register(self, instance_id, **fields):
        status, body = http(self.endpoint, "POST", "/irhost/ssm/agents", {"instance_id": instance_id, **fields})
        self.assertEqual(status, 200, body)
        return body

    def send(self, instance_id, commands, **parameters):
        parameters = {"commands": commands, **{k: [v] for k, v in parameters.items()}}
        return self.ssm.send_command(
            InstanceIds=[instance_id], DocumentName="AWS-RunShellScript", Parameters=parameters
        )["Command"]["CommandId"]

    def invocation(self, command_id, instance_id):
        return self.ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)

    def wait_for(self, command_id, instance_id, statuses, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            got = self.invocation(command_id, instance_id)
            if got["Status"] in statuses:
                return got
            if time.monotonic() > deadline:
                self.fail(f"{command_id} still {got['Status']}, wanted {statuses}")
            time.sleep(0.1)

    def command_status(self, command_id):
        return self.ssm.list_commands(CommandId=command_id)["Commands"][0]

    def listed(self, **kwargs):
        return [i["InstanceId"] for i in self.ssm.describe_instance_information(**kwargs)["InstanceInformationList"]]

    # Tests ------------------------------------------------------------------

    def test_pending_until_a_guest_takes_it(self):
        instance_id = self.instance()
        self.register(instance_id, platform="Linux")  # online, but nothing runs it yet
        command_id = self.send(instance_id, ["echo ran > marker", "echo hello from the guest"])
        time.sleep(0.5)
        got = self.invocation(command_id, instance_id)
        self.assertEqual((got["Status"], got["StatusDetails"], got["ResponseCode"]), ("Pending", "Pending", -1))
        self.assertEqual(got["ExecutionStartDateTime"], "")
        self.assertEqual(got["StandardOutputContent"], "")
        self.assertEqual(self.command_status(command_id)["Status"], "Pending")
        [row] = self.ssm.list_command_invocations(CommandId=command_id)["CommandInvocations"]
        self.assertEqual(row["Status"], "Pending")
        status, pending = http(self.endpoint, "GET", f"/irhost/ssm/pending?instance_id={instance_id}")
        self.assertEqual(status, 200)
        [entry] = pending["invocations"]
        self.assertEqual(entry["command_id"], command_id)
        self.assertEqual(entry["commands"], ["echo ran > marker", "echo hello from the guest"])
        self.assertEqual(entry["document_name"], "AWS-RunShellScript")
        self.assertEqual(entry["execution_timeout"], 3600)
        self.assertEqual(entry["document_hash"], hashlib.sha256(b"AWS-RunShellScript").hexdigest())

        self.guest(instance_id)
        got = self.wait_for(command_id, instance_id, ("Success", "Failed"))
        self.assertEqual(got["Status"], "Success")
        self.assertEqual(got["StandardOutputContent"], "hello from the guest\n")
        self.assertEqual(got["PluginName"], "aws:runShellScript")
        self.assertEqual(got["DocumentName"], "AWS-RunShellScript")
        self.assertTrue(got["ExecutionEndDateTime"].endswith("Z"))
        self.assertTrue(got["ExecutionElapsedTime"].startswith("PT"))
        summary = self.command_status(command_id)
        self.assertEqual((summary["Status"], summary["CompletedCount"], summary["TargetCount"]), ("Success", 1, 1))
        self.assertEqual(summary["DocumentVersion"], "$DEFAULT")

    def test_in_progress_until_the_script_ends_then_real_stdout(self):
        instance_id = self.instance()
        self.guest(instance_id)
        flag = os.path.join(self.workdir, "release")
        command_id = self.send(
            instance_id,
            [f"while [ ! -f {flag} ]; do sleep 0.1; done", "echo released", "printf '%s\\n' \"$((6 * 7))\"",
             "echo to stderr >&2", "env | grep -c '^AWS_SECRET' || true", 'echo "$AWS_SSM_INSTANCE_ID"'],
        )
        self.wait_for(command_id, instance_id, ("InProgress",))
        time.sleep(0.5)
        got = self.invocation(command_id, instance_id)
        self.assertEqual((got["Status"], got["ResponseCode"], got["StandardOutputContent"]), ("InProgress", -1, ""))
        self.assertNotEqual(got["ExecutionStartDateTime"], "")
        self.assertEqual(got["ExecutionEndDateTime"], "")
        self.assertEqual(self.command_status(command_id)["Status"], "InProgress")
        open(flag, "w").close()
        got = self.wait_for(command_id, instance_id, ("Success", "Failed"))
        self.assertEqual(got["Status"], "Success")
        self.assertEqual(got["ResponseCode"], 0)
        self.assertEqual(got["StandardOutputContent"], f"released\n42\n0\n{instance_id}\n")
        self.assertEqual(got["StandardErrorContent"], "to stderr\n")
        [row] = self.ssm.list_command_invocations(CommandId=command_id, Details=True)["CommandInvocations"]
        self.assertEqual(row["Status"], "Success")
        self.assertEqual(row["CommandPlugins"][0]["Name"], "aws:runShellScript")
        self.assertIn("released", row["CommandPlugins"][0]["Output"])

    def test_output_truncated_like_aws(self):
        instance_id = self.instance()
        self.guest(instance_id)
        command_id = self.send(instance_id, ["head -c 30000 /dev/zero | tr '\\0' a", "head -c 9000 /dev/zero | tr '\\0' b >&2"])
        got = self.wait_for(command_id, instance_id, ("Success", "Failed"))
        self.assertEqual(got["Status"], "Success")
        self.assertEqual(got["StandardOutputContent"], "a" * 24000)
        self.assertEqual(got["StandardErrorContent"], "b" * 8000)

    def test_failed_with_the_exit_code(self):
        instance_id = self.instance()
        self.guest(instance_id)
        command_id = self.send(instance_id, ["echo partial", "echo oops >&2", "exit 7"])
        got = self.wait_for(command_id, instance_id, ("Success", "Failed"))
        self.assertEqual((got["Status"], got["StatusDetails"], got["ResponseCode"]), ("Failed", "Failed", 7))
        self.assertEqual(got["StandardOutputContent"], "partial\n")
        self.assertEqual(got["StandardErrorContent"], "oops\nfailed to run commands: exit status 7")
        summary = self.command_status(command_id)
        self.assertEqual((summary["Status"], summary["ErrorCount"]), ("Failed", 1))

    def test_cancel_stops_a_running_script(self):
        instance_id = self.instance()
        self.guest(instance_id)
        pidfile = os.path.join(self.workdir, "pid")
        command_id = self.send(instance_id, [f"echo $$ > {pidfile}", "sleep 30", "echo not reached"])
        self.wait_for(command_id, instance_id, ("InProgress",))
        deadline = time.monotonic() + 10
        while not (os.path.exists(pidfile) and read(pidfile).strip()):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        pid = int(read(pidfile))
        started = time.monotonic()
        answer = self.ssm.cancel_command(CommandId=command_id)
        self.assertEqual(set(answer) - {"ResponseMetadata"}, set())
        got = self.wait_for(command_id, instance_id, ("Cancelled",), timeout=10)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual((got["Status"], got["StatusDetails"]), ("Cancelled", "Cancelled"))
        self.assertEqual(got["StandardOutputContent"], "")
        self.assertEqual(self.command_status(command_id)["Status"], "Cancelled")
        deadline = time.monotonic() + 5
        while True:  # the script's shell (and its sleep, same group) are gone
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            self.assertLess(time.monotonic(), deadline, "the cancelled script still runs")
            time.sleep(0.05)
        # A guest's report on it now is refused, so a guest knows.
        status, body = http(self.endpoint, "POST", "/irhost/ssm/report",
                            {"command_id": command_id, "instance_id": instance_id, "status": "Success"})
        self.assertEqual((status, body["status"]), (409, "Cancelled"))

    def test_cancel_before_the_guest_takes_it(self):
        instance_id = self.instance()
        self.register(instance_id, platform="Linux")
        marker = os.path.join(self.workdir, "ran")
        command_id = self.send(instance_id, [f"touch {marker}"])
        self.ssm.cancel_command(CommandId=command_id, InstanceIds=[instance_id])
        got = self.invocation(command_id, instance_id)
        self.assertEqual((got["Status"], got["ResponseCode"]), ("Cancelled", -1))
        self.guest(instance_id)
        time.sleep(1.5)
        self.assertFalse(os.path.exists(marker), "a cancelled invocation ran")
        status, pending = http(self.endpoint, "GET", f"/irhost/ssm/pending?instance_id={instance_id}")
        self.assertEqual(pending["invocations"], [])
        with self.assertRaises(ClientError) as caught:
            self.ssm.cancel_command(CommandId="00000000-0000-0000-0000-000000000000")
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidCommandId")

    def test_execution_timeout(self):
        instance_id = self.instance()
        self.guest(instance_id)
        command_id = self.send(instance_id, ["echo before", "sleep 30"], executionTimeout="5")
        got = self.wait_for(command_id, instance_id, ("TimedOut", "Success", "Failed"), timeout=20)
        self.assertEqual((got["Status"], got["StatusDetails"], got["ResponseCode"]), ("TimedOut", "ExecutionTimedOut", 137))
        self.assertEqual(got["StandardOutputContent"], "before\n")
        self.assertEqual(self.command_status(command_id)["Status"], "TimedOut")

    def test_working_directory(self):
        instance_id = self.instance()
        self.guest(instance_id)
        command_id = self.send(instance_id, ["pwd"], workingDirectory=self.workdir)
        got = self.wait_for(command_id, instance_id, ("Success", "Failed"))
        self.assertEqual(got["StandardOutputContent"], os.path.realpath(self.workdir) + "\n")
        command_id = self.send(instance_id, ["pwd"])  # default: a fresh directory per invocation
        got = self.wait_for(command_id, instance_id, ("Success", "Failed"))
        self.assertTrue(got["StandardOutputContent"].startswith(os.path.realpath(self.workdir) + "/" + command_id))

    def test_describe_instance_information_lists_only_registered(self):
        with_guest, registered, bare = self.instance(), self.instance(), self.instance()
        self.guest(with_guest)
        self.register(registered, platform="Windows", ip_address="10.1.2.3")
        listed = self.listed()
        self.assertIn(with_guest, listed)
        self.assertIn(registered, listed)
        self.assertNotIn(bare, listed)
        [info] = self.ssm.describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": [registered]}]
        )["InstanceInformationList"]
        self.assertEqual(
            {k: info[k] for k in ("InstanceId", "PingStatus", "PlatformType", "ResourceType", "IPAddress")},
            {"InstanceId": registered, "PingStatus": "Online", "PlatformType": "Windows",
             "ResourceType": "EC2Instance", "IPAddress": "10.1.2.3"},
        )
        self.assertIn("AgentVersion", info)
        self.assertIn("PlatformName", info)
        self.assertIn("LastPingDateTime", info)
        legacy = self.ssm.describe_instance_information(
            InstanceInformationFilterList=[{"key": "InstanceIds", "valueSet": [with_guest, bare]}]
        )["InstanceInformationList"]
        self.assertEqual([i["InstanceId"] for i in legacy], [with_guest])
        [mine] = self.ssm.describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": [with_guest]}]
        )["InstanceInformationList"]
        self.assertEqual(mine["PlatformType"], "Linux")
        self.assertTrue(mine["IPAddress"])  # moto's private address of the instance

        # Paging: MaxResults (5..50) and NextToken.
        extra = [self.instance() for _ in range(5)]
        for instance_id in extra:
            self.register(instance_id)
        first = self.ssm.describe_instance_information(MaxResults=5)
        self.assertEqual(len(first["InstanceInformationList"]), 5)
        rest = self.ssm.describe_instance_information(MaxResults=5, NextToken=first["NextToken"])
        everything = [i["InstanceId"] for i in first["InstanceInformationList"] + rest["InstanceInformationList"]]
        for instance_id in extra + [with_guest, registered]:
            self.assertIn(instance_id, everything)
        self.assertEqual(len(everything), len(set(everything)))

        # Removed (DELETE, or online: false): no longer listed.
        status, _ = http(self.endpoint, "DELETE", f"/irhost/ssm/agents?instance_id={registered}")
        self.assertEqual(status, 200)
        self.register(extra[0], online=False)
        listed = self.listed()
        self.assertNotIn(registered, listed)
        self.assertNotIn(extra[0], listed)
        for instance_id in extra[1:]:
            http(self.endpoint, "DELETE", f"/irhost/ssm/agents/{instance_id}")

    def test_send_to_an_instance_without_agent(self):
        bare = self.instance()
        with self.assertRaises(ClientError) as caught:
            self.send(bare, ["true"])
        error = caught.exception.response["Error"]
        self.assertEqual(error["Code"], "InvalidInstanceId")
        self.assertEqual(error["Message"], f"Instances [[{bare}]] not in a valid state for account 123456789012")
        self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        # A stopped instance's agent is offline too.
        stopped = self.instance()
        self.register(stopped)
        self.ec2.stop_instances(InstanceIds=[stopped])
        with self.assertRaises(ClientError) as caught:
            self.send(stopped, ["true"])
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidInstanceId")
        self.assertNotIn(stopped, self.listed())
        # A Windows agent cannot run AWS-RunShellScript.
        windows = self.instance()
        self.register(windows, platform="Windows")
        with self.assertRaises(ClientError) as caught:
            self.send(windows, ["true"])
        self.assertEqual(caught.exception.response["Error"]["Code"], "UnsupportedPlatformType")
        http(self.endpoint, "DELETE", f"/irhost/ssm/agents/{windows}")
        http(self.endpoint, "DELETE", f"/irhost/ssm/agents/{stopped}")

    def test_unknown_invocation(self):
        instance_id = self.instance()
        self.register(instance_id)
        command_id = self.send(instance_id, ["true"])
        for command, instance in (("00000000-0000-0000-0000-000000000000", instance_id), (command_id, self.instance())):
            with self.assertRaises(ClientError) as caught:
                self.invocation(command, instance)
            self.assertEqual(caught.exception.response["Error"]["Code"], "InvocationDoesNotExist")
            self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        self.ssm.cancel_command(CommandId=command_id)
        http(self.endpoint, "DELETE", f"/irhost/ssm/agents/{instance_id}")

    def test_document_hash(self):
        document = self.ssm.describe_document(Name="AWS-RunShellScript")["Document"]
        self.assertEqual((document["HashType"], document["Hash"]),
                         ("Sha256", hashlib.sha256(b"AWS-RunShellScript").hexdigest()))
        instance_id = self.instance()
        self.register(instance_id)
        command = self.ssm.send_command(
            InstanceIds=[instance_id], DocumentName="AWS-RunShellScript", DocumentVersion="1",
            DocumentHash=document["Hash"], DocumentHashType="Sha256", Parameters={"commands": ["true"]},
            Comment="pinned", TimeoutSeconds=600,
        )["Command"]
        self.assertEqual((command["DocumentVersion"], command["Comment"], command["TimeoutSeconds"]), ("1", "pinned", 600))
        with self.assertRaises(ClientError) as caught:
            self.ssm.send_command(
                InstanceIds=[instance_id], DocumentName="AWS-RunShellScript",
                DocumentHash="0" * 64, DocumentHashType="Sha256", Parameters={"commands": ["true"]},
            )
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidDocument")
        with self.assertRaises(ClientError) as caught:
            self.ssm.send_command(InstanceIds=[instance_id], DocumentName="AWS-RunShellScript", Parameters={})
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidParameters")
        # A document moto holds: its content's sha256.
        content = json.dumps({
            "schemaVersion": "2.2", "description": "test",
            "parameters": {"message": {"type": "String", "default": "hi"}},
            "mainSteps": [{"action": "aws:runShellScript", "name": "say", "inputs": {"runCommand": ["echo {{ message }}"]}}],
        })
        self.ssm.create_document(Content=content, Name="irhost-say", DocumentType="Command", DocumentFormat="JSON")
        self.assertEqual(self.ssm.describe_document(Name="irhost-say")["Document"]["Hash"],
                         hashlib.sha256(content.encode()).hexdigest())
        self.guest(instance_id)
        command_id = self.ssm.send_command(
            InstanceIds=[instance_id], DocumentName="irhost-say", Parameters={"message": ["custom"]},
            DocumentHash=hashlib.sha256(content.encode()).hexdigest(), DocumentHashType="Sha256",
        )["Command"]["CommandId"]
        got = self.wait_for(command_id, instance_id, ("Success", "Failed"))
        self.assertEqual((got["Status"], got["StandardOutputContent"], got["PluginName"]), ("Success", "custom\n", "say"))

    def test_download_verify_run_and_put_to_presigned_urls(self):
        """The shape of irhost's generated scripts: curl a tool from a
        loopback server, check its sha256, run it, PUT its output in parts to
        pre-signed S3 URLs on the same moto server."""
        import http.server
        import threading

        tool = b"#!/bin/sh\nhead -c 300000 /dev/zero | tr '\\0' x\n"
        digest = hashlib.sha256(tool).hexdigest()

        class Serve(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(tool)))
                self.end_headers()
                self.wfile.write(tool)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Serve)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        s3 = boto3.client("s3", endpoint_url=self.endpoint, **KEYS)
        s3.create_bucket(Bucket="irhost-ssm-parts")
        urls = [
            s3.generate_presigned_url("put_object", Params={"Bucket": "irhost-ssm-parts", "Key": f"part-{n}"}, ExpiresIn=600)
            for n in range(2)
        ]
        instance_id = self.instance()
        self.guest(instance_id)
        command_id = self.send(instance_id, [
            "set -eu",
            f"curl -fsS -o tool http://127.0.0.1:{server.server_address[1]}/tool",
            f"echo '{digest}  tool' | sha256sum -c --quiet",
            "chmod +x tool && ./tool > out",
            "dd if=out of=part-0 bs=150000 count=1 status=none",
            "dd if=out of=part-1 bs=150000 skip=1 status=none",
            f"curl -fsS -X PUT --upload-file part-0 '{urls[0]}'",
            f"curl -fsS -X PUT --upload-file part-1 '{urls[1]}'",
            "stat -c %s out",
        ])
        got = self.wait_for(command_id, instance_id, ("Success", "Failed"))
        self.assertEqual((got["Status"], got["StandardOutputContent"]), ("Success", "300000\n"), got["StandardErrorContent"])
        body = b"".join(s3.get_object(Bucket="irhost-ssm-parts", Key=f"part-{n}")["Body"].read() for n in range(2))
        self.assertEqual(body, b"x" * 300000)

    def test_powershell_on_a_windows_guest(self):
        instance_id = self.instance()
        self.guest(instance_id, "--platform", "Windows")
        [info] = self.ssm.describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": [instance_id]}]
        )["InstanceInformationList"]
        self.assertEqual(info["PlatformType"], "Windows")
        command_id = self.ssm.send_command(
            InstanceIds=[instance_id], DocumentName="AWS-RunPowerShellScript",
            Parameters={"commands": ["Write-Output hi"]},
        )["Command"]["CommandId"]
        got = self.wait_for(command_id, instance_id, ("Success", "Failed"))
        self.assertEqual(got["PluginName"], "aws:runPowerShellScript")
        if shutil.which("pwsh") or shutil.which("powershell"):
            self.assertEqual((got["Status"], got["StandardOutputContent"]), ("Success", "hi\n"))
        else:
            self.assertEqual((got["Status"], got["ResponseCode"]), ("Failed", 1))
            self.assertIn('exec: "pwsh": executable file not found', got["StandardErrorContent"])

    def test_guest_exits_cleanly_on_sigterm(self):
        instance_id = self.instance()
        guest = self.guest(instance_id)
        self.assertIn(instance_id, self.listed())
        command_id = self.send(instance_id, ["sleep 30"])
        self.wait_for(command_id, instance_id, ("InProgress",))
        guest.send_signal(signal.SIGTERM)
        self.assertEqual(guest.wait(timeout=10), 0)
        self.assertNotIn(instance_id, self.listed())
        self.assertEqual(self.invocation(command_id, instance_id)["Status"], "Failed")


class LauncherFlagsTest(unittest.TestCase):
    """Without --ssm-agent nothing changes; the other flags still start."""

    def test_flags_still_start(self):
        for flags in ([], ["--stock"], ["--count-actions"], ["--iam-auth"], ["--throttle", "CreateSnapshots:1"],
                      ["--s3-slowdown", "1:1"], ["--ssm-agent", "--count-actions", "--iam-auth"]):
            with self.subTest(flags=flags):
                process, endpoint = start_launcher(*flags)
                try:
                    ec2 = boto3.client("ec2", endpoint_url=endpoint, **KEYS)
                    self.assertIsInstance(ec2.describe_instances()["Reservations"], list)
                finally:
                    stop(process)

    def test_default_is_stock_ssm(self):
        process, endpoint = start_launcher()
        try:
            status, _ = http(endpoint, "GET", "/irhost/ssm/agents")
            self.assertEqual(status, 404)
            ec2 = boto3.client("ec2", endpoint_url=endpoint, **KEYS)
            ssm = boto3.client("ssm", endpoint_url=endpoint, **KEYS)
            image = ec2.describe_images()["Images"][0]["ImageId"]
            instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
            command = ssm.send_command(InstanceIds=[instance_id], DocumentName="AWS-RunShellScript",
                                       Parameters={"commands": ["true"]})["Command"]
            self.assertEqual(command["Status"], "Success")  # moto's own: done at once
            got = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=instance_id)
            self.assertEqual((got["Status"], got["StandardOutputContent"]), ("Success", ""))
        finally:
            stop(process)

    def eni_groups(self, *flags):
        process, endpoint = start_launcher(*flags)
        try:
            out = subprocess.run(
                [sys.executable, os.path.join(HERE, "ec2_fixture.py"), "eni-groups", endpoint],
                capture_output=True, text=True, check=True,
            )
            return json.loads(out.stdout)
        finally:
            stop(process)

    def test_eni_group_fix_is_still_the_default(self):
        for flags in ([], ["--ssm-agent"]):
            with self.subTest(flags=flags):
                got = self.eni_groups(*flags)
                self.assertEqual(got["secondary"], [got["a"]])
                self.assertEqual(got["primary"], [got["b"]])
                self.assertEqual(got["instance"], [got["b"]])
        stock = self.eni_groups("--stock")
        self.assertNotEqual(stock["secondary"], [stock["a"]])


if __name__ == "__main__":
    unittest.main()
