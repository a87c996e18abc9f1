"""Expansion of an experiment file: defaults, deep merge, repeats, RND_IDX, overrides and file errors."""

from __future__ import annotations

import random

import pytest

from cool_runner import ConfigError, Expander, UsageError, load_study, merge
from cool_runner.study.load import require_experiments

HEAD = "Module: m\nYamlLog: log.yaml\n"


def expand(write, text: str, overrides=(), seed=0):
    path = write("experiment.yaml", text)
    return Expander(load_study(str(path), overrides), rng=random.Random(seed), host="box").expand()


def test_deep_merge_keeps_default_siblings_and_orders_keys():
    merged = merge({"optimizer": {"lr": 0.01}, "x": 1}, {"optimizer": {"lr": 0.1, "momentum": 0.9}, "y": 2, "x": 0})
    assert merged == {"optimizer": {"lr": 0.01, "momentum": 0.9}, "x": 1, "y": 2}
    assert list(merged) == ["optimizer", "x", "y"]
    assert list(merged["optimizer"]) == ["lr", "momentum"]


def test_experiment_value_replaces_a_default_mapping_with_a_scalar():
    assert merge({"opt": None}, {"opt": {"lr": 1}}) == {"opt": None}


def test_global_repeat_and_local_repeat_order(write):
    text = "Global: {repeat: 2}\n" + HEAD + "---\nName: a\nRepeat: 2\n---\nName: b\n"
    exps = expand(write, text)
    assert [(e.values["Name"], e.values["REP"]) for e in exps] == [
        ("a", 0), ("a", 1), ("b", 0), ("a", 0), ("a", 1), ("b", 0)]
    assert [e.index for e in exps] == list(range(6))
    assert all("Global" not in e.values for e in exps)


def test_rnd_idx_shared_by_copies_fresh_per_global_repetition(write):
    exps = expand(write, "Global: {repeat: 2}\n" + HEAD + "---\nRepeat: 2\n---\nName: b\n")
    ids = [e.values["RND_IDX"] for e in exps]
    assert ids[0] == ids[1] and ids[3] == ids[4]
    assert len({ids[0], ids[2], ids[3], ids[5]}) == 4
    assert all(100000 <= i <= 999999 for i in ids)


def test_rnd_idx_set_by_user_is_kept(write):
    exps = expand(write, HEAD + "---\nRND_IDX: 42\nRepeat: 2\n")
    assert [e.values["RND_IDX"] for e in exps] == [42, 42]


def test_host_and_rep_are_added(write):
    (exp,) = expand(write, HEAD + "---\nName: a\n")
    assert exp.values["HOST"] == "box" and exp.values["REP"] == 0
    assert list(exp.values)[-4:] == ["REP", "GLOBAL_REP", "RND_IDX", "HOST"]


def test_repeat_zero_disables_an_experiment(write):
    assert [e.values["Name"] for e in expand(write, HEAD + "---\nName: a\nRepeat: 0\n---\nName: b\n")] == ["b"]


def test_overrides_change_the_default_config(write):
    text = "Global: {repeat: 1}\n" + HEAD + "lr: 0.1\nopt: {m: 1}\n---\nName: a\n"
    exps = expand(write, text, overrides=["+lr=0.5", "+opt.m=2", "+layers=[1, 2]", "+Global.repeat=2", "+cmd=max"])
    assert len(exps) == 2
    values = exps[0].values
    assert (values["lr"], values["opt"]["m"], values["layers"], values["cmd"]) == (0.5, 2, [1, 2], "max")


def test_overrides_create_missing_and_empty_mappings(write):
    (exp,) = expand(write, HEAD + "opt:\n---\nName: a\n", overrides=["+opt.lr=0.5", "+new.deep.key=1"])
    assert exp.values["opt"] == {"lr": 0.5} and exp.values["new"] == {"deep": {"key": 1}}


def test_override_value_is_never_executed(write):
    (exp,) = expand(write, HEAD + "---\nName: a\n", overrides=["+x=__import__('os').getcwd()"])
    assert exp.values["x"] == "__import__('os').getcwd()"


