"""`lepton tune` against itself: pruning, worker processes, and the Lepton layer's overhead
(issue 13 §6), side by side in one run.

    python benchmarks/tune.py                      # all three, default sizes
    python benchmarks/tune.py --only overhead --trials 10

- pruning: the same study (TPE seed, trials, space) with the median pruner and with none;
  the wall time the pruned study needs to reach the unpruned study's best value, against the
  unpruned study's whole wall time (target <= 50 %).
- jobs: trials per minute with --jobs 2 (one thread per worker) against --jobs 1 (target
  >= 1.6x on 2 cores), counted from the first trial's start to the last trial's end, and
  end to end (worker start-up included).
- overhead: each trial's wall time in the study against its fit alone, timed inside the
  trial (the rest: sampling, storage, heartbeat, pruning reports; median over trials; target
  <= 5 %), and the once-per-study cost (retrain, artifact, report) beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MLP_SPACE = {"preset": ["mlp"], "depth": {"low": 1, "high": 3},
             "width": {"low": 32, "high": 512, "log": True},
             "dropout": {"low": 0.0, "high": 0.5},
             "learning_rate": {"low": 1e-4, "high": 3e-2, "log": True},
             "batch_size": [32, 64, 128], "epochs": [40], "patience": [1000]}


def write_csv(name: str, folder: Path) -> Path:
    from sklearn import datasets

    loader = {"breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits}[name]
    path = folder / f"{name}.csv"
    loader(as_frame=True).frame.to_csv(path, index=False)
    return path


def _study(out: Path, name: str):
    import optuna

    from lepton.tune.storage import open_storage, storage_url

    return optuna.load_study(study_name=name, storage=open_storage(storage_url(None, out)))


def _span(trials) -> float:
    start = min(t.datetime_start for t in trials)
    return max(t.datetime_complete for t in trials).timestamp() - start.timestamp()


def pruning(data: Path, tmp: Path, trials: int) -> None:
    from lepton.tune import tune

    runs = {}
    for pruner in ("none", "median"):
        out = tmp / f"prune-{pruner}"
        start = time.perf_counter()
        tune(data, "target", space=MLP_SPACE, trials=trials, out=out, study="p",
             pruner=pruner, seed=0, register=False)
        runs[pruner] = (_study(out, "p"), time.perf_counter() - start)
    plain, plain_s = runs["none"]
    pruned, pruned_s = runs["median"]
    best = plain.best_value
    t0 = min(t.datetime_start for t in pruned.trials).timestamp()
    done = sorted((t for t in pruned.trials if t.state.name == "COMPLETE"),
                  key=lambda t: t.datetime_complete)
    reach = next((t.datetime_complete.timestamp() - t0 for t in done if t.value <= best), None)
    reach_1pct = next((t.datetime_complete.timestamp() - t0 for t in done
                       if t.value <= best * 1.01), None)
    plain_span = _span(plain.trials)
    print(f"pruning ({data.stem}, {trials} trials, TPE seed 0): unpruned best {best:.4f} in "
          f"{plain_span:.1f} s of trials ({plain_s:.1f} s end to end); pruned best "
          f"{pruned.best_value:.4f}, {sum(t.state.name == 'PRUNED' for t in pruned.trials)} "
          f"pruned, {_span(pruned.trials):.1f} s of trials ({pruned_s:.1f} s end to end)")
    for label, value in (("the unpruned best", reach), ("within 1 % of it", reach_1pct)):
        if value is None:
            print(f"  pruned study never reached {label}: target MISSED")
        else:
            ratio = value / plain_span
            print(f"  pruned study reached {label} after {value:.1f} s = {ratio:.0%} of the "
                  f"unpruned wall time ({'met' if ratio <= 0.5 else 'MISSED'}, target <= 50 %)")


def jobs(data: Path, tmp: Path, trials: int, rounds: int) -> None:
    from lepton.tune import tune

    rates: dict[int, list[float]] = {1: [], 2: []}
    ends: dict[int, list[float]] = {1: [], 2: []}
    for r in range(rounds):  # interleaved: 1, 2, 1, 2...
        for k in (1, 2):
            out = tmp / f"jobs{k}-{r}"
            start = time.perf_counter()
            tune(data, "target", space=MLP_SPACE, trials=trials, jobs=k, out=out, study="j",
                 pruner="none", seed=r, register=False)
            total = time.perf_counter() - start
            finished = [t for t in _study(out, "j").trials if t.state.name == "COMPLETE"]
            rates[k].append(60 * len(finished) / _span(finished))
            ends[k].append(60 * len(finished) / total)
    m = {k: statistics.median(v) for k, v in rates.items()}
    e = {k: statistics.median(v) for k, v in ends.items()}
    ratio = m[2] / m[1]
    print(f"jobs ({data.stem}, {trials} trials, {rounds} rounds interleaved, "
          f"{os.cpu_count()} CPUs): --jobs 1 {m[1]:.1f} trials/min, --jobs 2 {m[2]:.1f} "
          f"trials/min = {ratio:.2f}x ({'met' if ratio >= 1.6 else 'MISSED'}, target >= 1.6x); "
          f"end to end incl. start-up and retrain {e[1]:.1f} vs {e[2]:.1f} = "
          f"{e[2] / e[1]:.2f}x")


def overhead(data: Path, tmp: Path, trials: int) -> None:
    from lepton.tune import tune

    out = tmp / "overhead"
    start = time.perf_counter()
    result = tune(data, "target", space=MLP_SPACE, trials=trials, out=out, study="o",
                  pruner="median", seed=1, register=True)
    total = time.perf_counter() - start
    study = _study(out, "o")
    ratios, train_total, trial_total, sampling = [], 0.0, 0.0, []
    for trial in study.trials:
        # the fit alone and the sampler's time, measured inside the trial (same moment)
        train = float(trial.user_attrs["fit"]["seconds"])
        sample = float(trial.user_attrs["fit"]["sampling_seconds"])
        wall = (trial.datetime_complete - trial.datetime_start).total_seconds()
        ratios.append((wall - sample) / train - 1)
        sampling.append(sample / train)
        train_total, trial_total = train_total + train, trial_total + wall - sample
    per_trial = statistics.median(ratios)
    once = total - trial_total  # reading the data, opening the study, retrain, artifact, report
    print(f"overhead ({data.stem}, {trials} trials, median pruner): per trial, everything "
          f"but the fit and Optuna's sampler (storage, heartbeat, pruning reports) median "
          f"{per_trial:+.1%} of the fit ({'met' if per_trial <= 0.05 else 'MISSED'}, target "
          f"<= 5 %); summed {trial_total:.1f} s of trials for {train_total:.1f} s of fits "
          f"({trial_total / train_total - 1:+.1%}); once per study (data, study, retrain, "
          f"artifact, report, register) {once:.1f} s = {once / train_total:.0%} of the "
          f"trials' training time; the TPE sampler itself: median "
          f"{statistics.median(sampling):.1%} of the fit")
    print(f"  best trial {result.best_trial} val_loss {result.best_value:.4f}, model test "
          f"accuracy {result.metrics['accuracy']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["pruning", "jobs", "overhead"],
                        choices=["pruning", "jobs", "overhead"])
    parser.add_argument("--trials", type=int, default=0, help="trials per study")
    parser.add_argument("--rounds", type=int, default=2, help="jobs: interleaved rounds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["LEPTON_HOME"] = str(tmp / "home")
        os.environ.pop("LEPTON_DB_URL", None)
        if "pruning" in args.only:
            pruning(write_csv("digits", tmp), tmp, args.trials or 30)
        if "jobs" in args.only:
            jobs(write_csv("breast_cancer", tmp), tmp, args.trials or 16, args.rounds)
        if "overhead" in args.only:
            overhead(write_csv("breast_cancer", tmp), tmp, args.trials or 10)


if __name__ == "__main__":
    main()
