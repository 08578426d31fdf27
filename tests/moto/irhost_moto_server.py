"""Start moto's EC2/S3 server on loopback with fidelity fixes, for irhost's tests.

On AWS an instance's security groups are its primary network interface's
groups, and every other interface has only its own. Stock moto (5.2.x):

  1. reports an ENI's groups as the union of its own and the instance's
     (NetworkInterface.group_set), so a secondary ENI moved to an isolation
     group still shows the instance's groups;
  2. does not change the instance's groups when ModifyNetworkInterfaceAttribute
     changes the primary ENI's groups (and the reverse for
     ModifyInstanceAttribute GroupId).

So a correct per-ENI isolation never looks complete there. With --fix-eni-groups
(the default) this launcher patches exactly these two behaviours; --stock
starts moto unchanged (tests use it to show the difference).

Also by default (not with --stock), FSx file systems get what AWS gives them
and stock moto's FSx (5.2.x) does not: CreateFileSystem makes one ENI per
subnet in SubnetIds (a free address of the subnet, the SecurityGroupIds,
description "ENI for FSx file system fs-..."), and DescribeFileSystems (and
CreateFileSystem's answer) then carry NetworkInterfaceIds, VpcId (the first
subnet's) and Lifecycle AVAILABLE. Patched: FSxBackend.create_file_system
(wrapped) and FileSystem.to_dict (wrapped). moto's EFS already makes a mount
target's ENI.

For tests of throttling (which moto never does), --throttle Action:N makes
the first N calls of an EC2 action fail with RequestLimitExceeded, as AWS
does under load, and --s3-slowdown N makes the first N S3 PutObject calls
answer 503 SlowDown (--s3-slowdown SKIP:N: after SKIP good ones). This is
fault injection, off unless asked for.

For benchmarks, --count-actions counts the EC2 API calls moto serves, per
Action (throttled and failed calls included), with the time moto spent in
each (wall time inside its handler, summed over its request threads):
  GET  /irhost/action-counts        -> {"actions": {Action: n}, "seconds": {Action: s},
                                        "total": n, "busy_seconds": s,
                                        "connections": distinct client (address, port) pairs,
                                        a lower bound on TCP connections: a port can be reused}
  POST /irhost/action-counts/reset  -> zero them (e.g. after seeding)
Off unless asked for; without it those paths are moto's own (404).

For permission tests, --iam-auth adds POST /irhost/enforce-iam: from then
on moto authenticates every request against its IAM users and authorizes it
against their policies (moto's INITIAL_NO_AUTH_ACTION_COUNT mechanism,
switched on after seeding instead of after a count).

For Run Command tests, --ssm-agent adds an SSM agent model. Stock moto
(5.2.x) marks every SendCommand Success at once with empty output, and has no
CancelCommand, ListCommandInvocations or DescribeInstanceInformation. With
--ssm-agent an invocation (command, instance) stays Pending until a test
"guest" (tests/moto/ssm_guest.py, which runs the script for real) takes it,
and shows what the guest reported. Patched in moto: the methods send_command,
get_command_invocation, list_commands and describe_document of
moto.ssm.responses.SimpleSystemManagerResponse are replaced, and
list_command_invocations, cancel_command and describe_instance_information
added to it; moto.ssm.models.Command.response_object is wrapped (status and
counts). moto still stores each command (SimpleSystemManagerBackend.send_command,
unchanged). As AWS does (its botocore model, the agent's source, real outputs):
  SendCommand  documents AWS-RunShellScript and AWS-RunPowerShellScript (which
               moto does not have; parameters commands, workingDirectory,
               executionTimeout), or a Command document made with
               CreateDocument that has exactly one aws:runShellScript /
               aws:runPowerShellScript step ({{ name }} substituted; its
               PluginName is the step's name); else InvalidDocument, or
               InvalidDocumentVersion. Unknown, missing (commands) or bad
               (executionTimeout not 1..172800) parameters: InvalidParameters.
               DocumentHash (DocumentHashType Sha256, or Sha1) must match:
               the sha256 of the content moto holds, for the two AWS documents
               (no content here) the sha256 of the name; else InvalidDocument.
               Every instance in InstanceIds (or a Targets InstanceIds key)
               must have an online agent in the request's account and region
               (registered, and its moto EC2 instance, if any, running), else
               InvalidInstanceId "Instances [[i-1 i-2]] not in a valid state
               for account 123456789012" (400), as AWS answers for instances
               that are not managed; a platform the document does not support
               (AWS-RunShellScript: Linux, MacOS) is UnsupportedPlatformType.
               Targets tag:K / tag-key reach only instances with an online
               agent (intersected when several). Neither InstanceIds nor
               Targets: ValidationException. The answer is AWS's: Status
               Pending, TargetCount, CompletedCount 0, DocumentVersion as
               asked or "$DEFAULT", InstanceIds as given ([] for Targets),
               OutputS3Region the region, empty NotificationConfig,
               CloudWatchOutputConfig and AlarmConfiguration.
  invocations  Pending -> InProgress (a guest claimed it) -> Success | Failed |
               TimedOut (StatusDetails ExecutionTimedOut), as reported;
               Pending past the command's TimeoutSeconds -> TimedOut
               (DeliveryTimedOut); CancelCommand: Pending -> Cancelled,
               InProgress -> Cancelling -> Cancelled once the guest has
               stopped the script (or after --ssm-cancel-grace seconds, default
               10, if no guest acknowledges; -1: never). ResponseCode is -1
               until a result. AWS's DocumentHash is not part of the Command or
               the invocation (their botocore shapes have no such field):
               DescribeDocument has it (Hash, HashType Sha256, and Sha1; the
               two AWS documents are described too), and so has the guest's
               view of an invocation below.
  GetCommandInvocation  the real Status, StatusDetails, ResponseCode,
               Execution{Start,End}DateTime ("2022-01-05T10:35:35.383Z", ""
               until then), ExecutionElapsedTime ("PT0.198S"), DocumentName,
               DocumentVersion, PluginName (aws:runShellScript); stdout (first
               24000 characters) and stderr (first 8000) once Success, Failed
               or ExecutionTimedOut, else "". Unknown command or instance:
               InvocationDoesNotExist (400, no message, as AWS sends it); a
               PluginName not the step's: InvalidPluginName.
  ListCommands  the same statuses aggregated per command (Pending while all
               are; InProgress; Cancelling after CancelCommand until all are
               done; then Failed / TimedOut if errors exceed MaxErrors,
               default 0; else Cancelled if any is; else Success), with
               CompletedCount, ErrorCount (Failed + ExecutionTimedOut) and
               DeliveryTimedOutCount; newest first; CommandId, InstanceId,
               Filters (InvokedAfter, InvokedBefore, Status, DocumentName,
               ExecutionStage), MaxResults (1..50) / NextToken. An unknown
               CommandId: InvalidCommandId (moto's).
  ListCommandInvocations  one row per invocation, newest command first, with
               InstanceName (the EC2 private DNS name) and, with Details, the
               plugin (Output: stdout and stderr, 2500 characters); an unknown
               CommandId lists nothing.
  CancelCommand  CommandId (unknown: InvalidCommandId), InstanceIds optional
               (not targets of the command: InvalidInstanceId); answers {}.
  DescribeInstanceInformation  only instances registered with an online agent
               (running if moto has the EC2 instance): InstanceId, PingStatus
               Online, LastPingDateTime (the guest's last poll), AgentVersion,
               IsLatestVersion, PlatformType, PlatformName, PlatformVersion,
               ResourceType EC2Instance (ManagedInstance for mi-), IPAddress
               (the instance's private address), ComputerName. Filters (Key
               InstanceIds, PingStatus, PlatformTypes, ResourceType,
               AgentVersion) or the legacy InstanceInformationFilterList (key
               InstanceIds ...), not both (ValidationException); an unknown
               key: InvalidFilterKey; a malformed id: InvalidInstanceId. An id
               with no agent is simply not listed. MaxResults 5..50 (default
               10) and NextToken.
The guest: ssm_guest.py --endpoint http://127.0.0.1:PORT --instance i-...
[--workdir DIR] [--platform Linux] (its docstring says how it runs a script).
Plain JSON endpoints for the tests and the guest, only with --ssm-agent (the
outermost application: not counted by --count-actions):
  POST   /irhost/ssm/agents   {"instance_id": "i-...", "platform": "Linux"
                              (default) | "Windows" | "MacOS", optional
                              "platform_name", "platform_version",
                              "agent_version", "ip_address", "computer_name",
                              "account_id", "region"}
                              -> the agent; online from now on. Account,
                              region, IP address and computer name come from
                              moto's EC2 instance if it has one (else the body,
                              else 123456789012, us-east-1). {"online": false}
                              removes the agent.
  DELETE /irhost/ssm/agents?instance_id=i-...  (or /irhost/ssm/agents/i-...)
                              -> {"removed": bool}
  GET    /irhost/ssm/agents   -> {"agents": [...]}
  GET    /irhost/ssm/pending?instance_id=i-...[&wait=S]
                              -> {"invocations": [...]}: the Pending ones, each
                              {"command_id", "instance_id", "account_id",
                              "region", "document_name", "document_version",
                              "document_hash", "document_hash_type", "plugin"
                              (aws:runShellScript | aws:runPowerShellScript),
                              "plugin_name", "parameters" (as sent),
                              "commands" (list), "working_directory",
                              "execution_timeout" (seconds, as the agent reads
                              it: below 5 or unreadable is 3600),
                              "timeout_seconds", "comment", "requested",
                              "expires_after", "status", "status_details",
                              "response_code", "execution_start",
                              "execution_end", "stdout", "stderr"}; wait: long
                              poll up to S (max 20) seconds for one. Counts as
                              the agent's ping.
  GET    /irhost/ssm/invocation?command_id=...&instance_id=...[&status=X&wait=S]
                              -> that invocation (same fields); with status and
                              wait, once its status is no longer X (or after S
                              seconds): how a guest learns of a cancel. 404
                              if unknown.
  GET    /irhost/ssm/invocations[?instance_id=...][&command_id=...] -> all of them
  POST   /irhost/ssm/report   {"command_id", "instance_id", "status":
                              "InProgress" | "Success" | "Failed" | "TimedOut"
                              | "Cancelled", "stdout", "stderr",
                              "response_code" (default 0 / 1 / 137 / 137),
                              optional "status_details"}
                              -> {"status", "status_details"}. InProgress
                              claims a Pending invocation; Cancelled
                              acknowledges a Cancelling one. Refused with 409
                              {"error", "status"} when the invocation is
                              Cancelled or Cancelling (InvocationCancelled: the
                              guest must stop), already finished
                              (InvocationFinished), already claimed
                              (InvocationClaimed), or not being cancelled
                              (InvocationNotCancelling); 404 unknown, 400 bad.
                              stdout and stderr are cut to 24000 and 8000.

Usage: irhost_moto_server.py [--port 0] [--stock] [--throttle CreateSnapshots:2] [--s3-slowdown 2:1] [--count-actions]
                             [--iam-auth] [--ssm-agent [--ssm-cancel-grace 10]]
Prints "READY <port>" on stdout once the server accepts connections.
"""

