"""Fancy parsing: every example of the original README, scopes, E, solve, and error messages."""

from __future__ import annotations

import random

import pytest

from cool_runner import ConfigError, Expander, ExpressionError, load_study
from cool_runner.errors import EvalFailure
from cool_runner.run.solve import dotted_chains, solve
from cool_runner.study.expressions import Compiler
from cool_runner.study.mapping import Exp

HEAD = "Module: m\nYamlLog: log.yaml\n"


def expand(write, text: str, overrides=()):
    path = write("experiment.yaml", text)
    study = load_study(str(path), overrides)
    return [e.values for e in Expander(study, rng=random.Random(0), host="box").expand()]


def test_parse_joins_with_scope_values(write):
    (exp,) = expand(write, HEAD + "---\ndirectory: runs\nName: n\nodd_name: parse '/'.join([directory, Name])\n")
    assert exp["odd_name"] == "runs/n"


def test_parse_half_of_previous_experiment(write):
    exps = expand(write, HEAD + "---\nsparsity: 0.8\n---\nsparsity: parse 0.5 * E[-1].sparsity\n")
    assert exps[1]["sparsity"] == pytest.approx(0.4)


def test_nested_access_by_attribute_and_item(write):
    text = HEAD + """---
pruning_config:
   odd_config:
      sparsity: 0.5
---
sparsity: parse E[-1].pruning_config.odd_config.sparsity
pruning_config:
   sparsity: parse E[-1]['pruning_config']['odd_config']['sparsity']
"""
    exps = expand(write, text)
    assert exps[1]["sparsity"] == 0.5
    assert exps[1]["pruning_config"]["sparsity"] == 0.5


def test_parent_levels_are_visible_and_deeper_wins(write):
    text = HEAD + "---\nabc: 1\nnested:\n   abc: 2\n   nested2:\n      test: parse abc\n   top: parse abc\n"
    (exp,) = expand(write, text)
    assert exp["nested"]["nested2"]["test"] == 2
    assert exp["nested"]["top"] == 2


def test_fstring_with_previous_name(write):
    text = HEAD + 'Name: test\n---\nName: test\n---\nmodel: VGG\nName: test2\ndirectory: parse f"{Name}/{E[-1].Name}/{model}"\n'
    assert expand(write, text)[1]["directory"] == "test2/test/VGG"


def test_lists_index_and_previous(write):
    text = HEAD + "list: [1, 2, 3]\n---\nlist: [7, 8, 9]\n---\nlist: [2, 3, 4]\nnumber2: parse list[0]\nnumber3: parse E[-1].list[2]\n"
    exp = expand(write, text)[1]
    assert (exp["number2"], exp["number3"]) == (2, 9)


def test_previous_list_from_defaults(write):
    text = HEAD + "list: [1, 2, 3]\n---\nName: a\n---\nlist: [2, 3, 4]\nnumber2: parse list[0]\nnumber3: parse E[-1].list[2]\n"
    exp = expand(write, text)[1]
    assert (exp["number2"], exp["number3"]) == (2, 3)


def test_nested_plus_one(write):
    (exp,) = expand(write, HEAD + "---\nnested:\n   test: 1\nincremented: parse nested.test + 1\n")
    assert exp["incremented"] == 2


def test_default_config_parse_resolves_at_the_end(write):
    (exp,) = expand(write, HEAD + "test1: parse test3 - 1\n---\ntest2: 5\ntest3: parse test2 - 1\n")
    assert (exp["test3"], exp["test1"]) == (4, 3)
    assert list(exp)[:3] == ["test2", "test3", "Module"]


def test_wrong_order_is_an_error(write):
    with pytest.raises(ExpressionError) as info:
        expand(write, HEAD + "---\ntest3: parse test2 - 1\ntest2: 5\n")
    err = info.value
    assert (err.key, err.line, err.experiment, err.kind) == (("test3",), 4, 0, "parse")
    assert "NameError" in str(err) and "move test2 above this key" in str(err)


def test_default_only_name_is_an_error_with_advice(write):
    with pytest.raises(ExpressionError) as info:
        expand(write, HEAD + "test1: 1\n---\ntest2: parse test1\n")
    message = str(info.value)
    assert "only set in the default config" in message
    assert "redefine test1 in this experiment" in message


def test_values_in_lists_are_parsed(write):
    (exp,) = expand(write, HEAD + "---\nlr: 0.1\nschedule: [parse lr, parse lr / 10, {at: parse lr * 100}]\n")
    assert exp["schedule"] == [0.1, pytest.approx(0.01), {"at": 10.0}]


def test_comprehensions_see_the_scope(write):
    (exp,) = expand(write, HEAD + "---\nlr: 0.5\nlrs: parse [lr * i for i in range(3)]\n")
    assert exp["lrs"] == [0.0, 0.5, 1.0]


def test_E_by_name_and_from_start(write):
    text = HEAD + "---\nName: base\nx: 1\n---\nName: mid\nx: 2\n---\nName: last\na: parse E['base'].x\nb: parse E[0].x\nc: parse E[-2].x\nd: parse len(E)\n"
    exp = expand(write, text)[2]
    assert (exp["a"], exp["b"], exp["c"], exp["d"]) == (1, 1, 1, 2)


