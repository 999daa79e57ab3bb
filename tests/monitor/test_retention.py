"""The retention sweep deletes expired predictions, keeps those with feedback, and folds
what it deletes into sketches so the monitor still sees that traffic."""

from __future__ import annotations

import time

from tests.monitor.conftest import log_records


def test_sweep_folds_then_deletes_and_keeps_feedback(table_model, store):
    from lepton.monitor import monitor
    from lepton.monitor.retention import sweep
    from lepton.store._monitor import read_sketches

    _, record, frame = table_model
    old = time.time() - 40 * 86400
    ids = log_records(store, record, frame.drop(columns=["target"]).head(120), start=old,
                      prefix="old", step=1.0)
    store.add_feedback(ids[0], label=1)
    log_records(store, record, frame.drop(columns=["target"]).head(30),
                start=time.time() - 60, prefix="new", step=1.0)
    assert store.count_predictions("cancer") == 150
    totals = sweep(store, "30d")
    assert totals == {"expired": 119, "deleted": 119, "sketches": 1}
    assert store.count_predictions("cancer") == 31  # 30 recent + 1 with feedback
    assert store.get_prediction(ids[0])["id"] == ids[0]
    sketch = read_sketches(store, "cancer")[0]
    assert sketch["requests"] == 119 and sketch["sketch"]["inputs"]["mean_radius"]["n"] == 119
    # the expired window is still monitored, from its sketch
    result = monitor("cancer", since=old - 1, window="10d", store=store)
    first = result["windows"][0]
    assert first["input_source"] == "logged inputs + server sketches"
    assert first["errors"]["requests"] == 119
    assert sweep(store, "30d")["expired"] == 0