import argparse
import sys


def apply_eni_group_fix() -> None:
    from moto.ec2.models.elastic_network_interfaces import (
        NetworkInterface,
        NetworkInterfaceBackend,
    )
    from moto.ec2.models.instances import InstanceBackend

    # 1. An ENI's groups are its own.
    NetworkInterface.group_set = property(lambda self: self._group_set)

    # 2. The instance's groups are its primary ENI's groups, both ways.
    modify_eni = NetworkInterfaceBackend.modify_network_interface_attribute

    def modify_network_interface_attribute(self, eni_id, group_ids, *args, **kwargs):
        modify_eni(self, eni_id, group_ids, *args, **kwargs)
        eni = self.get_network_interface(eni_id)
        instance = eni.instance
        if group_ids and instance is not None and instance.nics.get(0) is eni:
            instance.security_groups = list(eni._group_set)

    NetworkInterfaceBackend.modify_network_interface_attribute = modify_network_interface_attribute

    modify_instance = InstanceBackend.modify_instance_security_groups

    def modify_instance_security_groups(self, instance_id, new_group_id_list):
        instance = modify_instance(self, instance_id, new_group_id_list)
        primary = instance.nics.get(0)
        if primary is not None:
            primary._group_set = list(instance.security_groups)
        return instance

    InstanceBackend.modify_instance_security_groups = modify_instance_security_groups


def apply_fsx_network_fix() -> None:
    from moto.ec2 import ec2_backends
    from moto.fsx.models import FileSystem, FSxBackend

    create = FSxBackend.create_file_system

    def create_file_system(self, *args, **kwargs):
        file_system = create(self, *args, **kwargs)
        ec2 = ec2_backends[self.account_id][self.region_name]
        file_system.network_interface_ids = []
        file_system.vpc_id = None
        for subnet_id in file_system.subnet_ids or []:
            subnet = ec2.get_subnet(subnet_id)
            file_system.vpc_id = file_system.vpc_id or subnet.vpc_id
            eni = ec2.create_network_interface(
                subnet,
                [subnet.get_available_subnet_ip(file_system)],
                group_ids=file_system.security_group_ids or None,
                description=f"ENI for FSx file system {file_system.file_system_id}",
            )
            file_system.network_interface_ids.append(eni.id)
        return file_system

    FSxBackend.create_file_system = create_file_system

    to_dict = FileSystem.to_dict

    def file_system_dict(self):
        out = to_dict(self)
        out["Lifecycle"] = "AVAILABLE"
        if getattr(self, "network_interface_ids", None):
            out["NetworkInterfaceIds"] = list(self.network_interface_ids)
        if getattr(self, "vpc_id", None):
            out["VpcId"] = self.vpc_id
        return out

    FileSystem.to_dict = file_system_dict


def inject_throttling(spec: str) -> None:
    import re

    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.responses import EC2Response

    action, count = spec.split(":")
    method = re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()
    original = getattr(EC2Response, method)
    remaining = [int(count)]

    def throttled(self, *args, **kwargs):
        if remaining[0] > 0:
            remaining[0] -= 1
            raise EC2ClientError("RequestLimitExceeded", "Request limit exceeded.")
        return original(self, *args, **kwargs)

    setattr(EC2Response, method, throttled)


def inject_s3_slowdown(spec: str) -> None:
    """After SKIP PutObject calls, the next N answer 503 SlowDown, as S3 does
    when a prefix is written too fast (spec "SKIP:N", or "N" for 0:N)."""
    from moto.s3.responses import S3Response

    skip, count = spec.split(":") if ":" in spec else ("0", spec)
    original = S3Response.put_object
    skipped, remaining = [int(skip)], [int(count)]

    def put_object(self, *args, **kwargs):
        if skipped[0] > 0:
            skipped[0] -= 1
        elif remaining[0] > 0:
            remaining[0] -= 1
            body = (
                b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                b"<Message>Please reduce your request rate.</Message></Error>"
            )
            return 503, {"content-type": "application/xml"}, body
        return original(self, *args, **kwargs)

    S3Response.put_object = put_object


