"""Seed and read EC2 state in a moto server, for irhost's AWS tests.

  ec2_fixture.py seed ENDPOINT SCENARIO   -> prints the created ids as JSON
  ec2_fixture.py state ENDPOINT           -> prints instances, ENIs, groups,
                                             snapshots and volumes as JSON
  ec2_fixture.py iam-user ENDPOINT NAME ACTION...
                                          -> an IAM user allowed ACTIONs (IAM
                                             names, wildcards) and its access key
  ec2_fixture.py eni-groups ENDPOINT      -> moves a two-ENI instance's ENIs to a
                                             new group each and prints what EC2
                                             then reports (shows moto's ENI fix)

With IRHOST_FIXTURE_ACCOUNT=123412341234 in the environment, every call is
made with credentials assumed (moto's STS) into that account: moto keeps
each account's resources apart, as AWS does. IRHOST_FIXTURE_REGION picks the
region (default us-east-1); IRHOST_FIXTURE_KEY_ID / IRHOST_FIXTURE_SECRET the
keys (default moto's "testing"; an IAM user's once IAM is enforced).

Scenarios:
  multi-eni   one instance, two ENIs in two subnets, three EBS volumes
  two-vpcs    two instances in two VPCs
  stopped     one stopped instance
  fleet:N     N single-ENI instances with one extra volume each
  shared-storage
              one instance in subnet a of a VPC with subnets a and b (two
              zones); EFS "shared" with mount targets in a (group nfs) and b,
              EFS "elsewhere" with one only in b; FSx Lustre "scratch" in a,
              FSx Lustre "other" in b: what the instance's subnets reach is
              shared's mount target in a and scratch
"""

import json
import os
import sys

import boto3

REGION = os.environ.get("IRHOST_FIXTURE_REGION", "us-east-1")


def client(endpoint, service="ec2"):
    keys = {
        "aws_access_key_id": os.environ.get("IRHOST_FIXTURE_KEY_ID", "testing"),
        "aws_secret_access_key": os.environ.get("IRHOST_FIXTURE_SECRET", "testing"),
    }
    account = os.environ.get("IRHOST_FIXTURE_ACCOUNT")
    if account:
        sts = boto3.client("sts", region_name=REGION, endpoint_url=endpoint, **keys)
        assumed = sts.assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/irhost-fixture", RoleSessionName="fixture"
        )["Credentials"]
        keys = {
            "aws_access_key_id": assumed["AccessKeyId"],
            "aws_secret_access_key": assumed["SecretAccessKey"],
            "aws_session_token": assumed["SessionToken"],
        }
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint, **keys)


def ami(ec2):
    return ec2.describe_images()["Images"][0]["ImageId"]


def vpc_with_subnets(ec2, cidr, n):
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    base = cidr.split(".")
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"{base[0]}.{base[1]}.{i}.0/24")["Subnet"]["SubnetId"]
        for i in range(n)
    ]
    web = ec2.create_security_group(GroupName=f"web-{vpc}", Description="web", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=web,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        ],
    )
    return vpc, subnets, web


def instance(ec2, subnet, groups, volumes, name):
    mappings = [
        {"DeviceName": f"/dev/sd{chr(ord('f') + i)}", "Ebs": {"VolumeSize": 8, "DeleteOnTermination": True}}
        for i in range(volumes)
    ]
    r = ec2.run_instances(
        ImageId=ami(ec2),
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        SubnetId=subnet,
        SecurityGroupIds=groups,
        BlockDeviceMappings=mappings,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
    )
    return r["Instances"][0]["InstanceId"]


