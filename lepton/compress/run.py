"""``lepton compress``: make the asked-for variants, measure each one, gate, register.

Every variant is its own artifact (``variant``, ``runtime``, ``lineage`` naming the parent).
Each is measured the way it will be served (``lepton.compress.measure``) against the original
on held-out data, and rejected with its reason, not registered (unless ``keep_rejected``),
when it loses more than ``max_loss`` points, or when another variant of the same run is at
least as accurate and faster at batch 1 and at batch 64 (so an INT8 model slower than the
same model's fp32 ONNX export is rejected). The table recommends the fastest accepted
variant at batch 64 and is saved as JSON, Markdown and an HTML report.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lepton.compress.measure import Measurement
from lepton.errors import ConfigError, LeptonError


@dataclass
class Row:
    name: str
    path: Path
    runtime: str
    numbers: Measurement
    rejected: str | None = None
    registered: str | None = None

    def as_json(self, base: Measurement) -> dict[str, Any]:
        n = self.numbers
        return {"variant": self.name, "path": str(self.path), "runtime": self.runtime,
                **n.as_json(), "size_ratio": n.size_bytes / base.size_bytes,
                "speed_b1": base.p50_ms_b1 / n.p50_ms_b1,
                "speed_b64": n.rows_per_s_b64 / base.rows_per_s_b64,
                "metric_delta": n.metric - base.metric, "rejected": self.rejected,
                "registered": self.registered}


@dataclass
class Result:
    rows: list[Row]
    recommended: str
    out: Path
    notes: list[str] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)


def gate(rows: list[Row], max_loss: float) -> None:
    """Mark rows[1:] rejected (rows[0] is the original) by the two rules above.

    "At least as accurate" allows one standard error of the held-out accuracy
    (``Measurement.tie``): an INT8 model 0.06 points above its fp32 export on 10,000 rows is
    rounding noise, not a reason to keep a model 8x slower. Any variant not itself too lossy
    can dominate (dominance is transitive, so one that is
    dominated in turn still proves the point). Of several that dominate, the reason names the
    most direct comparator: the same network (an INT8 model's own fp32 export, before
    pruned or distilled ones), on the same runtime, then the fastest."""
    base = rows[0].numbers
    lossy: set[int] = set()
    for row in rows[1:]:
        lost = base.metric - row.numbers.metric
        if lost > max_loss:
            row.rejected = f"loses {lost:.2f} points (more than --max-loss {max_loss:g})"
            lossy.add(id(row))
    for row in rows[1:]:
        if row.rejected:
            continue
        n = row.numbers
        better = [o for o in rows if o is not row and id(o) not in lossy
                  and o.numbers.metric >= n.metric - n.tie()
                  and o.numbers.p50_ms_b1 < n.p50_ms_b1
                  and o.numbers.rows_per_s_b64 > n.rows_per_s_b64]
        if not better:
            continue
        mine = network(row)
        other = min(better, key=lambda o: (network(o) != mine, o.runtime != row.runtime,
                                           -o.numbers.rows_per_s_b64))
        o = other.numbers
        within = "" if o.metric >= n.metric else \
            f" (within {n.tie():.2f} points, one standard error on {n.rows:,} rows)"
        row.rejected = (f"{other.name} is at least as accurate{within} and faster at batch 1 "
                        f"({o.p50_ms_b1:.3f} vs {n.p50_ms_b1:.3f} ms) and 64 "
                        f"({o.rows_per_s_b64:,.0f} vs {n.rows_per_s_b64:,.0f} rows/s)")


def network(row: Row) -> str:
    """Which network a variant runs: its prune/distill steps (export and quantization keep the
    network). Read from its manifest; from its name when it has none."""
    try:
        from lepton.artifact.manifest import read_manifest

        steps = read_manifest(row.path).variant.get("transforms", [])
        return json.dumps([s for s in steps if s.get("name") in ("prune", "distill")],
                          sort_keys=True, default=str)
    except LeptonError:  # no manifest (a table row built by hand): the name says it
        name = row.name.removesuffix("-onnx")
        return "fp32" if name in ("onnx-fp32", "fp32") or name.startswith("int8-") else name


def recommend(rows: list[Row]) -> str:
    ok = [r for r in rows if not r.rejected]
    return max(ok, key=lambda r: (r.numbers.rows_per_s_b64, -r.numbers.p50_ms_b1)).name


def compress(model: str | Path, data: str, *, quantize: str | None = None,
             calibration: str | None = None, prune: float | None = None,
             fine_tune_epochs: int = 1, distill: bool = False, student: str = "half",
             distill_epochs: int = 3,
             export: bool = False, max_loss: float = 0.5, keep_rejected: bool = False,
             out: str | Path | None = None, threads: int = 1, train_data: str | None = None,
             name: str | None = None, register: bool = True,
             say: Any = print) -> Result:
    """Make, measure, gate and register the variants of ``model`` (see the module doc)."""
    from lepton.compress import data as datasets
    from lepton.compress import distillation as kd
    from lepton.compress import int8 as quant
    from lepton.compress import onnx_export, pruning
    from lepton.compress.lineage import locate
    from lepton.compress.measure import measure_all
    from lepton.compress.source import as_source
    from lepton.core.device import set_threads

    if prune is not None:
        pruning.check_amount(prune)
    if quantize not in (None, "auto", *quant.METHODS):
        raise ConfigError("Unknown quantization method", expected="static, dynamic or auto",
                          received=repr(quantize))
    if not isinstance(max_loss, (int, float)) or max_loss < 0:
        raise ConfigError("--max-loss is a number of points >= 0", received=repr(max_loss))
    set_threads(threads, interop=1)
    where = locate(model, name)
    source = as_source(where.path)
    source.ref = where.ref
    notes = list(where.notes)
    run_id = uuid.uuid4().hex[:12]
    lineage = {"run_id": run_id}
    meta = source.metadata
    if distill and student != "half":
        kd.preset_student(source.model, student)  # a preset that does not fit fails first
    out = Path(out or f"{where.name}-compressed")
    xs, y = datasets.load(data, source.model, meta)
    train_spec = train_data or _training_data(meta)
    training = datasets.load(train_spec, source.model, meta, default_split="train") \
        if train_spec and (prune is not None or distill or (quantize and not calibration)) \
        else None
    made: list[tuple[str, Path]] = [("fp32", where.path)]

    def step(label: str, fn: Any, *args: Any, **kw: Any) -> Path:
        say(f"  {label}…")
        path = fn(*args, **kw)
        made.append((_variant(path), path))
        return path

    wants_onnx = export or quantize is not None
    if wants_onnx:
        step("exporting to ONNX", onnx_export.export, source, "onnx", out / "onnx-fp32",
             lineage=lineage)
    if quantize is not None:
        method = None if quantize == "auto" else quantize
        chosen = method or quant.choose_method(source.model)
        sample = None
        if chosen == "static":
            if calibration:
                sample = datasets.load(calibration, source.model, meta, default_split="train")[0]
            elif training is not None:
                sample = training[0]
                notes.append(f"calibrated on {min(len(sample[0]), quant.CALIBRATION_ROWS)} rows "
                             f"of the training data ({train_spec})")
            else:
                sample = [x[:512] for x in xs]
                notes.append("calibrated on the first 512 held-out rows (no training data "
                             "known): pass --calibration")
        step(f"quantizing (INT8 {chosen})", quant.quantize, source, out / f"int8-{chosen}",
             method, sample[0] if sample and len(sample) == 1 else sample, lineage=lineage)
    for wanted, label in ((prune is not None, "prune"), (distill, "distill")):
        if not wanted:
            continue
        if training is None:
            raise ConfigError(f"--{label} needs training data for its fine-tune",
                              fix="pass --train-data (a table, folder, .npz or mnist:train)")
        fit = (training[0][0], training[1])
        if label == "prune" and prune is not None:
            path = step(f"pruning {prune:.0%} of channels/units", pruning.prune, source, prune,
                        path=out / f"pruned-{int(round(prune * 100))}", fine_tune=fit,
                        epochs=fine_tune_epochs, lineage=lineage)
        else:
            path = step(f"distilling a {student} student", kd.distill, source, student, fit,
                        path=out / f"distilled-{student}", epochs=distill_epochs,
                        lineage=lineage)
        if export:
            step("exporting it to ONNX", onnx_export.export, path, "onnx",
                 out / f"{_variant(path)}-onnx", lineage=lineage)
    say(f"  measuring {len(made)} variants ({threads} thread{'s' if threads > 1 else ''})…")
    numbers = measure_all([p for _, p in made], xs, y, threads=threads)
    rows = [Row(n, p, _runtime(p), m) for (n, p), m in zip(made, numbers)]
    gate(rows, max_loss)
    result = Result(rows, recommend(rows), out, notes)
    _annotate(result, rows)
    if register:
        _register(result, where, keep_rejected)
    result.table = [r.as_json(rows[0].numbers) for r in rows]
    _save(result, where, data)
    return result


def _annotate(result: Result, rows: list[Row]) -> None:
    """Each variant's own manifest keeps its row of the table and the verdict."""
    from lepton.artifact.manifest import read_manifest
    from lepton.artifact.save import update_manifest

    table = [r.as_json(rows[0].numbers) for r in rows]
    for row, line in zip(rows[1:], table[1:]):
        meta = read_manifest(row.path).metadata
        update_manifest(row.path, metadata={**meta, "compression": {
            **line, "recommended": result.recommended, "original": table[0]}})