@pytest.mark.parametrize(
    ("argument", "fragment"),
    [
        pytest.param("+lr", "write +key.path=value", id="no-equals"),
        pytest.param("+=3", "write +key.path=value", id="no-key"),
        pytest.param("+a..b=3", "write +key.path=value", id="empty-part"),
        pytest.param("+x=[1, 2", "not valid YAML", id="bad-yaml"),
        pytest.param("+steps.x=1", "steps holds 50 (a number), not a mapping, so it has no key 'x' "
                     "(to replace the value, write +steps=...)", id="into-a-number"),
        pytest.param("+opt.lr.x=1", "opt.lr holds 0.1 (a number), not a mapping", id="into-a-nested-number"),
        pytest.param("+layers.0=5", "layers holds [1, 2] (a list), not a mapping", id="into-a-list"),
        pytest.param("+Global.repeat.x=2", "Global.repeat holds 1 (a number)", id="into-a-setting"),
        pytest.param("+name.first=a", "name holds 'vgg' (a string)", id="into-a-string"),
    ],
)
def test_bad_overrides(write, argument, fragment):
    text = "Global: {repeat: 1}\n" + HEAD + "steps: 50\nopt: {lr: 0.1}\nlayers: [1, 2]\nname: vgg\n---\nName: a\n"
    with pytest.raises(UsageError) as info:
        expand(write, text, overrides=[argument])
    assert info.value.option == argument and fragment in str(info.value)
    assert str(info.value).startswith(argument + ": ")


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        pytest.param("a: [1\n---\nName: x\n", 2, (), "invalid YAML", id="yaml-syntax"),
        pytest.param(HEAD + "---\nName: a\nName: b\n", 5, (), "appears twice", id="duplicate-key"),
        pytest.param("", None, (), "the file is empty", id="empty"),
        pytest.param("- 1\n- 2\n", None, (), "not a mapping", id="list-defaults"),
        pytest.param(HEAD + "---\n- 1\n", None, (), "document 2 is a list", id="list-experiment"),
        pytest.param("Global: {repaet: 2}\n" + HEAD + "---\nName: a\n", 1, ("Global", "repaet"),
                     "unknown setting 'repaet'", id="unknown-global"),
        pytest.param("Global: {repeat: 0}\n" + HEAD + "---\nName: a\n", 1, ("Global", "repeat"),
                     "at least 1", id="repeat-zero"),
        pytest.param(HEAD + "---\nName: a\nGlobal: {repeat: 2}\n", 5, ("Global",), "default config only",
                     id="global-in-experiment"),
        pytest.param("YamlLog: l.yaml\n---\nName: a\n", 3, ("Module",), "Module is missing", id="no-module"),
        pytest.param("Module: m\n---\nName: a\n", 3, ("YamlLog",), "YamlLog is missing", id="no-log"),
        pytest.param(HEAD + "---\nName: a\nModule: 3\n", 5, ("Module",), "non-empty string", id="module-number"),
        pytest.param(HEAD + "Repeat: two\n---\nName: a\n", 3, ("Repeat",), "whole number", id="repeat-text"),
        pytest.param("Global:\n  slack: maybe\n" + HEAD + "---\nName: a\n", 2, ("Global", "slack"),
                     "must be true or false, not 'maybe' (a string) (write true or false, without quotes)",
                     id="slack-maybe"),
        pytest.param("Global:\n  slack: 'true'\n" + HEAD + "---\nName: a\n", 2, ("Global", "slack"),
                     "not 'true' (a string)", id="slack-quoted"),
        pytest.param("Global:\n  slack: 1\n" + HEAD + "---\nName: a\n", 2, ("Global", "slack"),
                     "not 1 (a number)", id="slack-number"),
        pytest.param("Global:\n  slack_config: [a]\n" + HEAD + "---\nName: a\n", 2, ("Global", "slack_config"),
                     "must be a mapping, not ['a'] (a list)", id="slack-config-list"),
        pytest.param("Global:\n  queue: ''\n" + HEAD + "---\nName: a\n", 2, ("Global", "queue"),
                     "must be a file path or null, not '' (a string)", id="queue-empty"),
        pytest.param("Global:\n  queue: [q.yaml]\n" + HEAD + "---\nName: a\n", 2, ("Global", "queue"),
                     "must be a file path or null", id="queue-list"),
        pytest.param("Global:\n  repeat: true\n" + HEAD + "---\nName: a\n", 2, ("Global", "repeat"),
                     "whole number of at least 1, not True", id="repeat-boolean"),
    ],
)
def test_file_errors(write, text, line, key, fragment):
    with pytest.raises(ConfigError) as info:
        expand(write, text)
    err = info.value
    assert err.file.endswith("experiment.yaml") and err.line == line and err.key == key
    assert fragment in str(err)
    assert str(err).startswith(err.file)