def seed(endpoint, scenario):
    ec2 = client(endpoint)
    out = {}
    if scenario == "multi-eni":
        vpc, subnets, web = vpc_with_subnets(ec2, "10.10.0.0/16", 2)
        db = ec2.create_security_group(GroupName="db", Description="db", VpcId=vpc)["GroupId"]
        ec2.authorize_security_group_ingress(
            GroupId=db,
            IpPermissions=[{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "10.10.0.0/16"}]}],
        )
        # Three EBS volumes (moto adds no root volume when mappings are given).
        iid = instance(ec2, subnets[0], [web], 3, "multi-eni")
        eni = ec2.create_network_interface(SubnetId=subnets[1], Groups=[db])["NetworkInterface"]["NetworkInterfaceId"]
        ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=iid, DeviceIndex=1)
        eip = ec2.allocate_address(Domain="vpc")
        ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=iid)
        out = {"instance": iid, "vpc": vpc, "groups": {"web": web, "db": db}, "secondary_eni": eni, "eip": eip["PublicIp"]}
    elif scenario == "protocol":
        # The full protocol's suspect: its own world-open group (web), a
        # world-open group it shares with a neighbour (shared), an Elastic IP.
        vpc, subnets, web = vpc_with_subnets(ec2, "10.60.0.0/16", 1)
        shared = ec2.create_security_group(GroupName="shared", Description="shared", VpcId=vpc)["GroupId"]
        ec2.authorize_security_group_ingress(
            GroupId=shared,
            IpPermissions=[{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        )
        iid = instance(ec2, subnets[0], [web, shared], 1, "suspect")
        neighbour = instance(ec2, subnets[0], [shared], 1, "neighbour")
        eip = ec2.allocate_address(Domain="vpc")
        ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=iid)
        out = {"instance": iid, "neighbour": neighbour, "vpc": vpc, "subnet": subnets[0],
               "groups": {"web": web, "shared": shared},
               "eip": eip["PublicIp"], "allocation": eip["AllocationId"]}
    elif scenario == "two-vpcs":
        ids = []
        vpcs = []
        for i, cidr in enumerate(["10.20.0.0/16", "10.30.0.0/16"]):
            vpc, subnets, web = vpc_with_subnets(ec2, cidr, 1)
            vpcs.append(vpc)
            ids.append(instance(ec2, subnets[0], [web], 1, f"vpc{i}"))
        out = {"instances": ids, "vpcs": vpcs}
    elif scenario == "stopped":
        vpc, subnets, web = vpc_with_subnets(ec2, "10.40.0.0/16", 1)
        iid = instance(ec2, subnets[0], [web], 1, "stopped")
        ec2.stop_instances(InstanceIds=[iid])
        out = {"instance": iid, "vpc": vpc}
    elif scenario == "shared-storage":
        out = shared_storage(endpoint, ec2)
    elif scenario.startswith("fleet:"):
        n = int(scenario.split(":")[1])
        vpc, subnets, web = vpc_with_subnets(ec2, "10.50.0.0/16", 1)
        out = {"instances": [instance(ec2, subnets[0], [web], 1, f"fleet{i}") for i in range(n)], "vpc": vpc}
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    print(json.dumps(out))


def shared_storage(endpoint, ec2):
    """The shared-storage scenario (see the module doc)."""
    vpc = ec2.create_vpc(CidrBlock="10.70.0.0/16")["Vpc"]["VpcId"]
    a, b = (
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.70.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
        for i, zone in ((1, "a"), (2, "b"))
    )
    web = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    nfs = ec2.create_security_group(GroupName="nfs", Description="nfs", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=nfs,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049, "UserIdGroupPairs": [{"GroupId": web}]}],
    )
    iid = instance(ec2, a, [web], 1, "nfs-client")
    efs = client(endpoint, "efs")
    shared = efs.create_file_system(CreationToken="shared", Tags=[{"Key": "Name", "Value": "shared"}])["FileSystemId"]
    elsewhere = efs.create_file_system(CreationToken="elsewhere", Tags=[{"Key": "Name", "Value": "elsewhere"}])["FileSystemId"]
    in_a = efs.create_mount_target(FileSystemId=shared, SubnetId=a, SecurityGroups=[nfs])
    in_b = efs.create_mount_target(FileSystemId=shared, SubnetId=b)
    elsewhere_b = efs.create_mount_target(FileSystemId=elsewhere, SubnetId=b)
    fsx = client(endpoint, "fsx")

    def lustre(subnet, name):
        return fsx.create_file_system(
            FileSystemType="LUSTRE", StorageCapacity=1200, StorageType="SSD", SubnetIds=[subnet],
            SecurityGroupIds=[nfs], LustreConfiguration={"DeploymentType": "SCRATCH_2"},
            Tags=[{"Key": "Name", "Value": name}],
        )["FileSystem"]

    scratch = lustre(a, "scratch")
    other = lustre(b, "other")
    scratch_ips = [
        e["PrivateIpAddress"]
        for e in ec2.describe_network_interfaces(NetworkInterfaceIds=scratch["NetworkInterfaceIds"])["NetworkInterfaces"]
    ]
    return {
        "instance": iid, "vpc": vpc, "subnets": {"a": a, "b": b}, "groups": {"web": web, "nfs": nfs},
        "efs": {
            "shared": shared, "elsewhere": elsewhere,
            "shared_a": {"id": in_a["MountTargetId"], "ip": in_a["IpAddress"], "eni": in_a["NetworkInterfaceId"]},
            "shared_b": {"id": in_b["MountTargetId"], "ip": in_b["IpAddress"]},
            "elsewhere_b": {"id": elsewhere_b["MountTargetId"], "ip": elsewhere_b["IpAddress"]},
        },
        "fsx": {
            "scratch": {"id": scratch["FileSystemId"], "dns": scratch["DNSName"], "ips": scratch_ips},
            "other": {"id": other["FileSystemId"]},
        },
    }


