"""Peer benchmark: libcloudforensics' AWS quarantine + disk copy per instance.

Runs, for every instance, what an examiner would do with libcloudforensics
(`cloudforensics aws ZONE copydisk` / `quarantinevm`) against an EC2 endpoint
(a local moto server): the library's own code, unchanged, pointed at the
endpoint with AWS_ENDPOINT_URL only.

Per instance (modes `seq` and `pool`):
  1. find its volumes      AWSAccount(zone).ec2.GetInstanceById(id).ListVolumes()
  2. copydisk per volume   forensics.CreateVolumeCopy(zone, volume_id=vol)
                           (snapshot, wait, create volume from it, wait, delete snapshot)
  3. quarantinevm          forensics.InstanceNetworkQuarantine(zone, id)
                           (new empty SG, revoke its egress rule, replace the instance's SGs)

Modes:
  seq   one instance after the other, in one process (the library as a loop)
  pool  a thread pool (--workers, default 16), one job per instance
  cli   the real `cloudforensics` CLI, one process per command, sequentially:
        `quarantinevm ID` then `copydisk --volume_id VOL` per volume (volume ids
        and zones looked up once beforehand, untimed: a lower bound for the CLI)

It starts no server. Give it --endpoint and either instance ids or --seed N
(which runs tests/moto/ec2_fixture.py seed ENDPOINT fleet:N).

  python lcf_bench.py --endpoint http://127.0.0.1:PORT --seed 50 --mode seq
  python lcf_bench.py --endpoint ... --mode pool --workers 16 i-1 i-2 ...

Prints one JSON object: wall time, per-instance times, failures (step, id,
exception), API calls by operation (counted by wrapping botocore's
BaseClient._make_api_call in this process; instrumentation only), boto3
client creations, and a check of the resulting EC2 state.
"""

import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "..", "tests", "moto", "ec2_fixture.py")
REGION = "us-east-1"


def set_env(endpoint):
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    os.environ["AWS_DEFAULT_REGION"] = REGION
    os.environ.pop("AWS_PROFILE", None)
    # No ~/.aws config of this machine may leak in.
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


