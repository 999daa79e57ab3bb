"""``lepton feedback``: attach a label or rating to a prediction, and export all feedback."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any, TextIO

HELP = "record and export feedback (true labels, ratings) on logged predictions"
EXPORT_FIELDS = ["id", "prediction_id", "model", "version", "label", "rating", "time", "key"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("add", help="attach a true label and/or a rating to a prediction id")
    p.add_argument("prediction_id")
    p.add_argument("--label", help="the true label (parsed as JSON when it is JSON)")
    p.add_argument("--rating", type=float, help="a numeric rating")
    p.add_argument("--key", help="idempotency key (default: the prediction id)")

    p = sub.add_parser("export", help="write every feedback record as JSON lines or CSV")
    p.add_argument("--model", help="only feedback on this model's predictions")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("--output", "-o", help="file to write (atomically); default: stdout")


def _parse_label(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def write_export(records, out: TextIO, fmt: str) -> int:
    """Write feedback records to ``out`` as ``jsonl`` or ``csv``; return how many."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
        writer.writeheader()
    for record in records:
        row = {field: record[field] for field in EXPORT_FIELDS}
        if fmt == "csv":
            if not isinstance(row["label"], (str, int, float, type(None))):
                row["label"] = json.dumps(row["label"])
            writer.writerow(row)
        else:
            out.write(json.dumps(row) + "\n")
        count += 1
    return count


def run(args: argparse.Namespace) -> int:
    from lepton.store import Store, validate_name

    store = Store.open()
    if args.action == "add":
        from lepton.errors import NotFoundError
        from lepton.store._monitor import add_feedback_counted

        record = add_feedback_counted(store, args.prediction_id, label=_parse_label(args.label),
                                      rating=args.rating, key=args.key)
        if record is None:  # counted for lepton monitor's report, and still an error here
            raise NotFoundError("No prediction with this id (counted as unknown-id feedback)",
                                received=repr(args.prediction_id)[:140],
                                fix="use an id a prediction returned (lepton feedback export "
                                    "lists those with feedback)")
        state = "recorded" if record["created"] else "already recorded"
        print(f"feedback {record['id']} on {record['prediction_id']}: {state}")
        return 0
    model = validate_name(args.model) if args.model else None
    records = store.iter_feedback(model)
    if not args.output:
        count = write_export(records, sys.stdout, args.format)
    else:
        from lepton.atomic import atomic_open

        with atomic_open(args.output, newline="") as out:
            count = write_export(records, out, args.format)
        print(f"wrote {count} feedback records to {args.output}", file=sys.stderr)
    return 0