def vpc_endpoints(endpoint, vpc, subnet, services):
    """Interface endpoints of `services` (ssm, ssmmessages, ...) in the VPC:
    their private addresses, and S3's prefix list id."""
    ec2 = client(endpoint)
    addresses = []
    for service in services:
        e = ec2.create_vpc_endpoint(
            VpcId=vpc, ServiceName=f"com.amazonaws.us-east-1.{service}",
            VpcEndpointType="Interface", SubnetIds=[subnet],
        )["VpcEndpoint"]
        for eni in ec2.describe_network_interfaces(NetworkInterfaceIds=e["NetworkInterfaceIds"])["NetworkInterfaces"]:
            addresses.append(eni["PrivateIpAddress"])
    s3 = ec2.describe_prefix_lists(Filters=[{"Name": "prefix-list-name", "Values": ["com.amazonaws.us-east-1.s3"]}])
    print(json.dumps({"addresses": sorted(addresses), "s3_prefix_list": s3["PrefixLists"][0]["PrefixListId"]}))


def state(endpoint):
    ec2 = client(endpoint)
    instances = {}
    for r in ec2.describe_instances()["Reservations"]:
        for i in r["Instances"]:
            iid = i["InstanceId"]
            term = ec2.describe_instance_attribute(InstanceId=iid, Attribute="disableApiTermination")
            shutdown = ec2.describe_instance_attribute(InstanceId=iid, Attribute="instanceInitiatedShutdownBehavior")
            instances[iid] = {
                "state": i["State"]["Name"],
                "vpc": i.get("VpcId"),
                "groups": sorted(g["GroupId"] for g in i.get("SecurityGroups", [])),
                "termination_protection": term["DisableApiTermination"]["Value"],
                "shutdown_behavior": shutdown["InstanceInitiatedShutdownBehavior"]["Value"],
                "volumes": [
                    {
                        "volume": m["Ebs"]["VolumeId"],
                        "device": m["DeviceName"],
                        "delete_on_termination": m["Ebs"]["DeleteOnTermination"],
                    }
                    for m in i.get("BlockDeviceMappings", [])
                    if "Ebs" in m
                ],
            }
    enis = {
        e["NetworkInterfaceId"]: {
            "instance": e.get("Attachment", {}).get("InstanceId"),
            "groups": sorted(g["GroupId"] for g in e["Groups"]),
            "tags": {t["Key"]: t["Value"] for t in e.get("TagSet", [])},
        }
        for e in ec2.describe_network_interfaces()["NetworkInterfaces"]
    }
    groups = {
        g["GroupId"]: {
            "name": g["GroupName"],
            "vpc": g.get("VpcId"),
            "ingress": len(g.get("IpPermissions", [])),
            "world_ingress": sorted(
                f"{p.get('IpProtocol')}:{p.get('FromPort')}-{p.get('ToPort')}"
                for p in g.get("IpPermissions", [])
                if any(r.get("CidrIp") == "0.0.0.0/0" for r in p.get("IpRanges", []))
            ),
            "egress": len(g.get("IpPermissionsEgress", [])),
            "egress_rules": sorted(
                [f"{p.get('IpProtocol')}:{p.get('FromPort')}:{r['CidrIp']}" for p in g.get("IpPermissionsEgress", []) for r in p.get("IpRanges", [])]
                + [f"{p.get('IpProtocol')}:{p.get('FromPort')}:{r['PrefixListId']}" for p in g.get("IpPermissionsEgress", []) for r in p.get("PrefixListIds", [])]
            ),
            "tags": {t["Key"]: t["Value"] for t in g.get("Tags", [])},
        }
        for g in ec2.describe_security_groups()["SecurityGroups"]
    }
    snapshots = {}
    for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]:
        perms = ec2.describe_snapshot_attribute(SnapshotId=s["SnapshotId"], Attribute="createVolumePermission")
        snapshots[s["SnapshotId"]] = {
            "volume": s.get("VolumeId"),
            "tags": {t["Key"]: t["Value"] for t in s.get("Tags", [])},
            "shared_with": sorted(p["UserId"] for p in perms.get("CreateVolumePermissions", []) if "UserId" in p),
        }
    addresses = {
        a["AllocationId"]: {
            "public_ip": a.get("PublicIp"),
            "instance": a.get("InstanceId"),
            "eni": a.get("NetworkInterfaceId"),
            "associated": "AssociationId" in a,
            "tags": {t["Key"]: t["Value"] for t in a.get("Tags", [])},
        }
        for a in ec2.describe_addresses()["Addresses"]
        if "AllocationId" in a
    }
    print(json.dumps({"instances": instances, "enis": enis, "groups": groups, "snapshots": snapshots, "addresses": addresses}))


