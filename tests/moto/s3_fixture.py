"""Set up and read S3 state in a moto server, for irhost's evidence-vault tests.

  s3_fixture.py create-bucket ENDPOINT BUCKET         -> a bucket with Object Lock
                                                         (ObjectLockEnabledForBucket)
  s3_fixture.py objects ENDPOINT BUCKET PREFIX        -> every object version under
                                                         PREFIX, with its checksum,
                                                         retention and the sha256 of
                                                         its bytes, as JSON
  s3_fixture.py delete-version ENDPOINT BUCKET KEY VERSION
                                                      -> tries to delete that version
                                                         and prints what S3 answered

Everything is printed as one JSON document on stdout.
"""

import hashlib
import json
import sys

import boto3
from botocore.exceptions import ClientError

REGION = "us-east-1"


def client(endpoint):
    return boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def create_bucket(s3, bucket):
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    return {"bucket": bucket, "object_lock": lock.get("ObjectLockEnabled"), "versioning": versioning}


def objects(s3, bucket, prefix):
    out = {}
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for v in page.get("Versions", []):
            key, version = v["Key"], v["VersionId"]
            head = s3.head_object(Bucket=bucket, Key=key, VersionId=version, ChecksumMode="ENABLED")
            # moto 5.2.5 has no GetObjectRetention (it answers 500); HeadObject
            # of the version carries the same retention (mode and date).
            body = s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
            retain = head.get("ObjectLockRetainUntilDate")
            out.setdefault(key, []).append(
                {
                    "version_id": version,
                    "size": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "checksum_sha256": head.get("ChecksumSHA256"),
                    "lock_mode": head.get("ObjectLockMode"),
                    # None for an object stored without retention (a memory
                    # image's multipart upload into a bucket with no default).
                    "retain_until": retain.isoformat() if retain else None,
                    "retain_until_epoch": int(retain.timestamp()) if retain else None,
                    "metadata": head.get("Metadata", {}),
                }
            )
    return out


def delete_version(s3, bucket, key, version):
    try:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    except ClientError as e:
        return {"deleted": False, "error": e.response["Error"]["Code"],
                "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}
    still_there = True
    try:
        s3.head_object(Bucket=bucket, Key=key, VersionId=version)
    except ClientError:
        still_there = False
    return {"deleted": not still_there, "error": None}


def main():
    command, endpoint, *args = sys.argv[1:]
    s3 = client(endpoint)
    if command == "create-bucket":
        result = create_bucket(s3, *args)
    elif command == "objects":
        result = objects(s3, *args)
    elif command == "delete-version":
        result = delete_version(s3, *args)
    else:
        sys.exit(f"unknown command {command}")
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