def test_global_booleans_and_empty_settings(write):
    for text, slack in [("slack: true", True), ("slack: false", False), ("slack:", False)]:
        study = load_study(str(write("experiment.yaml", f"Global:\n  {text}\n  slack_config:\n" + HEAD)))
        assert study.settings["slack"] is slack and study.settings["slack_config"] == {}
    with pytest.raises(ConfigError, match=r"Global\.slack: must be true or false, not 'maybe'"):
        load_study(str(write("experiment.yaml", HEAD + "---\nName: a\n")), ["+Global.slack=maybe"])


def test_a_file_with_only_the_default_config_cannot_run(write):
    study = load_study(str(write("experiment.yaml", HEAD)))  # loading works: --status only needs Global.queue
    with pytest.raises(ConfigError) as info:
        require_experiments(study)
    assert info.value.file.endswith("experiment.yaml")
    assert "holds only the default config, so there is no experiment to run" in str(info.value)
    assert "each starting with a line '---'" in str(info.value)
    require_experiments(load_study(str(write("experiment.yaml", HEAD + "---\nName: skip\n"))))


def test_skip_does_not_need_a_module(write):
    exps = expand(write, "YamlLog: l.yaml\n---\nName: skip\n")
    assert exps[0].skipped


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_study(str(tmp_path / "nope.yaml"))


def test_hostile_tags_are_rejected(write):
    path = write("experiment.yaml", HEAD + "---\nx: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="refused"):
        load_study(str(path))
    assert not (path.parent / "pwned").exists()


def test_expansion_is_linear_in_structure(write):
    # Not a timing test: E is a view, so later experiments never copy earlier ones.
    body = HEAD + "---\nx: 0\n" + "".join("---\nx: parse E[-1].x + 1\n" for _ in range(300))
    exps = expand(write, body)
    assert exps[-1].values["x"] == 300


# --- keys, overrides and paths that hostile or mistaken input brings ----------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        pytest.param(HEAD + "? [1, 2]\n: x\n", 3, "a list or mapping cannot be a mapping key", id="list-key"),
        pytest.param(HEAD + "m: {[1]: 2}\n", 3, "a list or mapping cannot be a mapping key", id="flow-list-key"),
        pytest.param(HEAD + "? {a: 1}\n: x\n", 3, "a list or mapping cannot be a mapping key", id="mapping-key"),
        pytest.param(HEAD + "t:\n  1: one\n  true: yes\n", 5,
                     "keys '1' (line 4) and 'true' are different in YAML but the same key in Python", id="one-true"),
        pytest.param(HEAD + "t: {0: a, false: b}\n", 3, "keys '0' (line 3) and 'false' are different in YAML",
                     id="zero-false"),
        pytest.param(HEAD + "t: {1: a, 1.0: b}\n", 3, "keys '1' (line 3) and '1.0' are different in YAML",
                     id="int-float"),
        pytest.param(HEAD + "t: {1: a, 0x1: b}\n", 3, "key '0x1' is the same key as '1' on line 3", id="int-hex"),
        pytest.param(HEAD + "t: {a: 1, 'a': 2}\n", 3, "key 'a' appears twice in one mapping (first on line 3)",
                     id="quoted-duplicate"),
        pytest.param(HEAD + "base: &b {x: 1}\nt:\n  <<: *b\n  y: 1\n  y: 2\n", 7, "key 'y' appears twice",
                     id="duplicate-beside-merge"),
    ],
)
def test_key_errors(write, text, line, fragment):
    with pytest.raises(ConfigError) as info:
        expand(write, text + "---\nName: a\n")
    err = info.value
    assert err.line == line and fragment in str(err) and str(err).startswith(f"{err.file}:{line}: ")


