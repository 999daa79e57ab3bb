"""The registry's Python API on both backends: versions, aliases with history, safety."""

from __future__ import annotations

import io
import os
import tarfile
import time
import zipfile
from datetime import datetime, timezone

import pytest

from lepton.errors import (
    ArtifactError,
    ConfigError,
    ConflictError,
    NotFoundError,
    UnsafeArtifactError,
)
from lepton.registry import parse_ref


def test_register_copies_and_numbers_versions(registry, make_artifact, workspace):
    src = make_artifact(accuracy=0.91)
    v1 = registry.register(src, "fraud-detector", description="first")
    v2 = registry.register(make_artifact("b", accuracy=0.93, seed=1), "fraud-detector")
    assert (v1["version"], v2["version"]) == (1, 2)
    for v in (v1, v2):
        path = os.path.realpath(v["path"])
        assert path.startswith(str(workspace.resolve() / "models" / "fraud-detector"))
        assert sorted(os.listdir(path)) == ["lepton.json", "weights.safetensors"]
    assert (src / "lepton.json").is_file()  # copied, not moved
    assert v1["metrics"] == {"accuracy": 0.91} and v1["task"] == "binary"
    assert v1["description"] == "first" and v1["created_by"] == "tester"
    assert v1["signature"]["outputs"][0]["shape"] == [-1, 2]
    assert v1["lineage"]["data_hash"] == "sha256:0"
    assert len(v1["digest"]) == 64 and v1["digest"] != v2["digest"]
    same = registry.register(src, "other")
    assert same["digest"] == v1["digest"]


def test_explicit_version_conflicts(registry, artifact):
    assert registry.register(artifact, "m", version=5)["version"] == 5
    with pytest.raises(ConflictError, match="already has version 5"):
        registry.register(artifact, "m", version=5)
    assert registry.register(artifact, "m")["version"] == 6
    assert [v["version"] for v in registry.list_versions("m")] == [5, 6]
    leftovers = [p for p in (registry.root / "m").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # the losing copy was removed


def test_resolve_forms(registry, make_artifact):
    for i in range(3):
        registry.register(make_artifact(str(i), seed=i), "m")
    assert registry.resolve("m")["version"] == 3  # no production yet: latest
    registry.promote("m", 2, "production")
    assert registry.resolve("m")["version"] == 2  # production wins
    assert registry.resolve("m:latest")["version"] == 3
    assert registry.resolve("m:1")["version"] == 1
    assert registry.resolve("m@production")["version"] == 2
    assert registry.resolve("m@production")["aliases"] == ["production"]
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        registry.resolve("m@staging")
    with pytest.raises(NotFoundError, match="no version 9"):
        registry.resolve("m:9")
    with pytest.raises(NotFoundError, match="No model named 'ghost'"):
        registry.resolve("ghost")


def test_promotion_history_answers_which_version_when(registry, make_artifact):
    for i in range(3):
        registry.register(make_artifact(str(i), seed=i), "m")
    registry.promote("m", 1, "production", reason="launch")
    t1 = time.time()
    time.sleep(0.01)
    registry.promote("m", 2, "staging")
    registry.promote("m", 2, "production", reason="better auc")
    t2 = time.time()
    time.sleep(0.01)
    same = registry.promote("m", 2, "production")
    assert not same["changed"]
    registry.remove_alias("m", "staging", reason="done")
    history = registry.history("m")
    assert [(e["alias"], e["from_version"], e["to_version"]) for e in history] == [
        ("production", None, 1), ("staging", None, 2), ("production", 1, 2),
        ("staging", 2, None)]
    assert history[0]["actor"] == "tester" and history[2]["reason"] == "better auc"
    assert registry.version_at("m", "production", t1) == 1
    assert registry.version_at("m", "production", t2) == 2
    assert registry.version_at("m", "production", 0) is None
    iso = datetime.fromtimestamp(t1, timezone.utc).isoformat().replace("+00:00", "Z")
    assert registry.version_at("m", "production", iso) == 1
    assert registry.version_at("m", "staging", time.time()) is None
    assert registry.aliases("m") == {"production": 2}
    assert [e["alias"] for e in registry.history("m", "production")] == ["production"] * 2


def test_promote_errors(registry, artifact):
    registry.register(artifact, "m")
    with pytest.raises(NotFoundError, match="no version 4"):
        registry.promote("m", 4, "production")
    with pytest.raises(NotFoundError, match="No model named"):
        registry.promote("x", 1, "production")
    with pytest.raises(ConfigError, match="alias"):
        registry.promote("m", 1, "../prod")
    with pytest.raises(ConfigError, match="reserved"):
        registry.promote("m", 1, "latest")
    with pytest.raises(ConfigError, match="positive integer"):
        registry.promote("m", 0, "production")
    assert registry.history("m") == []


def test_delete_versions_and_models_keeps_history(registry, make_artifact):
    for i in range(3):
        registry.register(make_artifact(str(i), seed=i), "m")
    registry.promote("m", 3, "production")
    path1 = registry.get("m", 1)["path"]
    assert registry.delete("m", 1) == [1]
    assert not os.path.exists(path1)
    with pytest.raises(ConflictError, match="production -> 3"):
        registry.delete("m", 3)
    with pytest.raises(ConflictError, match="aliases"):
        registry.delete("m")
    assert registry.delete("m", force=True) == [2, 3]
    assert registry.list_models() == []
    assert not any((registry.root / "m").iterdir())
    assert [(e["from_version"], e["to_version"], e["reason"]) for e in registry.history("m")] \
        == [(None, 3, ""), (3, None, "deleted")]
    with pytest.raises(NotFoundError):
        registry.delete("m", 1)
    assert registry.register(make_artifact("again"), "m")["version"] == 1


def test_list_models(registry, make_artifact):
    registry.register(make_artifact("a"), "beta")
    registry.register(make_artifact("b"), "alpha")
    registry.register(make_artifact("c"), "alpha")
    registry.promote("alpha", 2, "staging")
    models = registry.list_models()
    assert [(m["name"], m["versions"], m["latest_version"], m["aliases"]) for m in models] == [
        ("alpha", 2, 2, {"staging": 2}), ("beta", 1, 1, {})]


@pytest.mark.parametrize("name", ["../escape", "..", ".", "a/b", "a\\b", "/etc", "%2e%2e",
                                  "a\x00b", "", "x" * 129, "-lead", "name\n", "ünï"])
def test_names_that_try_to_escape_are_refused(registry, artifact, name):
    with pytest.raises(ConfigError, match="Invalid model name"):
        registry.register(artifact, name)
    assert not registry.root.exists() or not any(registry.root.iterdir())


def test_symlinked_model_dir_cannot_lead_outside(registry, artifact, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    registry.root.mkdir(parents=True)
    (registry.root / "evil").symlink_to(outside)
    with pytest.raises(ConfigError, match="escapes the workspace"):
        registry.register(artifact, "evil")
    assert list(outside.iterdir()) == []


def test_artifact_checks(registry, artifact, tmp_path):
    with pytest.raises(NotFoundError, match="No artifact"):
        registry.register(tmp_path / "missing", "m")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ArtifactError, match="has no lepton.json"):
        registry.register(empty, "m")
    (empty / "lepton.json").write_text('{"format": "something-else"}')
    with pytest.raises(ArtifactError, match="not a Lepton model manifest"):
        registry.register(empty, "m")
    (empty / "lepton.json").write_text("{nope")
    with pytest.raises(ArtifactError, match="manifest .* is corrupt"):
        registry.register(empty, "m")
    (artifact / "model.pt").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(UnsafeArtifactError, match="pickle"):
        registry.register(artifact, "m")
    (artifact / "model.pt").unlink()
    (artifact / "link").symlink_to("/etc/hostname")
    with pytest.raises(UnsafeArtifactError, match="symlinks"):
        registry.register(artifact, "m")
    assert registry.list_models() == []


def test_register_archives(registry, artifact, tmp_path):
    tgz = tmp_path / "model.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(artifact, arcname="model")
    zipped = tmp_path / "model.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for f in artifact.iterdir():
            zf.write(f, f.name)
    for archive in (tgz, zipped):
        got = registry.register(archive, "arch")
        assert sorted(os.listdir(got["path"])) == ["lepton.json", "weights.safetensors"]
    assert registry.get("arch", 1)["digest"] == registry.get("arch", 2)["digest"]


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt",
                                    "..\\evil.txt"])