def eni_groups(endpoint):
    ec2 = client(endpoint)
    vpc, subnets, web = vpc_with_subnets(ec2, "10.60.0.0/16", 2)
    iid = instance(ec2, subnets[0], [web], 1, "probe")
    secondary = ec2.create_network_interface(SubnetId=subnets[1], Groups=[web])["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=secondary, InstanceId=iid, DeviceIndex=1)
    desc = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    primary = next(n["NetworkInterfaceId"] for n in desc["NetworkInterfaces"] if n["Attachment"]["DeviceIndex"] == 0)
    a = ec2.create_security_group(GroupName="a", Description="a", VpcId=vpc)["GroupId"]
    b = ec2.create_security_group(GroupName="b", Description="b", VpcId=vpc)["GroupId"]
    ec2.modify_network_interface_attribute(NetworkInterfaceId=secondary, Groups=[a])
    ec2.modify_network_interface_attribute(NetworkInterfaceId=primary, Groups=[b])

    def groups_of(eni):
        e = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
        return sorted(g["GroupId"] for g in e["Groups"])

    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    print(json.dumps({
        "web": web, "a": a, "b": b,
        "secondary": groups_of(secondary),
        "primary": groups_of(primary),
        "instance": sorted(g["GroupId"] for g in inst["SecurityGroups"]),
    }))


def iam_user(endpoint, name, actions):
    iam = boto3.client(
        "iam", region_name=REGION, endpoint_url=endpoint,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName="irhost-test", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    print(json.dumps({"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}))


def summary(endpoint):
    """Print ENI groups and snapshots by name, for people (scripts/demo)."""
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        state(endpoint)
    s = json.loads(buf.getvalue())
    names = {gid: g["name"] for gid, g in s["groups"].items()}
    for eni, e in sorted(s["enis"].items()):
        print(f"  {eni} ({e['instance']}): groups {[names[g] for g in e['groups']]}")
    for snap, v in sorted(s["snapshots"].items()):
        tags = v["tags"]
        if "irhost:case" not in tags:
            continue  # moto's own AMI snapshots
        print(f"  {snap}: volume {v['volume']} case={tags.get('irhost:case')} sealed={tags.get('irhost:sealed')}")


if __name__ == "__main__":
    if sys.argv[1] == "summary":
        summary(sys.argv[2])
    elif sys.argv[1] == "eni-groups":
        eni_groups(sys.argv[2])
    elif sys.argv[1] == "iam-user":
        iam_user(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif sys.argv[1] == "seed":
        seed(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "vpc-endpoints":
        vpc_endpoints(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif sys.argv[1] == "state":
        state(sys.argv[2])
    else:
        raise SystemExit(__doc__)
