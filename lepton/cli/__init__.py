"""The ``lepton`` command line: a thin layer over the Python API.

Each sub-command lives in its own module exposing ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``. Modules import their heavy dependencies inside ``run`` so that
``lepton --help`` stays fast (and works without the optional extras). User mistakes, and a
missing optional dependency (``pip install 'lepton[serve]'``...), end as one line on stderr
(exit 2) unless ``--debug`` asks for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> module; one line per command, in the order `lepton --help` lists them.
COMMANDS: dict[str, str] = {
    "demo": "lepton.cli.demo",
    "train": "lepton.cli.train",
    "tune": "lepton.cli.tune",
    "evaluate": "lepton.cli.evaluate",
    "predict": "lepton.cli.predict",
    "compress": "lepton.cli.compress",
    "models": "lepton.cli.models",
    "feedback": "lepton.cli.feedback",
    "serve": "lepton.cli.serve",
    "bench": "lepton.cli.bench",
    "monitor": "lepton.cli.monitor",
    "retrain": "lepton.cli.retrain",
    "traffic": "lepton.cli.traffic",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lepton",
        description="Lepton: data -> train/tune -> evaluate -> compress -> serve -> monitor "
                    "-> retrain.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks on errors")
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    from lepton.errors import LeptonError, missing_dependency

    try:
        return int(args._run(args) or 0)
    except (LeptonError, ImportError) as exc:
        error = missing_dependency(exc) if isinstance(exc, ImportError) else exc
        if args.debug or error is None:
            raise
        print(f"lepton {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lepton {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
