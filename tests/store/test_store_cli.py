"""``lepton models`` and ``lepton feedback`` end to end, through the CLI entry point."""

from __future__ import annotations

import csv
import io
import json
import stat

import pytest

import lepton.cli
from lepton.store import Store


@pytest.fixture
def cli(monkeypatch, capsys, workspace):
    """Run ``lepton ARGS...`` in-process; return (exit code, stdout, stderr)."""
    # Only the commands under test: another command's module must not break these tests.
    monkeypatch.setattr(lepton.cli, "COMMANDS", {"models": "lepton.cli.models",
                                                 "feedback": "lepton.cli.feedback"})

    def run(*args: str) -> tuple[int, str, str]:
        code = lepton.cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_models_register_list_show_promote_history_delete(cli, make_artifact):
    code, out, _ = cli("models", "register", make_artifact("a"), "--name", "fraud")
    assert code == 0 and out.startswith("registered fraud:1 -> ")
    code, out, _ = cli("models", "register", make_artifact("b", accuracy=0.95), "--name",
                       "fraud", "--promote", "staging", "--json")
    assert code == 0 and json.loads(out)["aliases"] == ["staging"]

    code, out, _ = cli("models", "list")
    assert code == 0
    header, row = out.strip().splitlines()
    assert header.split() == ["NAME", "VERSIONS", "LATEST_VERSION", "ALIASES", "CREATED_AT"]
    assert row.split()[:4] == ["fraud", "2", "2", "staging=2"]

    code, out, _ = cli("models", "promote", "fraud:1", "--to", "production", "--reason", "go")
    assert (code, out) == (0, "fraud@production -> 1\n")
    code, out, _ = cli("models", "promote", "fraud:2", "--to", "production")
    assert out == "fraud@production -> 2 (was 1)\n"
    code, out, _ = cli("models", "promote", "fraud:2", "--to", "production")
    assert out == "fraud@production is already 2\n"

    code, out, _ = cli("models", "show", "fraud@production")
    shown = json.loads(out)
    assert shown["version"] == 2 and shown["metrics"] == {"accuracy": 0.95}
    assert sorted(shown["aliases"]) == ["production", "staging"]
    code, out, _ = cli("models", "show", "fraud")
    assert "model fraud" in out and "accuracy=0.95" in out
    code, out, _ = cli("models", "show", "fraud", "--json")
    assert json.loads(out)["aliases"] == {"production": 2, "staging": 2}

    code, out, _ = cli("models", "history", "fraud", "--alias", "production", "--json")
    events = json.loads(out)
    assert [(e["from_version"], e["to_version"]) for e in events] == [(None, 1), (1, 2)]
    at = events[0]["at"]
    code, out, _ = cli("models", "history", "fraud", "--alias", "production", "--at", at)
    assert out.strip().endswith(": 1")

    code, out, err = cli("models", "delete", "fraud:2")
    assert code == 2 and "production -> 2" in err and err.count("\n") == 1
    code, out, _ = cli("models", "unalias", "fraud", "--alias", "staging")
    assert code == 0
    code, out, _ = cli("models", "delete", "fraud:1")
    assert (code, out) == (0, "deleted fraud version(s) 1\n")
    code, out, _ = cli("models", "delete", "fraud", "--force")
    assert (code, out) == (0, "deleted fraud version(s) 2\n")
    code, out, _ = cli("models", "list", "--json")
    assert json.loads(out) == []


@pytest.mark.parametrize("args,message", [
    (["models", "register", "{art}", "--name", "../etc"], "Invalid model name"),
    (["models", "register", "/nonexistent/x", "--name", "m"], "No artifact"),
    (["models", "show", "ghost"], "No model named 'ghost'"),
    (["models", "promote", "m", "--to", "production"], "explicit version"),
    (["models", "promote", "m:1", "--to", "a/b"], "Invalid alias"),
    (["models", "history", "m", "--at", "2026-01-01"], "--at needs --alias"),
    (["feedback", "add", "nope", "--label", "1"], "No prediction with this id"),
    (["feedback", "export", "--model", "../x"], "Invalid model name"),
])
def test_user_errors_are_one_line_exit_2(cli, artifact, args, message):
    code, out, err = cli(*[a.replace("{art}", str(artifact)) for a in args])
    assert code == 2 and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_feedback_add_and_export_roundtrip(cli, workspace, tmp_path):
    with Store.open() as store:
        store.log_predictions([
            {"id": "p1", "model": "fraud", "version": 1, "outputs": [0.9]},
            {"id": "p2", "model": "fraud", "version": 1, "outputs": [0.2]},
            {"id": "p3", "model": "churn", "version": 4, "outputs": [0.5]}])
    assert cli("feedback", "add", "p1", "--label", "1")[1].endswith("recorded\n")
    assert cli("feedback", "add", "p1", "--label", "1")[1].endswith("already recorded\n")
    cli("feedback", "add", "p2", "--rating", "2.5")
    cli("feedback", "add", "p3", "--label", '{"tags": ["a", "b"]}', "--key", "k3")

    code, out, _ = cli("feedback", "export")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(records) == 3
    assert set(records[0]) == {"id", "prediction_id", "model", "version", "label", "rating",
                               "time", "key"}
    assert [(r["prediction_id"], r["label"], r["rating"]) for r in records] == [
        ("p1", 1, None), ("p2", None, 2.5), ("p3", {"tags": ["a", "b"]}, None)]

    target = tmp_path / "fraud.csv"
    code, _, err = cli("feedback", "export", "--model", "fraud", "--format", "csv",
                       "--output", target)
    assert code == 0 and "wrote 2 feedback records" in err
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [(r["prediction_id"], r["label"], r["rating"], r["model"]) for r in rows] == [
        ("p1", "1", "", "fraud"), ("p2", "", "2.5", "fraud")]
    assert all(r["time"] and r["id"] for r in rows)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".fraud")] == []

    code, out, _ = cli("feedback", "export", "--model", "churn", "--format", "csv")
    (row,) = csv.DictReader(io.StringIO(out))
    assert json.loads(row["label"]) == {"tags": ["a", "b"]} and row["version"] == "4"


def test_feedback_export_file_is_atomic_and_readable(cli, workspace, tmp_path, monkeypatch):
    """Written through lepton.atomic: mode 0644 like every report; a write that fails half
    way leaves the previous file whole and no temporary file behind."""
    import lepton.cli.feedback as feedback

    with Store.open() as store:
        store.log_predictions([{"id": f"p{i}", "model": "fraud", "version": 1,
                                "outputs": [i / 10]} for i in range(3)])
        for i in range(3):
            store.add_feedback(f"p{i}", label=i % 2)
    target = tmp_path / "out" / "feedback.jsonl"
    code, _, err = cli("feedback", "export", "--output", target)
    assert code == 0 and "wrote 3 feedback records" in err
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    first = target.read_text()
    assert [json.loads(line)["label"] for line in first.splitlines()] == [0, 1, 0]

    def fails_after_one_row(records, out, fmt, write=feedback.write_export):
        write(iter([next(iter(records))]), out, fmt)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(feedback, "write_export", fails_after_one_row)
    with pytest.raises(OSError, match="No space left"):
        cli("feedback", "export", "--output", target)
    assert target.read_text() == first
    assert [p.name for p in target.parent.iterdir()] == ["feedback.jsonl"]