def test_skipped_experiments_stay_in_history(write):
    exps = expand(write, HEAD + "---\nName: skip\nx: 4\n---\nx: parse E[-1].x + 1\n")
    assert exps[0]["Name"] == "skip" and exps[1]["x"] == 5


def test_E_is_read_only(write):
    with pytest.raises(ExpressionError, match="read-only"):
        expand(write, HEAD + "---\nx: 1\n---\ny: parse setattr(E[-1], 'x', 2)\n")


def test_value_taken_from_E_is_a_copy(write):
    exps = expand(write, HEAD + "---\nopt: {lr: 1}\n---\nopt: parse E[-1].opt\n")
    assert isinstance(exps[1]["opt"], Exp) and exps[1]["opt"] == {"lr": 1}
    exps[1]["opt"]["lr"] = 5
    assert exps[0]["opt"]["lr"] == 1


def test_history_resets_every_global_repetition(write):
    exps = expand(write, "Global: {repeat: 2}\n" + HEAD + "---\nn: parse len(E)\n---\nn: parse len(E)\n")
    assert [e["n"] for e in exps] == [0, 1, 0, 1]


def test_plain_strings_are_never_evaluated(write):
    (exp,) = expand(write, HEAD + "---\nmodel: max\ncmd: __import__('os')\nnote: 'parse'\nlr: 1e-3\nbig: 5E+2\nq: '1e-3'\n")
    assert exp["model"] == "max" and exp["cmd"] == "__import__('os')" and exp["note"] == "parse"
    assert exp["lr"] == 0.001 and exp["big"] == 500.0 and exp["q"] == "1e-3"


def test_runner_values_are_in_scope(write):
    (exp,) = expand(write, HEAD + "---\nName: n\ndir: parse f'{Name}/{RND_IDX}/{REP}/{HOST}'\n")
    assert exp["dir"] == f"n/{exp['RND_IDX']}/0/box"


@pytest.mark.parametrize(
    ("body", "key", "fragment", "hint"),
    [
        pytest.param("x: parse 1 +", ("x",), "SyntaxError", "Python syntax", id="syntax"),
        pytest.param("x: parse 1 / 0", ("x",), "ZeroDivisionError: division by zero", None, id="zero"),
        pytest.param("x: parse E[-1].y", ("x",), "IndexError: E is empty", None, id="empty-history"),
        pytest.param("x: parse E['nope']", ("x",), "no earlier experiment is named 'nope'", None, id="unknown-name"),
        pytest.param("a: {b: parse missing}", ("a", "b"), "NameError: name 'missing' is not defined", None,
                     id="unknown-variable"),
        pytest.param("a: {b: [1, parse 1/0]}", ("a", "b", 1), "ZeroDivisionError", None, id="in-list"),
    ],
)
def test_parse_errors_name_file_experiment_key(write, body, key, fragment, hint):
    with pytest.raises(ExpressionError) as info:
        expand(write, HEAD + "---\nName: wrn-a\n" + body + "\n")
    err = info.value
    assert err.key == key and err.experiment == 0 and err.name == "wrn-a" and err.line == 5
    assert err.file.endswith("experiment.yaml")
    message = str(err)
    assert message.startswith(f"{err.file}:5: experiment 0 (wrn-a): ")
    assert fragment in message
    if hint:
        assert hint in message


def test_error_in_default_config_points_at_its_line(write):
    with pytest.raises(ExpressionError) as info:
        expand(write, HEAD + "bad: parse nothing_here\n---\nName: a\n")
    assert info.value.line == 3 and info.value.key == ("bad",)


def test_solve_imports_dotted_names(write):
    compiler = Compiler()
    assert solve("math.sqrt", [Exp()], compiler)(16) == 4
    assert solve("collections.abc.Mapping", [Exp()], compiler).__name__ == "Mapping"
    assert solve("os.path.join(root, 'x')", [Exp(root="/r")], compiler) == "/r/x"
    with pytest.raises(EvalFailure, match="NameError"):
        solve("no_such_module_xyz.thing", [Exp()], compiler)


def test_dotted_chains():
    import ast

    tree = ast.parse("a.b.c(d.e, f) + g.h[1].i", mode="eval")
    assert dotted_chains(tree) == [["a", "b", "c"], ["d", "e"], ["g", "h"]]


def test_solve_recipes_stay_strings_while_parsing(write):
    path = write("experiment.yaml", HEAD + "---\nopt: solve math.sqrt\nnested: {fn: solve math.floor}\n")
    (experiment,) = Expander(load_study(str(path))).expand()
    assert experiment.values["opt"] == "solve math.sqrt"
    assert experiment.solves == [("opt",), ("nested", "fn")]


def test_config_error_is_not_an_expression_error(write):
    with pytest.raises(ConfigError) as info:
        expand(write, HEAD + "---\nRepeat: parse 2\n")
    assert not isinstance(info.value, ExpressionError)
    assert "Repeat must be a whole number" in str(info.value)
