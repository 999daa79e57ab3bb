"""Start N training processes through PyTorch's own launcher (``torch.distributed.run``, the
elastic agent behind ``torchrun``): ``lepton train --nproc N`` runs ``-m lepton train`` in
each, with the torchrun environment that ``DistributedStrategy`` reads.

No restarts (``--max-restarts 0``): a rank that fails stops the others, and the launcher
reports which rank failed and how, in one line. On one machine the rendezvous runs on
127.0.0.1 on a free port (``--standalone``); for several machines ``nnodes``, ``node_rank``
and ``master_addr``/``master_port`` are passed through (torchrun's static rendezvous).

Usable as ``python -m lepton.train.launch --nproc 2 script.py args...`` too.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from lepton.errors import ConfigError, TrainingError

LAUNCH_KEYS = ("nproc", "nnodes", "node_rank", "master_addr", "master_port")


def check_counts(nproc: Any, nnodes: Any = 1, node_rank: Any = 0) -> None:
    for name, value, low in (("--nproc", nproc, 1), ("--nnodes", nnodes, 1),
                             ("--node-rank", node_rank, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}", received=repr(value),
                              fix=f"e.g. {name} {max(low, 2) if name == '--nproc' else low}")
    if node_rank >= nnodes:
        raise ConfigError("--node-rank must be below --nnodes",
                          received=f"--node-rank {node_rank} with --nnodes {nnodes}")


def torchrun_args(nproc: int, target: list[str], *, nnodes: int = 1, node_rank: int = 0,
                  master_addr: str | None = None, master_port: int | None = None) -> list[str]:
    """torch.distributed.run's command line for ``target`` (``-m module ...`` or a script)."""
    check_counts(nproc, nnodes, node_rank)
    argv = ["--nproc-per-node", str(nproc), "--nnodes", str(nnodes), "--max-restarts", "0",
            "--monitor-interval", "0.2"]
    if nnodes == 1 and master_addr is None:
        argv.append("--standalone")
    else:
        argv += ["--node-rank", str(node_rank), "--master-addr", master_addr or "127.0.0.1",
                 "--master-port", str(master_port or 29500)]
    return [*argv, *target]


def launch(nproc: int, target: list[str], **where: Any) -> None:
    """Run ``target`` in ``nproc`` processes on this machine; raises ``TrainingError`` naming
    the first rank that failed."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from lepton.core.device import available_cpus

    args = torchrun.parse_args(torchrun_args(nproc, target, **where))
    # torchrun would set OMP_NUM_THREADS=1 (one thread per process); give each its share
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, available_cpus() // nproc)))
    try:
        torchrun.run(args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        how = (f"killed by signal {failure.signal_name()}" if failure.exitcode < 0
               else f"exit code {failure.exitcode}")
        detail = failure.message if isinstance(failure.message, str) else ""
        detail = "" if "pytorch.org/docs" in detail else detail
        raise TrainingError(
            f"Distributed training failed: rank {rank} of {nproc * where.get('nnodes', 1)} "
            f"ended with {how}; the other ranks were stopped",
            received=detail.splitlines()[0] if detail else None,
            fix="see that rank's error above") from None


def strip_launch_args(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> list[str]:
    """The command line of a parsed ``lepton train`` without the launcher's own options, for
    the processes to re-run (every option's dest is its flag with '-' for '_')."""
    argv: list[str] = []
    for key, value in vars(args).items():
        if (key in LAUNCH_KEYS or key in skip or key.startswith("_") or callable(value)
                or value is None or value is False):
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton.train.launch")
    parser.add_argument("--nproc", type=int, required=True)
    parser.add_argument("target", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        launch(args.nproc, args.target)
    except (ConfigError, TrainingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