def test_archives_with_escaping_members_are_rejected(registry, artifact, tmp_path, member):
    zipped = tmp_path / "bad.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for f in artifact.iterdir():
            zf.write(f, f.name)
        zf.writestr(member, "x")
    tgz = tmp_path / "bad.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(artifact, arcname=".")
        info = tarfile.TarInfo(member)
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    for archive in (zipped, tgz):
        with pytest.raises(UnsafeArtifactError, match="escapes"):
            registry.register(archive, "m")
    assert not (tmp_path / "evil.txt").exists()
    assert registry.list_models() == []


def test_archive_with_symlink_is_rejected(registry, artifact, tmp_path):
    tgz = tmp_path / "link.tar"
    with tarfile.open(tgz, "w") as tf:
        tf.add(artifact, arcname=".")
        info = tarfile.TarInfo("weights2.safetensors")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(UnsafeArtifactError, match="link"):
        registry.register(tgz, "m")


def test_gc_removes_only_orphans(registry, make_artifact):
    kept = registry.register(make_artifact(), "m")
    orphan = registry.root / "m" / "7-deadbeef0000"
    orphan.mkdir()
    assert registry.gc(older_than_s=3600) == []  # too young: may be in flight
    assert registry.gc(older_than_s=0) == ["models/m/7-deadbeef0000"]
    assert os.path.isdir(kept["path"]) and not orphan.exists()


@pytest.mark.parametrize("ref,expected", [
    ("m", ("m", None, None)), ("m:3", ("m", 3, None)), ("m:latest", ("m", None, "latest")),
    ("m@production", ("m", None, "production")), ("a.b_c-1:12", ("a.b_c-1", 12, None))])
def test_parse_ref(ref, expected):
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["m:", "m:x", "m:-1", "m:0", "@prod", "m@", "m@../x", "../m:1"])
def test_parse_ref_rejects(ref):
    with pytest.raises(ConfigError):
        parse_ref(ref)