def _training_data(meta: dict[str, Any]) -> str | None:
    """The training data named in the artifact (the demo's bundled MNIST), if any."""
    lineage = meta.get("lineage") or {}
    if "MNIST" in str(lineage.get("data", "")) and "bundled" in str(lineage.get("data", "")):
        rows = lineage.get("train_samples")
        return f"mnist:train:{int(rows)}" if rows else "mnist:train"
    return None


def _variant(path: Path) -> str:
    from lepton.artifact.manifest import read_manifest

    return str(read_manifest(path).variant["name"])


def _runtime(path: Path) -> str:
    from lepton.artifact.manifest import read_manifest

    return str(read_manifest(path).runtime["name"])


def _register(result: Result, where: Any, keep_rejected: bool) -> None:
    from lepton.registry import Registry
    from lepton.store import Store

    registry = Registry(Store.open())
    for row in result.rows[1:]:
        if row.rejected and not keep_rejected:
            continue
        entry = registry.register(row.path, where.name,
                                  description=f"lepton compress: {row.name} of "
                                              f"{where.ref or where.path}")
        row.registered = f"{entry['name']}:{entry['version']}"


def _save(result: Result, where: Any, data: str) -> None:
    from lepton.atomic import atomic_write_bytes
    from lepton.compress.table import html_report, markdown

    doc = {"model": where.ref or str(where.path), "data": data,
           "recommended": result.recommended, "notes": result.notes, "variants": result.table}
    result.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(result.out / "compress.json", json.dumps(doc, indent=2).encode())
    atomic_write_bytes(result.out / "compress.md", markdown(doc).encode())
    html_report(result.out / "report.html", doc)