class ActionCounter:
    """Per-Action counts and handler time of the EC2 calls moto serves."""

    PATH = "/irhost/action-counts"

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.peers: set[tuple[str, str]] = set()

    def install(self) -> None:
        import time

        from moto.ec2.responses import EC2Response

        original = EC2Response.call_action
        counter = self

        def call_action(self, *args, **kwargs):
            action = self._get_action()
            start = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                with counter.lock:
                    counter.counts[action] = counter.counts.get(action, 0) + 1
                    counter.seconds[action] = counter.seconds.get(action, 0.0) + elapsed

        EC2Response.call_action = call_action

    def wrap(self, app):
        import json

        def counting_app(environ, start_response):
            path = environ.get("PATH_INFO", "")
            if not path.startswith(self.PATH):
                # Distinct client ports: a lower bound on the connections opened.
                with self.lock:
                    self.peers.add((environ.get("REMOTE_ADDR", ""), environ.get("REMOTE_PORT", "")))
            if path == self.PATH and environ.get("REQUEST_METHOD") == "GET":
                with self.lock:
                    body = json.dumps(
                        {
                            "actions": dict(sorted(self.counts.items())),
                            "seconds": {k: round(v, 6) for k, v in sorted(self.seconds.items())},
                            "total": sum(self.counts.values()),
                            "busy_seconds": round(sum(self.seconds.values()), 6),
                            "connections": len(self.peers),
                        }
                    ).encode()
            elif path == self.PATH + "/reset" and environ.get("REQUEST_METHOD") == "POST":
                with self.lock:
                    self.counts.clear()
                    self.seconds.clear()
                    self.peers.clear()
                body = b"{}"
            else:
                return app(environ, start_response)
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

        return counting_app


def enforce_iam_wrapper(app):
    """POST /irhost/enforce-iam: authorize every later request with IAM."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    def enforcing_app(environ, start_response):
        if environ.get("PATH_INFO") == "/irhost/enforce-iam" and environ.get("REQUEST_METHOD") == "POST":
            settings.INITIAL_NO_AUTH_ACTION_COUNT = ActionAuthenticatorMixin.request_count
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
            return [b"{}"]
        return app(environ, start_response)

    return enforcing_app


# --------------------------------------------------------------------------
# --ssm-agent: an SSM Run Command agent model (see the module docstring).

SSM_PATH = "/irhost/ssm"

# AWS's limits (GetCommandInvocation's shapes; the agent's own bounds).
SSM_STDOUT_MAX = 24000
SSM_STDERR_MAX = 8000
SSM_PLUGIN_OUTPUT_MAX = 2500
SSM_EXECUTION_TIMEOUT_DEFAULT = 3600
SSM_EXECUTION_TIMEOUT_MIN = 5  # the agent runs anything below for the default
SSM_EXECUTION_TIMEOUT_MAX = 172800
SSM_INSTANCE_ID = r"^(i-(\w{8}|\w{17})|mi-\w{17})$"
SSM_TERMINAL = ("Success", "Failed", "Cancelled", "TimedOut")

# The two AWS-owned documents moto does not have. Their content is the
# documents' shape (schema 1.2, one runtimeConfig plugin); their hash is the
# sha256 of the name, since moto has no content for them.
SSM_BUILTIN_DOCUMENTS = {
    "AWS-RunShellScript": ("aws:runShellScript", ["Linux", "MacOS"], "Run a shell script or specify the commands to run."),
    "AWS-RunPowerShellScript": (
        "aws:runPowerShellScript",
        ["Windows", "Linux", "MacOS"],
        "Run a PowerShell script or specify the paths to scripts to run.",
    ),
}
SSM_RUN_PLUGINS = ("aws:runShellScript", "aws:runPowerShellScript")


def _ssm_builtin_content(name: str) -> dict:
    plugin, _platforms, description = SSM_BUILTIN_DOCUMENTS[name]
    return {
        "schemaVersion": "1.2",
        "description": description,
        "parameters": {
            "commands": {"type": "StringList", "description": "(Required) Specify the commands to run or the paths to an existing script on the instance."},
            "workingDirectory": {"type": "String", "default": "", "description": "(Optional) The path to the working directory on your instance."},
            "executionTimeout": {
                "type": "String",
                "default": "3600",
                "description": "(Optional) The time in seconds for a command to complete before it is considered to have failed. Default is 3600 (1 hour). Maximum is 172800 (48 hours).",
            },
        },
        "runtimeConfig": {
            plugin: {
                "properties": [
                    {
                        "id": "0." + plugin,
                        "runCommand": "{{ commands }}",
                        "workingDirectory": "{{ workingDirectory }}",
                        "timeoutSeconds": "{{ executionTimeout }}",
                    }
                ]
            }
        },
    }


def _ssm_time(value) -> str:
    """GetCommandInvocation's string dates: 2022-01-05T10:35:35.383Z."""
    if value is None:
        return ""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _ssm_elapsed(start, end) -> str:
    """ISO 8601 duration, as AWS writes it (PT0.198S, PT1M5.120S)."""
    if start is None:
        return ""
    seconds = max((end - start).total_seconds(), 0.0)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = "PT"
    if hours:
        text += f"{int(hours)}H"
    if minutes:
        text += f"{int(minutes)}M"
    return text + f"{seconds:.3f}S"


def _ssm_error(code: str, message: str = ""):
    """An SSM API error; with no message, serialized as AWS sends
    InvocationDoesNotExist and the like: {"__type": code} alone."""
    from moto.ssm.exceptions import SSMException

    if message:
        return SSMException(code, message)

    class BareSSMError(SSMException):
        def __str__(self) -> str:
            return ""

    return BareSSMError(code, "")


class _SsmHttpError(Exception):
    def __init__(self, http_status: int, code: str, message: str = "", **extra) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = http_status, code, message, extra


class SsmPlan:
    """What SendCommand's document resolves to: one run-script step."""

    def __init__(self, **fields) -> None:
        self.__dict__.update(fields)


class SsmInvocation:
    """One (command, instance) pair and what the guest reported for it."""

    def __init__(self, command, state, instance_id: str) -> None:
        self.command = command
        self.state = state
        self.instance_id = instance_id
        self.status = "Pending"
        self.status_details = "Pending"
        self.response_code = -1
        self.stdout = ""
        self.stderr = ""
        self.start = None
        self.end = None
        self.requested = command.requested_date_time
        self.cancel_at = None

    def set(self, status: str, details: str) -> None:
        self.status, self.status_details = status, details

    # What AWS shows -------------------------------------------------------

    def _outputs_visible(self) -> bool:
        # "If the command hasn't finished running ... this string is empty."
        return self.status in ("Success", "Failed") or self.status_details == "ExecutionTimedOut"

    def get_command_invocation(self) -> dict:
        from moto.core.utils import utcnow

        visible = self._outputs_visible()
        return {
            "CommandId": self.command.command_id,
            "InstanceId": self.instance_id,
            "Comment": self.command.comment or "",
            "DocumentName": self.command.document_name,
            "DocumentVersion": self.state.document_version,
            "PluginName": self.state.plan.plugin_name,
            "ResponseCode": self.response_code,
            "ExecutionStartDateTime": _ssm_time(self.start),
            "ExecutionElapsedTime": _ssm_elapsed(self.start, self.end or utcnow()),
            "ExecutionEndDateTime": _ssm_time(self.end),
            "Status": self.status,
            "StatusDetails": self.status_details,
            "StandardOutputContent": self.stdout if visible else "",
            "StandardOutputUrl": "",
            "StandardErrorContent": self.stderr if visible else "",
            "StandardErrorUrl": "",
            "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
        }

    def command_invocation(self, details: bool, instance_name: str) -> dict:
        command = self.command
        plugins = []
        if details:
            output = ""
            if self._outputs_visible():
                output = self.stdout
                if self.stderr:
                    output += "\n----------ERROR-------\n" + self.stderr
                if len(output) > SSM_PLUGIN_OUTPUT_MAX:
                    suffix = "\n---Output truncated---"
                    output = output[: SSM_PLUGIN_OUTPUT_MAX - len(suffix)] + suffix
            plugin = {
                "Name": self.state.plan.plugin_name,
                "Status": "InProgress" if self.status == "Cancelling" else self.status,
                "StatusDetails": self.status_details,
                "ResponseCode": self.response_code,
                "Output": output,
                "StandardOutputUrl": "",
                "StandardErrorUrl": "",
                "OutputS3Region": command.output_s3_region or self.state.region,
                "OutputS3BucketName": command.output_s3_bucket_name or "",
                "OutputS3KeyPrefix": command.output_s3_key_prefix or "",
            }
            if self.start is not None:
                plugin["ResponseStartDateTime"] = self.start
            if self.end is not None:
                plugin["ResponseFinishDateTime"] = self.end
            plugins.append(plugin)
        return {
            "CommandId": command.command_id,
            "InstanceId": self.instance_id,
            "InstanceName": instance_name,
            "Comment": command.comment or "",
            "DocumentName": command.document_name,
            "DocumentVersion": self.state.document_version,
            "RequestedDateTime": self.requested,
            "Status": self.status,
            "StatusDetails": self.status_details,
            "TraceOutput": "",
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
            "CommandPlugins": plugins,
            "ServiceRole": command.service_role_arn or "",
            "NotificationConfig": self.state.notification_config(),
            "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
        }

    def guest_view(self) -> dict:
        plan, command = self.state.plan, self.command
        return {
            "command_id": command.command_id,
            "instance_id": self.instance_id,
            "account_id": self.state.account_id,
            "region": self.state.region,
            "document_name": command.document_name,
            "document_version": self.state.document_version,
            "document_hash": plan.hash,
            "document_hash_type": "Sha256",
            "plugin_name": plan.plugin_name,
            "plugin": plan.action,
            "parameters": command.parameters,
            "commands": list(self.state.commands),
            "working_directory": self.state.working_directory,
            "execution_timeout": self.state.execution_timeout,
            "timeout_seconds": command.timeout_seconds,
            "comment": command.comment or "",
            "requested": _ssm_time(self.requested),
            "expires_after": _ssm_time(command.expires_after),
            "status": self.status,
            "status_details": self.status_details,
            "response_code": self.response_code,
            "execution_start": _ssm_time(self.start),
            "execution_end": _ssm_time(self.end),
            "stdout": self.stdout,
            "stderr": self.stderr,
        }


