"""``lepton retrain MODEL --data ORIGINAL``: champion/challenger retraining on feedback."""

from __future__ import annotations

import argparse
import json

HELP = "train a challenger on original data plus labelled traffic; promote it only if better"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="NAME or NAME@ALIAS (the champion)")
    parser.add_argument("--data", required=True, help="the original training data")
    parser.add_argument("--feedback-since", help="only feedback after this (24h, ISO time)")
    parser.add_argument("--min-gain", type=float, default=0.5,
                        help="points the interval's lower bound must clear (default 0.5)")
    parser.add_argument("--max-drop", type=float, default=0.5,
                        help="points the original test may lose at most (default 0.5)")
    parser.add_argument("--resamples", type=int, default=2000,
                        help="paired bootstrap resamples (default 2000, at least 1000)")
    parser.add_argument("--trigger", default="manual",
                        choices=["manual", "drift", "feedback", "schedule"])
    parser.add_argument("--epochs", type=int, help="override the champion's epochs")
    parser.add_argument("--dry-run", action="store_true", help="decide, but do not promote")
    parser.add_argument("--allow-data-change", action="store_true",
                        help="accept original data that differs from the recorded digest")
    parser.add_argument("--cooldown", default="1h", help="least time between promotions")
    parser.add_argument("--max-per-day", type=int, default=3)
    parser.add_argument("--min-labels", type=int, default=200,
                        help="--trigger feedback: labels needed since --feedback-since")
    parser.add_argument("--max-accuracy-drop", type=float, default=2.0,
                        help="--trigger feedback: points below validation accuracy that "
                             "also trigger")
    parser.add_argument("--every", default="7d", help="--trigger schedule: the period")
    parser.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from lepton.retrain.run import retrain

    decision = retrain(args.model, data=args.data, feedback_since=args.feedback_since,
                       min_gain=args.min_gain, max_drop=args.max_drop,
                       resamples=args.resamples, trigger=args.trigger, epochs=args.epochs,
                       dry_run=args.dry_run, allow_data_change=args.allow_data_change,
                       cooldown=args.cooldown, max_per_day=args.max_per_day,
                       min_labels=args.min_labels, max_accuracy_drop=args.max_accuracy_drop,
                       every=args.every)
    if args.json:
        print(json.dumps(decision, indent=2, default=float))
    else:
        verdict = "promoted" if decision["promoted"] else "not promoted"
        print(f"{decision['model']}: challenger {decision.get('challenger_version')} "
              f"{verdict}: {decision['reason']}")
    return 0
