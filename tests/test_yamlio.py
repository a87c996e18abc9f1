"""YAML I/O: safe loading, YAML 1.2 floats, plain dumping, atomic and locked writes."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path, PurePosixPath

import pytest
import yaml

from cool_runner import ConfigError
from cool_runner.files import append_locked, atomic_write
from cool_runner.yamlio import Loader, dump, load_all, load_scalar, to_plain


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1e-3", 0.001, id="exp-no-dot"),
        pytest.param("5E+2", 500.0, id="exp-upper"),
        pytest.param("-2.5e3", -2500.0, id="signed"),
        pytest.param(".5e1", 5.0, id="leading-dot"),
        pytest.param("'1e-3'", "1e-3", id="quoted"),
        pytest.param("1", 1, id="int"),
        pytest.param("max", "max", id="word"),
        pytest.param("e5", "e5", id="not-a-number"),
        pytest.param("1.5", 1.5, id="plain-float"),
    ],
)
def test_scalars(text, expected):
    value = load_scalar(text)
    assert value == expected and type(value) is type(expected)


def test_loader_is_safe():
    with pytest.raises(ConfigError, match="refused: could not determine a constructor"):
        load_all("!!python/object/apply:os.getcwd []\n", "hostile.yaml")
    assert issubclass(Loader, yaml.SafeLoader if not yaml.__with_libyaml__ else yaml.CSafeLoader)


def test_to_plain_converts_what_yaml_cannot_hold(caplog):
    class Weird:
        def __str__(self):
            return "weird!"

    value = {"t": (1, 2), "p": PurePosixPath("/a/b"), "s": {3, 1}, "w": Weird(), "n": {"deep": [(1,)]}}
    plain = to_plain(value)
    assert plain == {"t": [1, 2], "p": "/a/b", "s": [1, 3], "w": "weird!", "n": {"deep": [[1]]}}
    assert "w: Weird cannot be written to YAML" in caplog.text
    assert yaml.safe_load(dump(plain)) == plain


def test_to_plain_numpy():
    np = pytest.importorskip("numpy")
    plain = to_plain({"a": np.float32(0.5), "b": np.arange(3), "c": np.int64(7), "m": np.eye(2)})
    assert plain == {"a": 0.5, "b": [0, 1, 2], "c": 7, "m": [[1.0, 0.0], [0.0, 1.0]]}
    assert type(plain["c"]) is int


def test_atomic_write_replaces_and_keeps_mode(tmp_path):
    target = tmp_path / "q.yaml"
    atomic_write(target, "a: 1\n")
    os.chmod(target, 0o600)
    atomic_write(target, "a: 2\n")
    assert target.read_text() == "a: 2\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["q.yaml"]


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "q.yaml"
    atomic_write(target, "old\n")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["q.yaml"]


def _appender(path: str, worker: int, count: int) -> None:
    for i in range(count):
        append_locked(path, dump({"worker": worker, "i": i, "pad": "x" * 5000}, explicit_start=True))


@pytest.mark.timeout(60)
def test_concurrent_appends_never_interleave(tmp_path):
    path = str(tmp_path / "log.yaml")
    workers = [multiprocessing.Process(target=_appender, args=(path, w, 50)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    docs = list(yaml.safe_load_all(Path(path).read_text()))
    assert len(docs) == 200
    assert sorted((d["worker"], d["i"]) for d in docs) == [(w, i) for w in range(4) for i in range(50)]


@pytest.mark.parametrize("text", ["1e5", "12E3", "-1.5e-3", "0x1F", "yes", "null", "007"])
def test_strings_that_look_like_numbers_round_trip(text):
    assert load_all(dump({"s": text}))[0] == {"s": text}