class SsmCommandState:
    """The agent model's side of one moto Command (command._irhost_ssm)."""

    def __init__(self, command, plan, step, account_id, region, explicit_ids, document_version, has_notification):
        self.command = command
        self.plan = plan
        self.commands, self.working_directory, self.execution_timeout = step
        self.account_id = account_id
        self.region = region
        self.explicit_ids = explicit_ids
        self.document_version = document_version
        self.has_notification = has_notification
        self.cancel_requested = False
        self.invocations: dict[str, SsmInvocation] = {}

    def notification_config(self) -> dict:
        if self.has_notification:
            return self.command.notification_config
        return {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""}

    def summary(self) -> dict:
        invocations = list(self.invocations.values())
        count = len(invocations)
        completed = [i for i in invocations if i.status in SSM_TERMINAL]
        failed = sum(i.status == "Failed" for i in invocations)
        exec_timed_out = sum(i.status_details == "ExecutionTimedOut" for i in invocations)
        delivery_timed_out = sum(i.status_details == "DeliveryTimedOut" for i in invocations)
        if len(completed) < count:
            if self.cancel_requested:
                status = "Cancelling"
            elif all(i.status == "Pending" for i in invocations):
                status = "Pending"
            else:
                status = "InProgress"
            details = status
        else:
            allowed = self._max_errors(count)
            errors = failed + exec_timed_out + delivery_timed_out
            if errors > allowed:
                if failed:
                    status, details = "Failed", "Failed"
                else:
                    status = "TimedOut"
                    details = "ExecutionTimedOut" if exec_timed_out else "DeliveryTimedOut"
            elif any(i.status == "Cancelled" for i in invocations):
                status = details = "Cancelled"
            else:
                status = details = "Success"
        return {
            "Status": status,
            "StatusDetails": details,
            "TargetCount": count,
            "CompletedCount": len(completed),
            "ErrorCount": failed + exec_timed_out,
            "DeliveryTimedOutCount": delivery_timed_out,
        }

    def _max_errors(self, count: int) -> int:
        text = str(self.command.max_errors or "0").strip()
        try:
            if text.endswith("%"):
                return int(count * float(text[:-1]) / 100)
            return int(text)
        except ValueError:
            return 0


