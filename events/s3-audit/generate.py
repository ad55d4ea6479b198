#!/usr/bin/env python3
"""Writes audit.json.gz: S3-API audit entries as an S3-compatible store (MinIO-style
`auditEntry`) logs them, one JSON object per line, gzip-compressed.

Deterministic (fixed entries, gzip mtime 0), so re-running it gives the same bytes:
    python3 events/s3-audit/generate.py
"""
import gzip
import json
import pathlib

DEPLOYMENT = "7f3c2a10-0000-4e5b-9c1d-00000000beef"


def entry(time, name, status_code, status, ttr, remote, request_id, bucket=None, obj=None,
          access_key="backup-writer", agent="MinIO (linux; amd64) minio-go/v7.0.70 mc/RELEASE.2026-03-01T00-00-00Z",
          rx=0, tx=0):
    api = {"name": name}
    if bucket is not None:
        api["bucket"] = bucket
    if obj is not None:
        api["object"] = obj
    api.update({"status": status, "statusCode": status_code, "rx": rx, "tx": tx,
                "timeToResponse": ttr})
    return {
        "version": "1",
        "deploymentid": DEPLOYMENT,
        "time": time,
        "trigger": "incoming",
        "api": api,
        "remotehost": remote,
        "requestID": request_id,
        "userAgent": agent,
        "requestHost": "s3.example.com",
        "requestHeader": {"Authorization": "AWS4-HMAC-SHA256 Credential=EXAMPLE/20260417/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=REDACTED",
                          "User-Agent": agent},
        "responseHeader": {"Content-Length": str(tx), "X-Amz-Request-Id": request_id},
        "tags": {},
        "accessKey": access_key,
    }


ENTRIES = [
    entry("2026-04-17T10:00:01.104512345Z", "PutObject", 200, "OK", "183422ns", "198.51.100.23", "18A6C0B2D4E60001",
          "backups", "db/2026-04-17.sql.gz", rx=1048576),
    entry("2026-04-17T10:00:02.220000000Z", "HeadObject", 200, "OK", "412µs", "198.51.100.23", "18A6C0B2D4E60002",
          "backups", "db/2026-04-17.sql.gz"),
    entry("2026-04-17T10:05:13.000000000Z", "ListObjectsV2", 200, "OK", "12ms", "192.0.2.10", "18A6C0B2D4E60003",
          "backups", access_key="reporting", tx=4096),
    entry("2026-04-17T10:06:40.500000000Z", "GetObject", 200, "OK", "2812345ns", "192.0.2.10", "18A6C0B2D4E60004",
          "backups", "db/2026-04-16.sql.gz", access_key="reporting", tx=987654),
    entry("2026-04-17T10:07:00.000000000Z", "ListBuckets", 200, "OK", "95us", "192.0.2.10", "18A6C0B2D4E60005",
          access_key="reporting", tx=512),
    entry("2026-04-17T10:12:31.010000000Z", "GetObject", 403, "Access Denied.", "701234ns", "203.0.113.45",
          "18A6C0B2D4E60006", "finance", "payroll/2026-03.csv", access_key="guest",
          agent="aws-sdk-go-v2/1.30.0 os/linux lang/go#1.22.5 api/s3#1.58.0"),
    entry("2026-04-17T10:12:33.420000000Z", "ListObjectsV2", 403, "Access Denied.", "611002ns", "203.0.113.45",
          "18A6C0B2D4E60007", "finance", access_key="guest",
          agent="aws-sdk-go-v2/1.30.0 os/linux lang/go#1.22.5 api/s3#1.58.0"),
    entry("2026-04-17T10:15:00.000000000Z", "DeleteMultipleObjects", 200, "OK", "1.2s", "2001:db8:5::17",
          "18A6C0B2D4E60008", "backups", access_key="retention-job"),
    entry("2026-04-17T10:15:01.300000000Z", "DeleteObject", 204, "No Content", "3ms", "2001:db8:5::17",
          "18A6C0B2D4E60009", "backups", "db/2026-03-17.sql.gz", access_key="retention-job"),
    entry("2026-04-17T10:20:45.000000000Z", "GetObject", 404, "Not Found", "388120ns", "198.51.100.99",
          "18A6C0B2D4E6000A", "public-assets", "img/logo.png", access_key="",
          agent="curl/8.5.0"),
    entry("2026-04-17T10:30:00.000000000Z", "PutObject", 503, "Service Unavailable", "30.000412s", "198.51.100.23",
          "18A6C0B2D4E6000B", "backups", "db/2026-04-17-wal.tar", rx=0),
]


def main():
    here = pathlib.Path(__file__).resolve().parent
    data = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in ENTRIES).encode()
    with open(here / "audit.json.gz", "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
            out.write(data)


if __name__ == "__main__":
    main()
