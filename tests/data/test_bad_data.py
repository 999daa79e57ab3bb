"""Bad data fails with one clear error naming the file / column / row, or is handled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lepton.data import Pipeline, build_cache, read_table, scan_folder
from lepton.errors import DataError, LabelError


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.csv' is empty"):
        read_table(empty)
    header = tmp_path / "header.csv"
    header.write_text("a,b,label\n")
    with pytest.raises(DataError, match="no rows"):
        read_table(header)


def test_missing_target_column(mixed_frame):
    with pytest.raises(DataError, match="missing column.*'price'"):
        Pipeline("price").fit(mixed_frame)


def test_one_class_target(mixed_frame):
    mixed_frame["label"] = "yes"
    with pytest.raises(LabelError, match="only one class"):
        Pipeline("label").fit(mixed_frame)


def test_text_garbage_in_a_numeric_column_names_column_and_row(mixed_frame):
    frame = mixed_frame.astype({"score": object})
    frame.loc[7, "score"] = "n/a??"
    with pytest.raises(DataError, match=r"Column 'score'.*row\(s\) 7.*'n/a\?\?'"):
        Pipeline("label").fit(frame)
    pipe = Pipeline("label", columns={"score": {"type": "numeric", "errors": "coerce"}})
    assert np.isfinite(pipe.fit(frame).transform(frame)).all()
    clean = Pipeline("label").fit(mixed_frame)
    with pytest.raises(DataError, match="Column 'score'.*row\\(s\\) 7"):
        clean.transform(frame)


def test_all_missing_column_is_dropped_with_a_warning(mixed_frame):
    mixed_frame["empty"] = np.nan
    with pytest.warns(UserWarning, match="no values.*empty"):
        pipe = Pipeline("label").fit(mixed_frame)
    assert "empty" not in pipe.input_columns
    assert np.isfinite(pipe.transform(mixed_frame.drop(columns=["empty"]))).all()


def test_unseen_category_at_predict_goes_to_the_other_slot(mixed_frame):
    pipe = Pipeline("label", columns={"notes": {"type": "ignore"}}).fit(mixed_frame)
    row = mixed_frame.iloc[:1].copy()
    row["city"] = "tokyo"
    x = pipe.transform(row)
    city = next(c for c in pipe.to_json()["columns"] if c["name"] == "city")
    one_hot = x[0, 1:1 + len(city["categories"]) + 1]
    assert one_hot[-1] == 1 and one_hot.sum() == 1


def test_predict_data_missing_a_column_names_it(mixed_frame):
    pipe = Pipeline("label").fit(mixed_frame)
    with pytest.raises(DataError, match="missing column.*'city'"):
        pipe.transform(mixed_frame.drop(columns=["city", "label"]))


def test_corrupt_image_is_skipped_with_a_warning_naming_it(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (8, 10), dtype=np.uint8)).save(
                tmp_path / label / f"{i}.png")
    (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    folder = scan_folder(tmp_path)
    with pytest.warns(UserWarning, match="broken.png"):
        cache = build_cache(folder.files, folder.classes, (8, 10), 1)
    assert len(cache.images) == 6 and cache.skipped == [str(tmp_path / "dog" / "broken.png")]
    assert cache.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_numeric_frame_from_numpy_and_bad_shapes():
    from lepton.data import as_frame

    assert list(as_frame(np.zeros((3, 2))).columns) == ["x0", "x1"]
    with pytest.raises(DataError, match="1-D or 2-D"):
        as_frame(np.zeros((2, 2, 2)))
    assert len(as_frame([{"a": 1}, {"a": 2}])) == 2
    assert isinstance(as_frame({"a": [1, 2]}), pd.DataFrame)
