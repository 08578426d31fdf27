"""Start moto's EC2/S3 server on loopback with one fidelity fix, for irhost's tests.

On AWS an instance's security groups are its primary network interface's
groups, and every other interface has only its own. Stock moto (5.2.x):

  1. reports an ENI's groups as the union of its own and the instance's
     (NetworkInterface.group_set), so a secondary ENI moved to an isolation
     group still shows the instance's groups;
  2. does not change the instance's groups when ModifyNetworkInterfaceAttribute
     changes the primary ENI's groups (and the reverse for
     ModifyInstanceAttribute GroupId).

So a correct per-ENI isolation never looks complete there. With --fix-eni-groups
(the default) this launcher patches exactly these two behaviours and nothing
else; --stock starts moto unchanged (tests use it to show the difference).

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

Usage: irhost_moto_server.py [--port 0] [--stock] [--throttle CreateSnapshots:2] [--s3-slowdown 2:1] [--count-actions]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stock", action="store_true", help="do not apply the ENI group fix")
    parser.add_argument("--throttle", action="append", default=[], metavar="ACTION:N")
    parser.add_argument("--s3-slowdown", default=None, metavar="[SKIP:]N",
                        help="after SKIP S3 PutObject calls, the next N answer 503 SlowDown")
    parser.add_argument(
        "--count-actions",
        action="store_true",
        help=f"count EC2 calls per Action; GET {ActionCounter.PATH} (POST .../reset to zero)",
    )
    parser.add_argument("--iam-auth", action="store_true", help="add POST /irhost/enforce-iam")
    args = parser.parse_args()

    if not args.stock:
        apply_eni_group_fix()
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
