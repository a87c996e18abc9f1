"""Fancy parsing: every example of the original README, scopes, E, solve, and error messages."""

from __future__ import annotations

import random

import pytest

from cool_runner import ConfigError, Expander, ExpressionError, load_study
from cool_runner.errors import CycleError, EvalFailure
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


def test_a_key_can_use_one_written_below_it(write):
    (exp,) = expand(write, HEAD + "---\ntest3: parse test2 - 1\ntest2: 5\n")
    assert (exp["test3"], exp["test2"]) == (4, 5)
    assert list(exp)[:2] == ["test3", "test2"]


def test_an_experiment_can_use_a_key_only_the_defaults_set(write):
    (exp,) = expand(write, HEAD + "test1: 1\n---\ntest2: parse test1\n")
    assert exp["test2"] == 1


def test_defaults_and_experiment_use_each_other_in_both_directions(write):
    text = HEAD + "base: 10\nscaled: parse factor * base\n---\nfactor: 3\ntotal: parse scaled + base\n"
    (exp,) = expand(write, text)
    assert (exp["scaled"], exp["total"]) == (30, 40)


def test_chains_resolve_on_demand_in_any_order(write):
    (exp,) = expand(write, HEAD + "---\na: parse b + 1\nb: parse c + 1\nc: parse d + 1\nd: 0\n")
    assert (exp["a"], exp["b"], exp["c"], exp["d"]) == (3, 2, 1, 0)


def test_parent_key_below_and_deeper_key_below(write):
    text = HEAD + """---
nested:
   deep:
      from_parent: parse top * 2
      from_middle: parse mid + 1
   mid: parse top + 1
abc: 1
top: parse abc + 10
"""
    (exp,) = expand(write, text)
    assert exp["nested"]["mid"] == 12 and exp["nested"]["deep"]["from_parent"] == 22
    assert exp["nested"]["deep"]["from_middle"] == 13


def test_deepest_level_wins_even_when_written_later(write):
    text = HEAD + "---\nabc: 1\nnested:\n   test: parse abc\n   abc: parse 1 + 1\n"
    (exp,) = expand(write, text)
    assert exp["nested"]["test"] == 2


def test_a_key_never_sees_itself_but_sees_the_same_name_higher_up(write):
    text = HEAD + "lr: 0.1\n---\noptimizer:\n   lr: parse lr * 2\n   wd: parse optimizer.lr / 10\n"
    (exp,) = expand(write, text)
    assert exp["optimizer"]["lr"] == 0.2 and exp["optimizer"]["wd"] == pytest.approx(0.02)


def test_mappings_with_pending_values_resolve_when_read(write):
    text = HEAD + """nested:
   test: parse offset * 2
---
incremented: parse nested.test + 1
whole: parse nested
keys: parse sorted(nested)
offset: 5
"""
    (exp,) = expand(write, text)
    assert exp["incremented"] == 11 and exp["whole"] == {"test": 10} and exp["keys"] == ["test"]
    assert isinstance(exp["whole"], Exp)


def test_lists_with_pending_values_resolve_when_read(write):
    (exp,) = expand(write, HEAD + "---\nfirst: parse items[1] * 2\nitems: [1, parse base + 1]\nbase: 4\n")
    assert exp["first"] == 10 and exp["items"] == [1, 5]


def test_each_value_is_evaluated_once(write):
    text = HEAD + "---\ncalls: []\nx: parse calls.append(1) or len(calls)\ny: parse x + x\nz: parse x\n"
    (exp,) = expand(write, text)
    assert exp["calls"] == [1] and (exp["x"], exp["y"], exp["z"]) == (1, 2, 1)


def test_global_rep_is_usable_like_rep(write):
    text = "Global: {repeat: 2}\n" + HEAD + "---\nRepeat: 2\nseed: parse 10 * GLOBAL_REP + REP\n"
    assert [e["seed"] for e in expand(write, text)] == [0, 1, 10, 11]
    assert [e["GLOBAL_REP"] for e in expand(write, text)] == [0, 0, 1, 1]


@pytest.mark.parametrize(
    ("body", "key", "cycle", "line", "fragment"),
    [
        pytest.param("a: parse b\nb: parse a\n", ("a",), (("a",), ("b",), ("a",)), 5, "a -> b -> a", id="two"),
        pytest.param("a: parse b\nb: parse c\nc: parse a + 1\n", ("a",), (("a",), ("b",), ("c",), ("a",)), 5,
                     "a -> b -> c -> a", id="three"),
        pytest.param("x: 1\nn:\n  p: parse n.q\n  q: parse n.p\n", ("n", "p"), (("n", "p"), ("n", "q"), ("n", "p")),
                     7, "n.p -> n.q -> n.p", id="nested"),
        pytest.param("v: parse w\n", ("v",), (("v",), ("w",), ("v",)), 5, "v -> w -> v", id="through-defaults"),
        pytest.param("lst: [1, 'parse lst[0]']\n", ("lst", 1), (("lst", 1), ("lst", 1)), 5, "lst[1] -> lst[1]",
                     id="own-list"),
    ],
)
def test_cycles_are_errors_that_print_the_cycle(write, body, key, cycle, line, fragment):
    with pytest.raises(CycleError) as info:
        expand(write, HEAD + "w: parse v\n---\n" + body)
    err = info.value
    assert (err.key, err.cycle, err.line, err.experiment) == (key, cycle, line, 0)
    assert err.file.endswith("experiment.yaml")
    message = str(err)
    assert message.startswith(f"{err.file}:{line}: experiment 0: ") and f"circular reference {fragment}" in message
    assert "line" in message.split("(", 1)[1]


def test_cycle_hint_names_the_line_of_every_key(write):
    with pytest.raises(CycleError) as info:
        expand(write, HEAD + "---\nName: c\na: parse b\nb: parse a\n")
    assert "a on line 5, b on line 6" in str(info.value)


