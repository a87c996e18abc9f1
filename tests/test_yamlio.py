"""YAML I/O: safe loading, YAML 1.2 floats, plain dumping, atomic and locked writes."""

from __future__ import annotations

import enum
import multiprocessing
import os
import random
import textwrap
from pathlib import Path, PurePosixPath

import pytest
import yaml

from cool_runner import ConfigError, yamlio
from cool_runner.emitter import Emitter
from cool_runner.errors import LimitError
from cool_runner.files import append_locked, atomic_write, read_regular, write_problem
from cool_runner.yamlio import Loader, dump, dump_all, load_all, load_scalar, load_with_text, to_plain


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


# --- limits: what hostile or mistaken YAML ends in -------------------------------------------------------

LAUGH_LINES = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("text", "limit", "line", "fragment"),
    [
        pytest.param("\n".join(LAUGH_LINES), "aliases", 7, "aliases expand this value to 5,380,840 values",
                     id="billion-laughs"),
        pytest.param("base: &b {x: 1, y: [1, 2]}\nm: &m {<<: [*b, *b, *b, *b]}\n" + "".join(
            f"m{i}: &m{i} {{<<: [{', '.join(['*m' if i == 0 else f'*m{i - 1}'] * 9)}]}}\n" for i in range(8)),
            "aliases", 7, "aliases expand this value to 1,852,660 values", id="merge-key-laughs"),
        pytest.param("a: &a [1, *a]\n", "cycle", 1, "an alias here refers to a value that contains it", id="cycle"),
        pytest.param("[" * 101 + "]" * 101, "depth", 1, "nested more than 100 levels deep", id="flow-101"),
        pytest.param("[" * 200_000 + "]" * 200_000, "depth", 1, "nested more than 100 levels deep", id="flow-200000"),
        pytest.param("- " * 101 + "x\n", "depth", 1, "nested more than 100 levels deep", id="block-101"),
        pytest.param("- " * 50_000 + "x\n", "depth", 1, "nested more than 100 levels deep", id="block-50000"),
        pytest.param("".join(" " * i + f"k{i}:\n" for i in range(101)), "depth", 101, "nested more than 100 levels",
                     id="indented-101"),
        pytest.param("a: &a " + "[" * 60 + "]" * 60 + "\nb: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]]]]]"
                     "]]]]]]]]]]]]]]]]]\n", "depth", 1, "nested more than 100 levels deep", id="depth-through-alias"),
        pytest.param("x: " + "9" * 5000, "integer", 1, "an integer written with 5,000 characters is too large",
                     id="decimal-5000-digits"),
        pytest.param("x: 0x" + "f" * 3000, "integer", 1, "an integer of 12,000 bits is too large", id="hex-12000-bits"),
        pytest.param("x: " + "1" * 30_000, "integer", 1, "an integer written with 30,000 characters",
                     id="decimal-30000-digits"),
    ],
)
def test_loader_limits(text, limit, line, fragment):
    with pytest.raises(LimitError) as info:
        load_all(text, "hostile.yaml")
    err = info.value
    assert err.limit == limit and err.file == "hostile.yaml" and err.line == line
    assert str(err).startswith(f"hostile.yaml:{line}: ") and fragment in str(err)
    assert err.hint


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 100 + "]" * 100, id="flow-100"),
        pytest.param("- " * 100 + "x\n", id="block-100"),
        pytest.param("base: &b {lr: 0.1, momentum: 0.9}\n" + "".join(f"e{i}: {{<<: *b, n: {i}}}\n" for i in range(200)),
                     id="merge-keys"),
        pytest.param("big: &big [" + ", ".join(["1"] * 10_000) + "]\n" + "".join(f"r{i}: *big\n" for i in range(90)),
                     id="900000-values-from-aliases"),
        pytest.param("x: " + "9" * 3000, id="decimal-3000-digits"),
        pytest.param("x: [" + ", ".join(["[]"] * 3000) + "]", id="many-brackets-shallow"),
        pytest.param("n: " + "2" * 20 + "\nm: 0o17\nh: 0x1F\ns: 190:20:30\nz: 0\no: 010", id="ints"),
    ],
)
def test_loader_accepts_what_is_within_the_limits(text):
    assert load_all(text, "fine.yaml")[0] == yaml.load(text, Loader=yaml.SafeLoader)