class SsmAgentModel:
    """Agents the test registered, and every invocation's real status."""

    PATH = SSM_PATH

    def __init__(self, cancel_grace: float = 10.0) -> None:
        import threading

        self.cond = threading.Condition(threading.RLock())
        self.agents: dict[str, dict] = {}
        self.by_instance: dict[str, list[SsmInvocation]] = {}
        self.cancel_grace = cancel_grace

    # Agents -----------------------------------------------------------------

    @staticmethod
    def _find_ec2_instance(instance_id: str, account_id=None, region=None):
        from moto.ec2.models import ec2_backends

        for account, regions in list(dict.items(ec2_backends)):
            if account_id and account != account_id:
                continue
            for name, backend in list(dict.items(regions)):
                if region and name != region:
                    continue
                instance = backend.get_instance_by_id(instance_id)
                if instance is not None:
                    return account, name, instance
        return None

    def register(self, body: dict) -> dict:
        import re

        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.core.utils import utcnow

        instance_id = body.get("instance_id") or body.get("InstanceId")
        if not isinstance(instance_id, str) or not re.match(SSM_INSTANCE_ID, instance_id):
            raise _SsmHttpError(400, "InvalidInstanceId", f"not an instance id: {instance_id!r}")
        if body.get("online", True) is False:
            with self.cond:
                removed = self.agents.pop(instance_id, None) is not None
                self.cond.notify_all()
            return {"instance_id": instance_id, "removed": removed}
        found = self._find_ec2_instance(instance_id, body.get("account_id"), body.get("region"))
        instance = found[2] if found else None
        # The agent says what it runs on (moto's AMIs are no guide: the
        # first one it lists is a Windows image).
        platform = body.get("platform") or "Linux"
        if platform not in ("Linux", "Windows", "MacOS"):
            raise _SsmHttpError(400, "InvalidPlatform", f"platform is Linux, Windows or MacOS, not {platform!r}")
        names = {
            "Linux": ("Amazon Linux", "2023"),
            "Windows": ("Microsoft Windows Server 2022 Datacenter", "10.0.20348"),
            "MacOS": ("macOS", "14.6"),
        }
        now = utcnow()
        agent = {
            "instance_id": instance_id,
            "platform": platform,
            "platform_name": body.get("platform_name") or names[platform][0],
            "platform_version": body.get("platform_version") or names[platform][1],
            "agent_version": body.get("agent_version") or "3.3.1142.0",
            "ip_address": body.get("ip_address") or (instance.private_ip_address if instance is not None else "") or "",
            "computer_name": body.get("computer_name") or (instance.private_dns_name if instance is not None else "") or "",
            "account_id": found[0] if found else (body.get("account_id") or DEFAULT_ACCOUNT_ID),
            "region": found[1] if found else (body.get("region") or "us-east-1"),
            "ec2": found is not None,
            "registered": now,
            "last_ping": now,
        }
        with self.cond:
            self.agents[instance_id] = agent
            self.cond.notify_all()
        return self._agent_json(agent)

    def unregister(self, instance_id: str) -> dict:
        with self.cond:
            removed = self.agents.pop(instance_id, None) is not None
            self.cond.notify_all()
        return {"instance_id": instance_id, "removed": removed}

    @staticmethod
    def _agent_json(agent: dict) -> dict:
        out = dict(agent)
        out["registered"] = _ssm_time(agent["registered"])
        out["last_ping"] = _ssm_time(agent["last_ping"])
        return out

    def _online(self, instance_id: str, account_id: str, region: str):
        """The agent if it is online for this account and region: registered,
        and its EC2 instance (when moto has one) running."""
        with self.cond:
            agent = self.agents.get(instance_id)
            agent = dict(agent) if agent else None
        if agent is None or agent["account_id"] != account_id or agent["region"] != region:
            return None
        if agent["ec2"]:
            found = self._find_ec2_instance(instance_id, account_id, region)
            if found is None or found[2].instance_state.name != "running":
                return None
        return agent

    def _ping(self, instance_id: str) -> None:
        from moto.core.utils import utcnow

        with self.cond:
            if instance_id in self.agents:
                self.agents[instance_id]["last_ping"] = utcnow()

    # Invocation state -------------------------------------------------------

    def _refresh(self, invocation: SsmInvocation, now) -> None:
        """Time-driven transitions: delivery timeout, cancel grace."""
        import datetime

        if invocation.status == "Pending" and now >= invocation.command.expires_after:
            invocation.set("TimedOut", "DeliveryTimedOut")
            self.cond.notify_all()
        elif (
            invocation.status == "Cancelling"
            and self.cancel_grace is not None
            and self.cancel_grace >= 0
            and now >= invocation.cancel_at + datetime.timedelta(seconds=self.cancel_grace)
        ):
            invocation.set("Cancelled", "Cancelled")
            invocation.end = now
            self.cond.notify_all()

    def _refresh_state(self, state: SsmCommandState) -> None:
        from moto.core.utils import utcnow

        now = utcnow()
        for invocation in state.invocations.values():
            self._refresh(invocation, now)

    @staticmethod
    def _state(command):
        return getattr(command, "_irhost_ssm", None)

    @staticmethod
    def _commands(backend) -> list:
        return list(backend._commands)

    def _find_command(self, backend, command_id):
        for command in self._commands(backend):
            if command.command_id == command_id:
                return command
        return None

    def _find_invocation(self, command_id: str, instance_id: str):
        with self.cond:
            for invocation in self.by_instance.get(instance_id, []):
                if invocation.command.command_id == command_id:
                    return invocation
        return None

    # Documents --------------------------------------------------------------

    def document_plan(self, backend, name, version) -> SsmPlan:
        import hashlib

        from moto.ssm.exceptions import InvalidDocument, InvalidDocumentVersion

        if not name:
            raise InvalidDocument("The specified document does not exist.")
        documents = backend._documents.get(name)
        if documents is not None:
            wanted = None if version in (None, "", "$DEFAULT") else version
            document = documents.find(wanted, None, strict=False)
            if document is None:
                raise InvalidDocumentVersion("The document version is not valid or does not exist.")
            if document.document_type != "Command":
                raise InvalidDocument(f"Document {name} is not a Command document.")
            content = document.content_json
            content_hash = document.hash
            sha1 = hashlib.sha1(document.content.encode("utf-8")).hexdigest()
            doc_version = document.document_version
        elif name in SSM_BUILTIN_DOCUMENTS:
            if version not in (None, "", "$DEFAULT", "$LATEST", "1"):
                raise InvalidDocumentVersion("The document version is not valid or does not exist.")
            content = _ssm_builtin_content(name)
            content_hash = hashlib.sha256(name.encode("utf-8")).hexdigest()
            sha1 = hashlib.sha1(name.encode("utf-8")).hexdigest()
            doc_version = "1"
        else:
            raise InvalidDocument("The specified document does not exist.")
        steps = []
        if isinstance(content.get("mainSteps"), list):
            for step in content["mainSteps"]:
                steps.append((step.get("action"), step.get("name"), step.get("inputs") or {}))
        elif isinstance(content.get("runtimeConfig"), dict):
            for action, config in content["runtimeConfig"].items():
                properties = (config or {}).get("properties")
                for prop in properties if isinstance(properties, list) else [properties or {}]:
                    steps.append((action, action, prop))
        if len(steps) != 1 or steps[0][0] not in SSM_RUN_PLUGINS:
            raise InvalidDocument(
                f"Document {name}: the irhost SSM agent model runs documents of exactly one "
                "aws:runShellScript or aws:runPowerShellScript step."
            )
        action, plugin_name, inputs = steps[0]
        platforms = ["Linux", "MacOS"] if action == "aws:runShellScript" else ["Windows", "Linux", "MacOS"]
        return SsmPlan(
            name=name,
            version=doc_version,
            hash=content_hash,
            sha1=sha1,
            action=action,
            plugin_name=plugin_name,
            inputs=inputs,
            parameters=content.get("parameters") or {},
            platform_types=platforms,
        )

    @staticmethod
    def resolve_step(plan: SsmPlan, parameters: dict):
        """The step's commands, working directory and execution timeout with
        the parameters substituted; InvalidParameters as AWS validates them."""
        import re

        from moto.ssm.exceptions import SSMException

        def invalid(message):
            return SSMException("InvalidParameters", message)

        if not isinstance(parameters, dict):
            raise invalid("Parameters must be a map of names to lists of strings.")
        unknown = sorted(set(parameters) - set(plan.parameters))
        if unknown:
            raise invalid(f"Parameters {unknown} are not valid for document {plan.name}.")
        values: dict[str, list] = {}
        for name, spec in plan.parameters.items():
            spec = spec or {}
            if name in parameters:
                value = parameters[name]
                value = [value] if isinstance(value, str) else list(value or [])
            elif "default" in spec:
                default = spec["default"]
                value = list(default) if isinstance(default, list) else [str(default)]
            else:
                raise invalid(f"Parameter {name} is required by document {plan.name}.")
            if spec.get("type", "String") != "StringList" and len(value) > 1:
                raise invalid(f"Parameter {name} takes one value.")
            values[name] = [str(v) for v in value]
        if "commands" in plan.parameters and not [c for c in values.get("commands", []) if c.strip()]:
            raise invalid("Parameter commands is required by document " + plan.name + ".")
        timeout_text = values.get("executionTimeout", ["3600"])
        if "executionTimeout" in values:
            text = (timeout_text or [""])[0]
            if not re.fullmatch(r"[1-9][0-9]*", text) or int(text) > SSM_EXECUTION_TIMEOUT_MAX:
                raise invalid(f"Parameter executionTimeout: {text!r} is not 1..{SSM_EXECUTION_TIMEOUT_MAX}.")

        placeholder = re.compile(r"\{\{\s*([A-Za-z0-9_.:-]+)\s*\}\}")

        def substitute(value):
            if isinstance(value, list):
                out = []
                for item in value:
                    resolved = substitute(item)
                    out.extend(resolved if isinstance(resolved, list) else [resolved])
                return out
            if isinstance(value, str):
                whole = placeholder.fullmatch(value.strip())
                if whole and whole.group(1) in values:
                    name = whole.group(1)
                    if (plan.parameters.get(name) or {}).get("type") == "StringList":
                        return list(values[name])
                    return values[name][0] if values[name] else ""
                return placeholder.sub(
                    lambda m: "\n".join(values[m.group(1)]) if m.group(1) in values else m.group(0), value
                )
            return value

        inputs = plan.inputs
        commands = substitute(inputs.get("runCommand", []))
        commands = [commands] if isinstance(commands, str) else [str(c) for c in commands]
        working_directory = substitute(inputs.get("workingDirectory", "")) or ""
        if isinstance(working_directory, list):
            working_directory = working_directory[0] if working_directory else ""
        timeout = substitute(inputs.get("timeoutSeconds", SSM_EXECUTION_TIMEOUT_DEFAULT))
        if isinstance(timeout, list):
            timeout = timeout[0] if timeout else ""
        try:
            timeout = int(float(timeout))
        except (TypeError, ValueError):
            timeout = SSM_EXECUTION_TIMEOUT_DEFAULT
        # The agent's ValidateExecutionTimeout: out of bounds runs for the default.
        if timeout < SSM_EXECUTION_TIMEOUT_MIN or timeout > SSM_EXECUTION_TIMEOUT_MAX:
            timeout = SSM_EXECUTION_TIMEOUT_DEFAULT
        return commands, str(working_directory), timeout

    def builtin_description(self, name: str) -> dict:
        import hashlib
        import datetime

        _plugin, platforms, description = SSM_BUILTIN_DOCUMENTS[name]
        content = _ssm_builtin_content(name)
        parameters = []
        for pname, spec in content["parameters"].items():
            entry = {"Name": pname, "Type": spec["type"], "Description": spec["description"]}
            if "default" in spec:
                entry["DefaultValue"] = spec["default"]
            parameters.append(entry)
        return {
            "Sha1": hashlib.sha1(name.encode("utf-8")).hexdigest(),
            "Hash": hashlib.sha256(name.encode("utf-8")).hexdigest(),
            "HashType": "Sha256",
            "Name": name,
            "Owner": "Amazon",
            "CreatedDate": datetime.datetime(2017, 8, 31, 0, 0, 0),
            "Status": "Active",
            "DocumentVersion": "1",
            "Description": description,
            "Parameters": parameters,
            "PlatformTypes": platforms,
            "DocumentType": "Command",
            "SchemaVersion": "1.2",
            "LatestVersion": "1",
            "DefaultVersion": "1",
            "DocumentFormat": "JSON",
            "TargetType": "/AWS::EC2::Instance",
        }

    # Targets ----------------------------------------------------------------

    def _target_instances(self, targets, account_id, region) -> tuple[list[str], list[str]]:
        """(instance ids named by InstanceIds targets, instance ids matched by
        tag targets). Several targets intersect, as on AWS."""
        from moto.ec2.models import ec2_backends
        from moto.ssm.exceptions import ValidationException

        named: list[str] = []
        matched: set[str] | None = None
        for target in targets or []:
            key = str(target.get("Key", ""))
            values = [str(v) for v in target.get("Values") or []]
            if key.lower() == "instanceids":
                named.extend(v for v in values if v not in named)
                continue
            if key.startswith("tag:"):
                tag = key[4:]
                test = lambda tags: tags.get(tag) in values  # noqa: E731
            elif key == "tag-key":
                test = lambda tags: any(v in tags for v in values)  # noqa: E731
            else:
                raise ValidationException(f"Target key {key} is not supported by the irhost SSM agent model.")
            backend = ec2_backends[account_id][region]
            hits = set()
            for instance in backend.all_instances():
                tags = {t["key"]: t["value"] for t in instance.get_tags()}
                if test(tags):
                    hits.add(instance.id)
            matched = hits if matched is None else matched & hits
        tagged = sorted(matched or [])
        return named, [i for i in tagged if i not in named]

    # SSM API (patched onto moto's SimpleSystemManagerResponse) -----------------

    def send_command(self, response):
        import re

        from moto.ssm.exceptions import InvalidDocument, SSMException, ValidationException

        backend = response.ssm_backend
        account_id, region = response.current_account, response.region
        name = response._get_param("DocumentName")
        version = response._get_param("DocumentVersion")
        plan = self.document_plan(backend, name, version)
        document_hash = response._get_param("DocumentHash")
        if document_hash:
            hash_type = response._get_param("DocumentHashType") or "Sha256"
            expected = plan.hash if hash_type == "Sha256" else plan.sha1
            if str(document_hash).lower() != expected:
                raise InvalidDocument(f"The {hash_type} hash does not match document {name}.")
        parameters = response._get_param("Parameters", {}) or {}
        step = self.resolve_step(plan, parameters)
        instance_ids = list(dict.fromkeys(response._get_param("InstanceIds", []) or []))
        targets = response._get_param("Targets", []) or []
        if not instance_ids and not targets:
            raise ValidationException("Either InstanceIds or Targets must be given.")
        named, tagged = self._target_instances(targets, account_id, region)
        explicit = instance_ids + [i for i in named if i not in instance_ids]
        bad = [i for i in explicit if not re.match(SSM_INSTANCE_ID, i) or self._online(i, account_id, region) is None]
        if bad:
            raise SSMException(
                "InvalidInstanceId", f"Instances [[{' '.join(bad)}]] not in a valid state for account {account_id}"
            )
        agents = {i: self._online(i, account_id, region) for i in explicit}
        unsupported = [i for i in explicit if agents[i]["platform"] not in plan.platform_types]
        if unsupported:
            raise SSMException(
                "UnsupportedPlatformType",
                f"The document {name} does not support the platform type of instances [{' '.join(unsupported)}]",
            )
        # Tag targets only ever reach managed nodes of a supported platform.
        for instance_id in tagged:
            agent = self._online(instance_id, account_id, region)
            if agent is not None and agent["platform"] in plan.platform_types:
                agents[instance_id] = agent
        targeted = explicit + [i for i in tagged if i in agents]

        notification = response._get_param("NotificationConfig")
        # moto stores the command (its Command, in its backend's list); under
        # the model's lock, so that no ListCommands sees it before its state.
        with self.cond:
            return self._store_command(
                response, backend, plan, step, name, version, parameters, targets, targeted,
                instance_ids, notification, account_id, region,
            )

    def _store_command(self, response, backend, plan, step, name, version, parameters, targets, targeted,
                       instance_ids, notification, account_id, region):
        from moto.core.responses import ActionResult

        command = backend.send_command(
            comment=response._get_param("Comment", ""),
            document_name=name,
            timeout_seconds=response._get_int_param("TimeoutSeconds"),
            instance_ids=list(targeted),
            max_concurrency=response._get_param("MaxConcurrency", "50"),
            max_errors=response._get_param("MaxErrors", "0"),
            notification_config=notification,
            output_s3_bucket_name=response._get_param("OutputS3BucketName", ""),
            output_s3_key_prefix=response._get_param("OutputS3KeyPrefix", ""),
            output_s3_region=response._get_param("OutputS3Region", ""),
            parameters=parameters,
            service_role_arn=response._get_param("ServiceRoleArn", ""),
            targets=[],  # resolved above: moto's EC2 filters know no InstanceIds key
        )
        command.targets = targets
        command.instance_ids = list(targeted)
        state = SsmCommandState(
            command, plan, step, account_id, region, list(instance_ids),
            version if version else "$DEFAULT", notification is not None,
        )
        for instance_id in targeted:
            invocation = SsmInvocation(command, state, instance_id)
            state.invocations[instance_id] = invocation
            self.by_instance.setdefault(instance_id, []).append(invocation)
        command._irhost_ssm = state
        self.cond.notify_all()
        return ActionResult({"Command": command.response_object()})

    def command_response_object(self, command, out: dict) -> dict:
        state = self._state(command)
        if state is None:
            return out
        with self.cond:
            self._refresh_state(state)
            out.update(state.summary())
        out["DocumentVersion"] = state.document_version
        out["InstanceIds"] = list(state.explicit_ids)
        out["Targets"] = command.targets
        out["OutputS3Region"] = command.output_s3_region or state.region
        out["NotificationConfig"] = state.notification_config()
        out["CloudWatchOutputConfig"] = {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False}
        out["AlarmConfiguration"] = {"IgnorePollAlarmFailure": False, "Alarms": []}
        out["TriggeredAlarms"] = []
        return out

    def get_command_invocation(self, response):
        from moto.core.responses import ActionResult

        command_id = response._get_param("CommandId")
        instance_id = response._get_param("InstanceId")
        plugin_name = response._get_param("PluginName")
        command = self._find_command(response.ssm_backend, command_id)
        state = self._state(command) if command is not None else None
        if state is None or instance_id not in state.invocations:
            raise _ssm_error("InvocationDoesNotExist")
        if plugin_name and plugin_name != state.plan.plugin_name:
            raise _ssm_error("InvalidPluginName")
        with self.cond:
            self._refresh_state(state)
            return ActionResult(state.invocations[instance_id].get_command_invocation())

    @staticmethod
    def _page(items: list, response, default: int, low: int, high: int):
        from moto.ssm.exceptions import ValidationException
        from moto.ssm.exceptions import SSMException

        max_results = response._get_int_param("MaxResults") or default
        if not low <= max_results <= high:
            raise ValidationException(f"MaxResults must be between {low} and {high}.")
        token = response._get_param("NextToken")
        start = 0
        if token:
            try:
                start = int(token)
            except ValueError:
                raise SSMException("InvalidNextToken", "The specified token is not valid.")
            if not 0 <= start <= len(items):
                raise SSMException("InvalidNextToken", "The specified token is not valid.")
        end = start + max_results
        return items[start:end], (str(end) if end < len(items) else None)

    @staticmethod
    def _command_filter(filters, summary_status: str, document_name: str, requested) -> bool:
        import datetime

        from moto.ssm.exceptions import SSMException

        for entry in filters or []:
            key, value = entry.get("key") or entry.get("Key"), str(entry.get("value") or entry.get("Value") or "")
            if key in ("InvokedAfter", "InvokedBefore"):
                try:
                    when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    raise SSMException("InvalidFilterValue", f"{value} is not a date.")
                if when.tzinfo is not None:
                    when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
                if key == "InvokedAfter" and requested < when:
                    return False
                if key == "InvokedBefore" and requested > when:
                    return False
            elif key == "Status":
                if summary_status != value:
                    return False
            elif key == "DocumentName":
                if document_name != value:
                    return False
            elif key == "ExecutionStage":
                finished = summary_status in SSM_TERMINAL
                if (value == "Complete") != finished:
                    return False
            else:
                raise _ssm_error("InvalidFilterKey")
        return True

    def list_commands(self, response):
        from moto.core.responses import ActionResult

        command_id = response._get_param("CommandId")
        instance_id = response._get_param("InstanceId")
        filters = response._get_param("Filters")
        commands = list(reversed(self._commands(response.ssm_backend)))  # newest first
        if command_id:
            commands = [c for c in commands if c.command_id == command_id]
            if not commands:
                raise _ssm_error("InvalidCommandId")
        if instance_id:
            commands = [c for c in commands if instance_id in c.instance_ids]
        objects = [c.response_object() for c in commands]
        objects = [
            o for o in objects
            if self._command_filter(filters, o["Status"], o["DocumentName"], o["RequestedDateTime"])
        ]
        page, token = self._page(objects, response, 50, 1, 50)
        result = {"Commands": page}
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    def list_command_invocations(self, response):
        from moto.core.responses import ActionResult

        command_id = response._get_param("CommandId")
        instance_id = response._get_param("InstanceId")
        filters = response._get_param("Filters")
        details = bool(response._get_param("Details", False))
        commands = list(reversed(self._commands(response.ssm_backend)))
        if command_id:
            commands = [c for c in commands if c.command_id == command_id]
        rows = []
        for command in commands:
            state = self._state(command)
            if state is None:
                continue
            with self.cond:
                self._refresh_state(state)
                invocations = list(state.invocations.values())
            for invocation in reversed(invocations):
                if instance_id and invocation.instance_id != instance_id:
                    continue
                if not self._command_filter(filters, invocation.status, command.document_name, invocation.requested):
                    continue
                with self.cond:
                    agent = self.agents.get(invocation.instance_id) or {}
                    rows.append(invocation.command_invocation(details, agent.get("computer_name", "")))
        page, token = self._page(rows, response, 50, 1, 50)
        result = {"CommandInvocations": page}
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    def cancel_command(self, response):
        from moto.core.responses import ActionResult
        from moto.core.utils import utcnow
        from moto.ssm.exceptions import SSMException

        command_id = response._get_param("CommandId")
        instance_ids = response._get_param("InstanceIds") or []
        command = self._find_command(response.ssm_backend, command_id)
        state = self._state(command) if command is not None else None
        if state is None:
            raise _ssm_error("InvalidCommandId")
        unknown = [i for i in instance_ids if i not in state.invocations]
        if unknown:
            raise SSMException("InvalidInstanceId", f"Instances [[{' '.join(unknown)}]] are not targets of command {command_id}")
        now = utcnow()
        with self.cond:
            self._refresh_state(state)
            chosen = instance_ids or list(state.invocations)
            for instance_id in chosen:
                invocation = state.invocations[instance_id]
                if invocation.status == "Pending":
                    invocation.set("Cancelled", "Cancelled")
                elif invocation.status == "InProgress":
                    invocation.set("Cancelling", "Cancelling")
                    invocation.cancel_at = now
            if set(chosen) == set(state.invocations):
                state.cancel_requested = True
            self.cond.notify_all()
        return ActionResult({})

    def describe_instance_information(self, response):
        import re

        from moto.core.responses import ActionResult
        from moto.ssm.exceptions import ValidationException
        from moto.ssm.exceptions import SSMException

        account_id, region = response.current_account, response.region
        filters = response._get_param("Filters") or []
        legacy = response._get_param("InstanceInformationFilterList") or []
        if filters and legacy:
            raise ValidationException("InstanceInformationFilterList and Filters cannot be used together.")
        wanted: dict[str, list[str]] = {}
        for entry in filters:
            wanted.setdefault(str(entry.get("Key")), []).extend(str(v) for v in entry.get("Values") or [])
        for entry in legacy:
            wanted.setdefault(str(entry.get("key")), []).extend(str(v) for v in entry.get("valueSet") or [])
        known = {"InstanceIds", "PingStatus", "PlatformTypes", "ResourceType", "AgentVersion"}
        for key in wanted:
            if key not in known:
                raise _ssm_error("InvalidFilterKey")
        for instance_id in wanted.get("InstanceIds", []):
            if not re.match(SSM_INSTANCE_ID, instance_id):
                raise SSMException("InvalidInstanceId", f"Instance id {instance_id} is not valid.")
        with self.cond:
            candidates = sorted(self.agents)
        rows = []
        for instance_id in candidates:
            agent = self._online(instance_id, account_id, region)
            if agent is None:
                continue
            resource = "ManagedInstance" if instance_id.startswith("mi-") else "EC2Instance"
            row = {
                "InstanceId": instance_id,
                "PingStatus": "Online",
                "LastPingDateTime": agent["last_ping"],
                "AgentVersion": agent["agent_version"],
                "IsLatestVersion": False,
                "PlatformType": agent["platform"],
                "PlatformName": agent["platform_name"],
                "PlatformVersion": agent["platform_version"],
                "ResourceType": resource,
                "ComputerName": agent["computer_name"],
                "SourceId": instance_id,
                "SourceType": "AWS::EC2::Instance" if resource == "EC2Instance" else "AWS::SSM::ManagedInstance",
            }
            if agent["ip_address"]:
                row["IPAddress"] = agent["ip_address"]
            if resource == "ManagedInstance":
                row["RegistrationDate"] = agent["registered"]
            checks = {
                "InstanceIds": instance_id,
                "PingStatus": "Online",
                "PlatformTypes": agent["platform"],
                "ResourceType": resource,
                "AgentVersion": agent["agent_version"],
            }
            if all(checks[key] in values for key, values in wanted.items()):
                rows.append(row)
        page, token = self._page(rows, response, 10, 5, 50)
        result = {"InstanceInformationList": page}
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    def describe_document(self, response, original):
        from moto.core.responses import ActionResult
        from moto.ssm.exceptions import InvalidDocumentVersion

        name = response._get_param("Name")
        if name in SSM_BUILTIN_DOCUMENTS and name not in response.ssm_backend._documents:
            version = response._get_param("DocumentVersion")
            if version not in (None, "", "$DEFAULT", "$LATEST", "1"):
                raise InvalidDocumentVersion("The document version is not valid or does not exist.")
            return ActionResult({"Document": self.builtin_description(name)})
        return original(response)

    def install(self) -> None:
        from moto.ssm.models import Command
        from moto.ssm.responses import SimpleSystemManagerResponse as R

        model = self
        original_response_object = Command.response_object
        original_describe_document = R.describe_document

        def response_object(self):
            return model.command_response_object(self, original_response_object(self))

        Command.response_object = response_object
        R.send_command = lambda self: model.send_command(self)
        R.get_command_invocation = lambda self: model.get_command_invocation(self)
        R.list_commands = lambda self: model.list_commands(self)
        R.list_command_invocations = lambda self: model.list_command_invocations(self)
        R.cancel_command = lambda self: model.cancel_command(self)
        R.describe_instance_information = lambda self: model.describe_instance_information(self)
        R.describe_document = lambda self: model.describe_document(self, original_describe_document)

    # Test control endpoints (/irhost/ssm/...) --------------------------------

    def _pending(self, instance_id: str) -> list[dict]:
        from moto.core.utils import utcnow

        now = utcnow()
        with self.cond:
            out = []
            for invocation in self.by_instance.get(instance_id, []):
                self._refresh(invocation, now)
                if invocation.status == "Pending":
                    out.append(invocation.guest_view())
            return out

    def _report(self, body: dict) -> dict:
        from moto.core.utils import utcnow

        command_id, instance_id = body.get("command_id"), body.get("instance_id")
        status = body.get("status")
        invocation = self._find_invocation(command_id, instance_id)
        if invocation is None:
            raise _SsmHttpError(404, "InvocationDoesNotExist", f"no invocation {command_id} on {instance_id}")
        if status not in ("InProgress", "Success", "Failed", "TimedOut", "Cancelled"):
            raise _SsmHttpError(400, "InvalidStatus", "status is InProgress, Success, Failed, TimedOut or Cancelled")
        code = body.get("response_code")
        if code is not None and not isinstance(code, int):
            raise _SsmHttpError(400, "InvalidResponseCode", "response_code is an integer")
        self._ping(instance_id)
        now = utcnow()
        with self.cond:
            self._refresh(invocation, now)
            current = invocation.status

            def refuse(reason: str):
                return _SsmHttpError(
                    409, reason, f"the invocation is {current}",
                    status=current, status_details=invocation.status_details,
                )

            if current == "Cancelled":
                raise refuse("InvocationCancelled")
            if current == "Cancelling" and status != "Cancelled":
                raise refuse("InvocationCancelled")
            if current in ("Success", "Failed", "TimedOut"):
                raise refuse("InvocationFinished")
            if status == "InProgress":
                if current != "Pending":
                    raise refuse("InvocationClaimed")
                invocation.set("InProgress", "InProgress")
                invocation.start = now
            else:
                if status == "Cancelled" and current != "Cancelling":
                    raise refuse("InvocationNotCancelling")
                details = {
                    "Success": "Success",
                    "Failed": "Failed",
                    "TimedOut": "ExecutionTimedOut",
                    "Cancelled": "Cancelled",
                }[status]
                defaults = {"Success": 0, "Failed": 1, "TimedOut": 137, "Cancelled": 137}
                invocation.set(status, body.get("status_details") or details)
                invocation.response_code = defaults[status] if code is None else code
                invocation.stdout = str(body.get("stdout") or "")[:SSM_STDOUT_MAX]
                invocation.stderr = str(body.get("stderr") or "")[:SSM_STDERR_MAX]
                if invocation.start is None:
                    invocation.start = now
                invocation.end = now
            self.cond.notify_all()
            return {"status": invocation.status, "status_details": invocation.status_details}

    def _wait(self, predicate, seconds: float):
        """Wait (up to 20 s) until predicate() returns something truthy."""
        import time

        deadline = time.monotonic() + max(0.0, min(seconds, 20.0))
        with self.cond:
            while True:
                value = predicate()
                remaining = deadline - time.monotonic()
                if value or remaining <= 0:
                    return value
                self.cond.wait(min(remaining, 0.5))

    def handle(self, method: str, path: str, query: dict, body: bytes):
        import json

        def payload() -> dict:
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                raise _SsmHttpError(400, "InvalidJson", "the body is not JSON")
            if not isinstance(data, dict):
                raise _SsmHttpError(400, "InvalidJson", "the body is a JSON object")
            return data

        def number(name: str) -> float:
            try:
                return float(query.get(name) or 0)
            except ValueError:
                raise _SsmHttpError(400, "InvalidQuery", f"{name} is a number of seconds")

        def required(name: str) -> str:
            if not query.get(name):
                raise _SsmHttpError(400, "MissingParameter", f"{name} is required")
            return query[name]

        if path == "/agents" and method == "POST":
            return 200, self.register(payload())
        if path == "/agents" and method == "DELETE":
            return 200, self.unregister(required("instance_id"))
        if path.startswith("/agents/") and method == "DELETE":
            return 200, self.unregister(path[len("/agents/"):])
        if path == "/agents" and method == "GET":
            with self.cond:
                return 200, {"agents": [self._agent_json(a) for _, a in sorted(self.agents.items())]}
        if path == "/pending" and method == "GET":
            instance_id = required("instance_id")
            self._ping(instance_id)
            return 200, {"invocations": self._wait(lambda: self._pending(instance_id), number("wait")) or []}
        if path == "/invocation" and method == "GET":
            invocation = self._find_invocation(required("command_id"), required("instance_id"))
            if invocation is None:
                raise _SsmHttpError(404, "InvocationDoesNotExist", "no such invocation")
            self._ping(invocation.instance_id)
            unless = query.get("status")

            def changed():
                from moto.core.utils import utcnow

                self._refresh(invocation, utcnow())
                return unless is None or invocation.status != unless

            self._wait(changed, number("wait"))
            with self.cond:
                return 200, invocation.guest_view()
        if path == "/invocations" and method == "GET":
            with self.cond:
                rows = [i for invocations in self.by_instance.values() for i in invocations]
                if query.get("instance_id"):
                    rows = [i for i in rows if i.instance_id == query["instance_id"]]
                if query.get("command_id"):
                    rows = [i for i in rows if i.command.command_id == query["command_id"]]
                rows.sort(key=lambda i: i.requested)
                return 200, {"invocations": [i.guest_view() for i in rows]}
        if path == "/report" and method == "POST":
            return 200, self._report(payload())
        raise _SsmHttpError(404, "NotFound", f"no {method} {self.PATH}{path}")

    def wrap(self, app):
        import http
        import json
        import urllib.parse

        def ssm_app(environ, start_response):
            path = environ.get("PATH_INFO", "")
            if path != self.PATH and not path.startswith(self.PATH + "/"):
                return app(environ, start_response)
            query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            try:
                status, result = self.handle(environ.get("REQUEST_METHOD", "GET"), path[len(self.PATH):], query, body)
            except _SsmHttpError as error:
                status = error.status
                result = {"error": error.code, "message": error.message, **error.extra}
            data = json.dumps(result).encode()
            start_response(
                f"{status} {http.HTTPStatus(status).phrase}",
                [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
            )
            return [data]

        return ssm_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stock", action="store_true", help="do not apply the ENI group and FSx network fixes")
    parser.add_argument("--throttle", action="append", default=[], metavar="ACTION:N")
    parser.add_argument("--s3-slowdown", default=None, metavar="[SKIP:]N",
                        help="after SKIP S3 PutObject calls, the next N answer 503 SlowDown")
    parser.add_argument(
        "--count-actions",
        action="store_true",
        help=f"count EC2 calls per Action; GET {ActionCounter.PATH} (POST .../reset to zero)",
    )
    parser.add_argument("--iam-auth", action="store_true", help="add POST /irhost/enforce-iam")
    parser.add_argument(
        "--ssm-agent",
        action="store_true",
        help=f"model SSM Run Command agents; test endpoints under {SSM_PATH}/",
    )
    parser.add_argument(
        "--ssm-cancel-grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="with --ssm-agent: a Cancelling invocation no guest acknowledges becomes Cancelled after this (-1: never)",
    )
    args = parser.parse_args()

    if not args.stock:
        apply_eni_group_fix()
        apply_fsx_network_fix()
    for spec in args.throttle:
        inject_throttling(spec)
    if args.s3_slowdown:
        inject_s3_slowdown(args.s3_slowdown)
    counter = None
    if args.count_actions:
        # Throttled calls count too: the throttle wraps the Action's own
        # method, which call_action calls.
        counter = ActionCounter()
        counter.install()
    ssm = None
    if args.ssm_agent:
        ssm = SsmAgentModel(cancel_grace=args.ssm_cancel_grace)
        ssm.install()

    from werkzeug.serving import make_server
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    app = DomainDispatcherApplication(create_backend_app)
    if counter is not None:
        app = counter.wrap(app)
    if args.iam_auth:
        app = enforce_iam_wrapper(app)
    if ssm is not None:
        # Outermost: the guests' polling is not counted by --count-actions.
        app = ssm.wrap(app)
    # Loopback only: moto's own default is 0.0.0.0.
    server = make_server("127.0.0.1", args.port, app, True, request_handler=MotoRequestHandler)
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