def test_an_error_in_a_needed_key_names_that_key(write):
    with pytest.raises(ExpressionError) as info:
        expand(write, HEAD + "---\nName: n\na: parse b + 1\nb: parse 1 / 0\n")
    assert info.value.key == ("b",) and info.value.line == 6 and "ZeroDivisionError" in str(info.value)


def test_unknown_name_suggests_close_keys(write):
    with pytest.raises(ExpressionError) as info:
        expand(write, HEAD + "---\nlearning_rate: 0.1\nx: parse learning_rat * 2\n")
    assert "NameError" in str(info.value) and "did you mean learning_rate?" in str(info.value)


def test_a_value_that_uses_only_itself_says_so(write):
    with pytest.raises(ExpressionError) as info:
        expand(write, HEAD + "---\nx: parse x + 1\n")
    assert "a value cannot use itself" in str(info.value)


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


# --- expressions that would hang the expansion or produce what cannot be kept ------------------------------

UNPRINTABLE = "(_ for _ in ()).throw(type('Bad', (Exception,), {'__str__': lambda self: 1 / 0}))"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("expression", "key", "fragment", "hint"),
    [
        pytest.param("10**10**7", ("x",), "OverflowError: the result of 10 ** 10000000 would have about 33,219,281 bits",
                     "integers may have at most 10,000 bits", id="power-tower"),
        pytest.param("2**10**6", ("x",), "OverflowError: the result of 2 ** 1000000 would have about 1,000,000 bits",
                     "10,000 bits", id="two-to-the-million"),
        pytest.param("pow(3, 10**6)", ("x",), "OverflowError: the result of 3 ** 1000000", None, id="pow-builtin"),
        pytest.param("1 << 10**6", ("x",), "OverflowError: the result of 1 << 1000000 would have 1,000,001 bits", None,
                     id="shift"),
        pytest.param("(2**9000) * (2**9000)", ("x",), "OverflowError: the product would have about 18,002 bits", None,
                     id="product"),
        pytest.param("[0] * 10**10", ("x",), "MemoryError: repeating a list of length 1 10,000,000,000 times", None,
                     id="list-repeat"),
        pytest.param("'ab' * 10**9", ("x",), "MemoryError: repeating a str of length 2 1,000,000,000 times", None, id="str-repeat"),
        pytest.param("[1, 2**9999 + 2**9999]", ("x",), "an integer of 10,001 bits is too large (at [1] inside it)",
                     None, id="int-in-list"),
        pytest.param("(l := [], l.append(l), l)[2]", ("x",),
                     "the result cannot be kept: a list that contains itself cannot be stored (at [0] inside it)",
                     "build a copy instead", id="cycle"),
        pytest.param("eval('[' * 100 + ']' * 100)", ("x",), "nested more than 100 levels deep (99 levels inside it)",
                     "at most 100 levels", id="deep"),
        pytest.param("(lambda f: f(f, 30))(lambda g, n: [g(g, n - 1)] * 2 if n else 0)", ("x",),
                     "it holds more than 1,000,000 values", "at most 1,000,000 values", id="shared-blowup"),
        pytest.param(UNPRINTABLE, ("x",), "Bad: <unprintable>", None, id="unprintable-error"),
    ],
)
def test_parse_results_beyond_the_limits(write, expression, key, fragment, hint):
    with pytest.raises(ExpressionError) as info:
        expand(write, HEAD + f'---\nName: wrn-a\nx: "parse {expression}"\n')
    err = info.value
    assert err.key == key and err.experiment == 0 and err.name == "wrn-a" and err.line == 5
    assert str(err).startswith(f"{err.file}:5: experiment 0 (wrn-a): x: parse {expression}: ")
    assert fragment in str(err)
    if hint:
        assert hint in str(err)


def test_depth_of_a_parse_result_counts_from_the_experiment(write):
    nested = "a:\n  b:\n    c: parse eval('[' * 97 + ']' * 97)\n"
    assert expand(write, HEAD + "---\n" + nested)[0]["a"]["b"]["c"] == eval("[" * 97 + "]" * 97)
    with pytest.raises(ExpressionError, match="nested more than 100 levels"):
        expand(write, HEAD + "---\n" + nested.replace("97", "98"))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("2 ** 10", 1024, id="power"),
        pytest.param("2 ** -1", 0.5, id="negative-power"),
        pytest.param("(-2) ** 3", -8, id="negative-base"),
        pytest.param("2.0 ** 0.5", 2.0 ** 0.5, id="float-power"),
        pytest.param("pow(2, 10, 1000)", 24, id="modular-pow"),
        pytest.param("pow(2, 9000).bit_length()", 9001, id="large-but-allowed"),
        pytest.param("1 << 5", 32, id="shift"),
        pytest.param("3 * 4", 12, id="product"),
        pytest.param("0.5 * 3", 1.5, id="float-product"),
        pytest.param("'ab' * 3", "ababab", id="str-repeat"),
        pytest.param("[1] * 3", [1, 1, 1], id="list-repeat"),
        pytest.param("3 * [1]", [1, 1, 1], id="repeat-on-the-left"),
        pytest.param("True * 3", 3, id="bool"),
        pytest.param("0 ** 10**12", 0, id="zero-base"),
        pytest.param("1 ** 10**12", 1, id="one-base"),
        pytest.param("[x * 2 for x in range(3)]", [0, 2, 4], id="inside-comprehension"),
    ],
)
def test_guarded_arithmetic_gives_the_usual_results(write, expression, expected):
    (exp,) = expand(write, HEAD + f'---\nx: "parse {expression}"\n')
    assert exp["x"] == expected and type(exp["x"]) is type(expected)