def test_every_loader_applies_the_limits():
    laughs = "\n".join(LAUGH_LINES)
    with pytest.raises(yaml.YAMLError, match="aliases expand"):
        yaml.load(laughs, Loader=Loader)
    with pytest.raises(yaml.YAMLError, match="aliases expand"):
        load_with_text(laughs)
    with pytest.raises(ConfigError, match="aliases expand"):
        load_scalar("{" + ", ".join(LAUGH_LINES) + "}")


def test_aliases_are_checked_only_where_there_are_anchors():
    assert Loader("a: [1, 2]\n").anchored is False
    assert Loader("a: &x [1, 2]\nb: *x\n").anchored is True


# --- files the tools refuse to read or write -------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        pytest.param("folder", "is a folder, not a file", id="folder"),
        pytest.param("pipe", "is a FIFO (named pipe), not a file", id="fifo"),
        pytest.param("/dev/zero", "is a character device, not a file", id="dev-zero"),
        pytest.param("missing.yaml", "file not found (look here)", id="missing"),
    ],
)
def test_read_regular_refuses_without_blocking(tmp_path, name, fragment):
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe")
    path = name if name.startswith("/") else str(tmp_path / name)
    with pytest.raises(ConfigError) as info:
        read_regular(path, hint="look here")
    assert info.value.file == path and str(info.value).startswith(f"{path}: {fragment}")


def test_read_regular_reads_files(tmp_path):
    (tmp_path / "a.yaml").write_bytes(b"x: 1\n")
    assert read_regular(tmp_path / "a.yaml") == b"x: 1\n"


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        pytest.param("folder", "is a folder, not a file", id="folder"),
        pytest.param("/proc/self/cool-runner.yaml", "is under /proc", id="proc"),
        pytest.param("/proc", "is under /proc", id="proc-itself"),
        pytest.param("/sys/kernel/log.yaml", "is under /sys", id="sys"),
        pytest.param("file.txt/log.yaml", "file.txt is a file, not a folder", id="parent-is-file"),
        pytest.param("file.txt/deeper/log.yaml", "file.txt is a file, not a folder", id="ancestor-is-file"),
        pytest.param("/dev/null", "is a character device, not a file", id="device"),
        pytest.param("pipe", "is a FIFO (named pipe), not a file", id="fifo"),
        pytest.param("to-proc/log.yaml", "is under /proc", id="symlink-into-proc"),
        pytest.param("dangling/log.yaml", "is a broken symbolic link", id="dangling-link"),
        pytest.param("new/folders/log.yaml", None, id="missing-folders-are-fine"),
        pytest.param("file.txt", None, id="existing-file"),
    ],
)
def test_write_problem(tmp_path, monkeypatch, target, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("x")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "to-proc").symlink_to("/proc/self")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    problem = write_problem(target)
    if fragment is None:
        assert problem is None
    else:
        assert fragment in problem


# --- literal blocks ---------------------------------------------------------------------------------------


class _PythonDumper(yaml.SafeDumper):
    """The pure-Python emitter with cool-runner's string rule, for machines without libyaml."""


_PythonDumper.add_representer(str, yamlio._represent_str)
for _pattern in yamlio.Dumper.yaml_implicit_resolvers.get("1", []):
    if _pattern[0] == "tag:yaml.org,2002:float":
        _PythonDumper.add_implicit_resolver(*_pattern, list("-+0123456789."))


def test_multi_line_strings_are_literal_blocks():
    trace = 'Traceback (most recent call last):\n  File "m.py", line 2, in main\n    1/0\nZeroDivisionError: x\n'
    text = dump({"TRACEBACK": trace, "ERROR": "one line"})
    assert text == ("TRACEBACK: |\n  Traceback (most recent call last):\n    File \"m.py\", line 2, in main\n"
                    "      1/0\n  ZeroDivisionError: x\nERROR: one line\n")
    assert dump({"s": "a\nb"}) == "s: |-\n  a\n  b\n"
    assert dump({"s": "  indented\nnext\n"}).startswith("s: |2\n")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("trailing \nspace", id="trailing-space"),
        pytest.param("a\n   \nb", id="line-of-spaces"),
        pytest.param("tab\tinside\nx", id="tab"),
        pytest.param("a\n\n", id="two-final-newlines"),
        pytest.param("\n", id="only-newline"),
        pytest.param("a\r\nb", id="carriage-return"),
        pytest.param("a\u2028b\n", id="line-separator"),
        pytest.param("a\x85b\n", id="next-line"),
        pytest.param("\ufeffa\nb", id="byte-order-mark"),
        pytest.param("bell\x07\nx", id="control"),
    ],
)
def test_strings_a_literal_block_would_change_stay_quoted(text):
    assert not yamlio.literal_fits(text)
    out = dump({"s": text})
    assert out.startswith('s: "') and "\n" not in out.rstrip("\n") and load_all(out)[0] == {"s": text}