class Counter:
    """Counts API calls and client creations (wraps botocore, not the library)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = collections.Counter()
        self.call_seconds = 0.0
        self.clients = 0
        self.client_seconds = 0.0
        self.errors = collections.Counter()

    def install(self):
        import botocore.client
        import botocore.session

        make_api_call = botocore.client.BaseClient._make_api_call
        create_client = botocore.session.Session.create_client
        counter = self

        def counted_call(client, operation_name, api_params):
            service = client.meta.service_model.service_name
            t = time.perf_counter()
            try:
                return make_api_call(client, operation_name, api_params)
            except Exception as e:
                with counter.lock:
                    counter.errors[f"{service}:{operation_name}: {type(e).__name__}: {e}"[:300]] += 1
                raise
            finally:
                with counter.lock:
                    counter.calls[f"{service}:{operation_name}"] += 1
                    counter.call_seconds += time.perf_counter() - t

        def counted_create_client(session, *args, **kwargs):
            t = time.perf_counter()
            try:
                return create_client(session, *args, **kwargs)
            finally:
                with counter.lock:
                    counter.clients += 1
                    counter.client_seconds += time.perf_counter() - t

        botocore.client.BaseClient._make_api_call = counted_call
        botocore.session.Session.create_client = counted_create_client

    def snapshot(self):
        with self.lock:
            return dict(self.calls), self.clients

    def reset(self):
        with self.lock:
            self.calls.clear()
            self.errors.clear()
            self.call_seconds = 0.0
            self.clients = 0
            self.client_seconds = 0.0


def plain_client():
    import boto3

    return boto3.client("ec2", region_name=REGION)


def inventory(ids):
    """Zone and volumes of each instance (what the CLI user has to pass in)."""
    ec2 = plain_client()
    out = {}
    for page in ec2.get_paginator("describe_instances").paginate(InstanceIds=ids):
        for r in page["Reservations"]:
            for i in r["Instances"]:
                out[i["InstanceId"]] = {
                    "zone": i["Placement"]["AvailabilityZone"],
                    "vpc": i.get("VpcId"),
                    "groups": [g["GroupId"] for g in i.get("SecurityGroups", [])],
                    "volumes": [m["Ebs"]["VolumeId"] for m in i.get("BlockDeviceMappings", []) if "Ebs" in m],
                }
    return out


def respond_library(iid, zone, counter):
    """One instance, the library way. Returns (record, failures)."""
    from libcloudforensics.providers.aws import forensics
    from libcloudforensics.providers.aws.internal import account

    rec = {"instance": iid, "volumes": [], "copies": [], "steps": {}}
    failures = []
    t0 = time.perf_counter()

    def step(name, fn):
        t = time.perf_counter()
        try:
            return fn()
        except Exception as e:  # record exactly what failed and why
            failures.append({
                "instance": iid, "step": name, "error": f"{type(e).__name__}: {e}",
                "trace": traceback.format_exc(limit=-3),
            })
            return None
        finally:
            rec["steps"][name] = rec["steps"].get(name, 0.0) + time.perf_counter() - t

    vols = step("find-volumes", lambda: list(account.AWSAccount(zone).ec2.GetInstanceById(iid).ListVolumes()))
    rec["volumes"] = vols or []
    for vol in rec["volumes"]:
        copy = step("copydisk", lambda vol=vol: forensics.CreateVolumeCopy(zone, volume_id=vol))
        if copy is not None:
            rec["copies"].append(copy.volume_id)
    step("quarantinevm", lambda: forensics.InstanceNetworkQuarantine(zone, iid))
    rec["seconds"] = time.perf_counter() - t0
    return rec, failures


def respond_cli(iid, zone, volumes, cli):
    rec = {"instance": iid, "volumes": volumes, "steps": {}, "commands": 0}
    failures = []
    t0 = time.perf_counter()
    cmds = [("quarantinevm", [cli, "aws", zone, "quarantinevm", iid])]
    cmds += [("copydisk", [cli, "aws", zone, "copydisk", "--volume_id", v]) for v in volumes]
    for name, argv in cmds:
        t = time.perf_counter()
        p = subprocess.run(argv, capture_output=True, text=True)
        rec["steps"][name] = rec["steps"].get(name, 0.0) + time.perf_counter() - t
        rec["commands"] += 1
        # The CLI logs errors and may still exit 0: look at the output too.
        out = p.stdout + p.stderr
        if p.returncode != 0 or "Traceback" in out or "ERROR" in out:
            failures.append({"instance": iid, "step": name, "error": f"exit {p.returncode}: {out[-800:]}"})
    rec["seconds"] = time.perf_counter() - t0
    return rec, failures


def check_state(ids, before):
    """What the run left in EC2: each instance in exactly one new SG with no
    rules, one new volume per source volume, no snapshots left behind."""
    ec2 = plain_client()
    after = inventory(ids)
    groups = {g["GroupId"]: g for g in ec2.describe_security_groups()["SecurityGroups"]}
    quarantined = 0
    problems = []
    for iid in ids:
        gs = after[iid]["groups"]
        g = groups.get(gs[0]) if len(gs) == 1 else None
        if g and g["GroupName"].startswith("quarantine-") and not g.get("IpPermissions") and not g.get("IpPermissionsEgress"):
            quarantined += 1
        else:
            problems.append({"instance": iid, "groups": gs,
                             "egress": [g.get("IpPermissionsEgress") if g else None]})
    vols = ec2.describe_volumes()["Volumes"]
    evidence = [v for v in vols if any(t["Key"] == "Name" and t["Value"].startswith("evidence") for t in v.get("Tags", []))]
    snaps = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    leftover = [s for s in snaps if any(t["Key"] == "Name" and t["Value"].endswith("-snapshot") for t in s.get("Tags", []))]
    return {
        "instances_quarantined": quarantined,
        "source_volumes": sum(len(before[i]["volumes"]) for i in ids),
        "evidence_volumes": len(evidence),
        "evidence_volumes_from_snapshot": sum(1 for v in evidence if v.get("SnapshotId")),
        "lcf_snapshots_left": len(leftover),
        "not_quarantined": problems[:5],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--seed", type=int, help="seed fleet:N with ec2_fixture.py first")
    ap.add_argument("--mode", choices=["seq", "pool", "cli"], default="seq")
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--no-count", action="store_true", help="do not wrap botocore (timing only)")
    ap.add_argument("--cli", default=shutil.which("cloudforensics") or os.path.join(os.path.dirname(sys.executable), "cloudforensics"))
    ap.add_argument("instances", nargs="*")
    args = ap.parse_args()
    set_env(args.endpoint)

    ids = list(args.instances)
    if args.seed:
        out = subprocess.run([sys.executable, FIXTURE, "seed", args.endpoint, f"fleet:{args.seed}"],
                             check=True, capture_output=True, text=True).stdout
        ids += json.loads(out)["instances"]
    if not ids:
        raise SystemExit("no instances: give ids or --seed N")

    import logging

    counter = Counter()
    if not args.no_count and args.mode != "cli":
        counter.install()
    # Import the library before the clock starts (the CLI mode pays it per command).
    from libcloudforensics.providers.aws import forensics  # noqa: F401
    logging.getLogger("libcloudforensics").setLevel(logging.WARNING)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("libcloudforensics"):
            logging.getLogger(name).setLevel(logging.WARNING)

    before = inventory(ids)  # untimed: zones (the CLI's required ZONE) and, for cli, volume ids
    counter.reset()

    records, failures = [], []
    start = time.perf_counter()
    if args.mode == "seq":
        for iid in ids:
            r, f = respond_library(iid, before[iid]["zone"], counter)
            records.append(r)
            failures += f
    elif args.mode == "pool":
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            for r, f in pool.map(lambda i: respond_library(i, before[i]["zone"], counter), ids):
                records.append(r)
                failures += f
    else:
        for iid in ids:
            r, f = respond_cli(iid, before[iid]["zone"], before[iid]["volumes"], args.cli)
            records.append(r)
            failures += f
    wall = time.perf_counter() - start

    calls, clients = counter.snapshot()
    secs = [r["seconds"] for r in records]
    step_totals = collections.defaultdict(float)
    for r in records:
        for k, v in r["steps"].items():
            step_totals[k] += v
    result = {
        "mode": args.mode,
        "workers": args.workers if args.mode == "pool" else 1,
        "instances": len(ids),
        "wall_seconds": round(wall, 3),
        "per_instance_seconds": {
            "mean": round(statistics.mean(secs), 3),
            "median": round(statistics.median(secs), 3),
            "max": round(max(secs), 3),
        },
        "step_seconds_total": {k: round(v, 3) for k, v in step_totals.items()},
        "failures": len(failures),
        "failure_samples": failures[:5],
        "failures_by_step": dict(collections.Counter(f["step"] for f in failures)),
    }
    if args.mode != "cli" and not args.no_count:
        total = sum(calls.values())
        result["api_calls"] = {
            "total": total,
            "per_instance": round(total / len(ids), 2),
            "by_operation": dict(sorted(calls.items(), key=lambda kv: -kv[1])),
            "seconds_in_calls_summed": round(counter.call_seconds, 3),
            "error_samples": dict(list(counter.errors.items())[:5]),
        }
        result["boto3_clients_created"] = clients
        result["seconds_creating_clients_summed"] = round(counter.client_seconds, 3)
    if args.mode == "cli":
        result["cli_processes"] = sum(r["commands"] for r in records)
    result["state_after"] = check_state(ids, before)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
