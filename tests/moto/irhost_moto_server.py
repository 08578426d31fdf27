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

Usage: irhost_moto_server.py [--port 0] [--stock] [--throttle CreateSnapshots:2] [--s3-slowdown 2:1]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stock", action="store_true", help="do not apply the ENI group fix")
    parser.add_argument("--throttle", action="append", default=[], metavar="ACTION:N")
    parser.add_argument("--s3-slowdown", default=None, metavar="[SKIP:]N",
                        help="after SKIP S3 PutObject calls, the next N answer 503 SlowDown")
    args = parser.parse_args()

    if not args.stock:
        apply_eni_group_fix()
    for spec in args.throttle:
        inject_throttling(spec)
    if args.s3_slowdown:
        inject_s3_slowdown(args.s3_slowdown)

    from werkzeug.serving import make_server
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    app = DomainDispatcherApplication(create_backend_app)
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