def test_merge_keys_are_not_duplicates(write):
    text = HEAD + "base: &b {lr: 0.1, momentum: 0.9}\nopt:\n  <<: *b\n  lr: 0.5\n---\nName: a\n"
    (exp,) = expand(write, text)
    assert exp.values["opt"] == {"lr": 0.5, "momentum": 0.9}


def test_yaml_keys_of_different_types_that_python_tells_apart_are_fine(write):
    (exp,) = expand(write, HEAD + "t: {1: a, '1': b, 'true': c, 1.5: d}\n---\nName: a\n")
    assert exp.values["t"] == {1: "a", "1": "b", "true": "c", 1.5: "d"}


@pytest.mark.parametrize(
    ("argument", "fragment"),
    [
        pytest.param("+x={a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], " + ", ".join(
            f"b{i}: &b{i} [{', '.join(['*a' if i == 0 else f'*b{i - 1}'] * 10)}]" for i in range(6)) + "}",
            "aliases expand this value to", id="billion-laughs"),
        pytest.param("+x=" + "[" * 5000 + "]" * 5000, "nested more than 100 levels deep", id="deep-value"),
        pytest.param("+a.b.c=" + "[" * 98 + "]" * 98, "it is nested more than 100 levels deep", id="deep-with-path"),
        pytest.param("+" + ".".join(["k"] * 150) + "=1", "the key path has 150 parts", id="long-path"),
        pytest.param("+x=" + "9" * 5000, "an integer written with 5,000 characters is too large", id="huge-int"),
    ],
)
def test_overrides_beyond_the_limits(write, argument, fragment):
    with pytest.raises(UsageError) as info:
        expand(write, HEAD + "---\nName: a\n", overrides=[argument])
    assert info.value.option == argument and fragment in str(info.value) and info.value.hint


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        pytest.param("Module: m\nYamlLog: folder\n---\nName: a\n", 2, ("YamlLog",), "folder is a folder, not a file",
                     id="log-folder-in-defaults"),
        pytest.param(HEAD + "---\nName: a\nYamlLog: /proc/x/log.yaml\n", 5, ("YamlLog",),
                     "/proc/x/log.yaml is under /proc", id="log-under-proc"),
        pytest.param(HEAD + "---\nName: a\nYamlLog: plain.txt/log.yaml\n", 5, ("YamlLog",),
                     "plain.txt is a file, not a folder", id="log-parent-is-a-file"),
        pytest.param("Global: {queue: folder}\n" + HEAD + "---\nName: a\n", 1, ("Global", "queue"),
                     "folder is a folder, not a file", id="queue-folder"),
        pytest.param("Global:\n  queue: /sys/q.yaml\n" + HEAD + "---\nName: a\n", 2, ("Global", "queue"),
                     "/sys/q.yaml is under /sys", id="queue-under-sys"),
    ],
)
def test_logs_and_queues_that_cannot_be_written(write, workdir, text, line, key, fragment):
    (workdir / "folder").mkdir()
    (workdir / "plain.txt").write_text("x")
    with pytest.raises(ConfigError) as info:
        expand(write, text)
    err = info.value
    assert err.line == line and err.key == key and fragment in str(err)
    assert "give the path of a file in a folder you can write to" in str(err)
    if key == ("YamlLog",):
        assert err.experiment == 0 and err.name == "a"


def test_skipped_experiments_need_no_writable_log(write):
    (exp,) = expand(write, "Module: m\nYamlLog: /proc/x.yaml\n---\nName: skip\n")
    assert exp.skipped