def test_multi_line_strings_round_trip_exactly():
    rng = random.Random(7)
    pieces = [" ", "  ", "\t", "\n", "\n", "a", "é", "#", "- ", ": ", "'", '"', "|", "---", "...", "\r", "x "]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 9)))
        for dumper in (yamlio.Dumper, _PythonDumper):
            for doc in ({"k": text}, {"k": {"n": [text, 1]}}, [text], {"k": [{"m": text}]}):
                out = yaml.dump(doc, Dumper=dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                                width=120, explicit_start=True)
                assert list(yaml.load_all(out, Loader=Loader)) == [doc], (dumper.__name__, out)


@pytest.mark.parametrize("indent", ["", "    "])
def test_the_fast_emitter_writes_literal_blocks_that_round_trip(indent):
    # --dry listings and the runner's own keys in records are written by the small emitter, not PyYAML's.
    assert Emitter().dump({"t": "a\n  b\n"}, indent) == f"{indent}t: |2\n{indent}  a\n{indent}    b\n"
    rng = random.Random(5)
    pieces = [" ", "  ", "\t", "\n", "\n", "a", "é", "#", "- ", ": ", "'", '"', "|", "---", "...", "\r", "x "]
    for _ in range(1500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 9)))
        for doc in ({"k": text}, {"k": {"n": [text, 1]}}, {"k": [text]}, {"k": [{"m": text}]}, {"k": [[text, {"z": text}]]}):
            out = Emitter().dump(doc, indent)
            assert all(line.startswith(indent) for line in out.splitlines())
            assert yaml.load(textwrap.dedent(out), Loader=Loader) == doc, out


def test_copied_record_text_keeps_literal_blocks_exact():
    # collect and filter copy each record's own text instead of dumping it again.
    rng = random.Random(3)
    pieces = [" ", "\n", "\n", "a", "-", ":", "---", "é", "\t"]
    for _ in range(1000):
        docs = []
        for number in range(3):
            text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 9)))
            docs.append({"A": number, "T": text} if number % 2 else {"T": text, "B": [text, {"c": text}]})
        pairs = load_with_text(dump_all(docs))
        assert [doc for doc, _ in pairs] == docs
        assert load_all("".join(f"---\n{body}" for _, body in pairs)) == docs


# --- to_plain: values a module leaves behind ---------------------------------------------------------------


def _cyclic_list():
    loop = [1]
    loop.append(loop)
    return loop


def _cyclic_dict():
    loop = {"a": 1}
    loop["self"] = {"again": loop}
    return loop


def _deep(levels):
    value = []
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "limit", "key", "fragment"),
    [
        pytest.param(_cyclic_list(), "cycle", ("R", 1), "a list that contains itself cannot be written", id="list"),
        pytest.param(_cyclic_dict(), "cycle", ("R", "self", "again"), "a dict that contains itself", id="dict"),
        pytest.param(_deep(5000), "depth", ("R",), "nested more than 100 levels deep (99 levels inside it)", id="deep"),
        pytest.param({"n": 2 ** 20_000}, "integer", ("R", "n"), "an integer of 20,001 bits is too large", id="int"),
    ],
)
def test_to_plain_refuses_what_cannot_be_written(value, limit, key, fragment):
    with pytest.raises(LimitError) as info:
        to_plain({"ok": 1, "R": value})
    err = info.value
    assert err.limit == limit and err.key == key and fragment in str(err) and err.hint
    problems = []
    plain = to_plain({"ok": 1, "R": value}, problems=problems)
    assert [p.limit for p in problems] == [limit] and plain["ok"] == 1
    assert f"<not saved: {problems[0].what}>" in str(plain) and load_all(dump(plain)) == [plain]


def test_to_plain_keeps_shared_values_that_are_not_cycles():
    shared = [1, 2]
    assert to_plain({"a": shared, "b": [shared, shared]}) == {"a": [1, 2], "b": [[1, 2], [1, 2]]}


def test_to_plain_survives_objects_that_cannot_print_themselves(caplog):
    class Mute:
        def __str__(self):
            raise RuntimeError("no")

    class Flag(str, enum.Enum):
        ON = "on"

    assert to_plain({"m": Mute(), Mute(): 1, "f": Flag.ON}) == {"m": "<unprintable Mute>", "<unprintable Mute>": 1,
                                                                "f": "on"}
    assert "m: Mute cannot be written to YAML" in caplog.text
