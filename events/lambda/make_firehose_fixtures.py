#!/usr/bin/env python3
"""Writes the Firehose transform fixtures in this folder from the sample events in events/.

Run from anywhere: python3 events/lambda/make_firehose_fixtures.py
The record ids say what each record is; tests look records up by id.
"""
import base64
import json
import pathlib

EVENTS = pathlib.Path(__file__).resolve().parent.parent
OUT = pathlib.Path(__file__).resolve().parent


def sample(path):
    return (EVENTS / path).read_bytes()


def compact(path):
    return json.dumps(json.loads(sample(path)), separators=(",", ":")).encode()


def envelope(bucket, key, version, line, offset, index, kind, text):
    header = json.dumps(
        {"bucket": bucket, "key": key, "version": version, "line": line,
         "offset": offset, "index": index, "kind": kind},
        separators=(",", ":"),
    )
    return b"\x1elakewatch/1 " + header.encode() + b"\n" + text


RECORDS = [
    # One pretty-printed JSON object (a raw G Suite login activity).
    ("ok-json-object", sample("defenda/sample_gsuite_login_event.json")),
    # CloudTrail's {"Records": [...]} file: each record is an event.
    ("ok-cloudtrail-records", sample("cloudtrail/console-logins.json")),
    # NDJSON: three objects, one per line.
    ("ok-ndjson", b"\n".join([
        compact("defenda/sample_vpc_flow_log.json"),
        compact("defenda/sample_cloudfront_wordpress_probe.json"),
        compact("defenda/sample_syslog_sudo.json"),
    ]) + b"\n"),
    # A JSON array of objects; the first keeps its own eventid.
    ("ok-json-array", json.dumps([
        {"eventid": "producer-id-1", "summary": "deploy finished", "source": "ci",
         "timestamp": "2026-04-17T07:45:00Z", "Service": "api"},
        {"summary": "deploy started", "source": "ci", "timestamp": "2026-04-17T07:40:00Z",
         "Service": "api"},
    ]).encode()),
    # Raw syslog lines: RFC 5424 (full timestamp) and RFC 3164 (no year).
    ("ok-syslog-lines",
     sample("syslog/rfc5424.log").splitlines()[0] + b"\n"
     + sample("syslog/auth.log").splitlines()[0] + b"\n"),
    # One record from the S3-ingest Lambda, in its envelope.
    ("ok-enveloped", envelope("lakewatch-input", "hosts/bastion/auth.log", "v-3", 4, 312, 3,
                              "line", sample("syslog/auth.log").splitlines()[3])),
    # Nothing at all.
    ("dropped-empty", b""),
    # Latin-1, not UTF-8.
    ("failed-invalid-utf8", "caf\u00e9 login from 198.51.100.9".encode("latin-1")),
    # A JSON object cut off in the middle.
    ("failed-truncated-json", b'{"eventName":"ConsoleLogin","sourceIPAddress":"198.'),
    # Well-formed JSON whose items are not objects: the pipeline fails them.
    ("failed-not-objects", b"[1, 2, 3]"),
    # One good event and one truncated: the whole record fails (nothing half-delivered).
    ("failed-one-bad-event", compact("defenda/sample_vpc_flow_log.json") + b'\n{"action": "REJ\n'),
]


def batch(records):
    return {
        "invocationId": "2b4d1ad9-2f48-94bd-a088-767c317e994a",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/lakewatch-events",
        "region": "us-east-1",
        "records": [
            {
                "recordId": record_id,
                "approximateArrivalTimestamp": 1776409854000 + i,
                "data": base64.b64encode(data).decode(),
            }
            for i, (record_id, data) in enumerate(records)
        ],
    }


(OUT / "firehose-batch.json").write_text(json.dumps(batch(RECORDS), indent=2) + "\n")
