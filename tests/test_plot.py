"""filter.py --plot: the figure the code builds (lines, bands, labels, legend) and the files it writes."""

from __future__ import annotations

import io
import statistics
import sys
import xml.etree.ElementTree as ET

import matplotlib.image
import pytest
from conftest import run_script
from study_data import EPOCHS, NAMES, REPEATS, SPARSITIES, study_records, write_log

from cool_runner import MissingPackage, UsageError
from cool_runner.cli import filter_main
from cool_runner.logs.plot import figure_bytes, make_figure

SVG = "{http://www.w3.org/2000/svg}"


def labelled(ax):
    """The lines that stand for a group (matplotlib names helper lines with a leading underscore)."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def legend_texts(fig):
    (legend,) = fig.legends
    return [text.get_text() for text in legend.get_texts()]


def test_scalar_y_mean_and_band_per_group():
    records = study_records()
    fig = make_figure(records, "ACC", x="sparsity", group_by=["Name"])
    (ax,) = fig.axes
    lines = labelled(ax)
    assert [line.get_label() for line in lines] == list(NAMES)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("sparsity", "ACC")
    assert legend_texts(fig) == ["vgg (n=12)", "res (n=12)", "wrn (n=13)"]  # the failed wrn run is in its group
    assert fig.legends[0].get_title().get_text() == "Name"
    for name, line in zip(NAMES, lines):
        assert list(line.get_xdata()) == list(SPARSITIES)  # the failed run has no ACC: no point at 0.9
        for sparsity, mean in zip(SPARSITIES, line.get_ydata()):
            values = [r["ACC"] for r in records if r["Name"] == name and r["sparsity"] == sparsity]
            assert len(values) == REPEATS and mean == pytest.approx(statistics.mean(values))
    # One ± 1 std band per group, spanning from the lowest mean - std to the highest mean + std.
    assert len(ax.collections) == len(NAMES)
    vgg = [[r["ACC"] for r in records if r["Name"] == "vgg" and r["sparsity"] == s] for s in SPARSITIES]
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(min(statistics.mean(v) - statistics.stdev(v) for v in vgg))
    assert band.max() == pytest.approx(max(statistics.mean(v) + statistics.stdev(v) for v in vgg))


def test_list_y_is_drawn_against_its_index_or_another_list():
    records = study_records()
    fig = make_figure(records, "LOSS_HISTORY", group_by=["Name"])
    (ax,) = fig.axes
    lines = labelled(ax)
    assert len(lines) == len(NAMES) and ax.get_xlabel() == "index in LOSS_HISTORY"
    res = [r["LOSS_HISTORY"] for r in records if r["Name"] == "res"]
    assert list(lines[1].get_xdata()) == list(range(EPOCHS))
    assert list(lines[1].get_ydata()) == pytest.approx([statistics.mean(column) for column in zip(*res)])
    assert legend_texts(fig) == ["vgg (n=12)", "res (n=12)", "wrn (n=13)"]

    fig = make_figure(records, "LOSS_HISTORY", x="EPOCHS", group_by=["Name", "sparsity"])
    (ax,) = fig.axes
    assert len(labelled(ax)) == len(NAMES) * len(SPARSITIES) and ax.get_xlabel() == "EPOCHS"
    assert list(labelled(ax)[0].get_xdata()) == list(range(1, EPOCHS + 1))
    assert legend_texts(fig)[:2] == ["vgg, 0 (n=3)", "vgg, 0.3 (n=3)"]
    assert fig.legends[0].get_title().get_text() == "Name, sparsity"


def test_curves_of_different_lengths_average_what_each_index_has():
    records = [{"g": "a", "h": [1.0, 2.0, 3.0]}, {"g": "a", "h": [3.0, 4.0]}, {"g": "a", "h": [5.0, "n/a"]}]
    (line,) = labelled(make_figure(records, "h", group_by=["g"]).axes[0])
    assert list(line.get_xdata()) == [0, 1, 2] and list(line.get_ydata()) == [3.0, 3.0, 3.0]


def test_several_keys_one_panel_each_and_one_legend():
    fig = make_figure(study_records(), ["ACC", "LOSS_HISTORY"], group_by=["Name"])
    assert [ax.get_ylabel() for ax in fig.axes] == ["ACC", "LOSS_HISTORY"]
    assert fig.axes[0].get_xlabel() == "record"  # no --x: the record's place in the kept order
    assert all(len(labelled(ax)) == len(NAMES) for ax in fig.axes) and len(fig.legends) == 1


def test_text_x_values_become_categories_in_order_of_appearance():
    fig = make_figure(study_records(), "ACC", x="Name", group_by=["sparsity"])
    (ax,) = fig.axes
    fig.draw_without_rendering()
    ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert ticks == list(NAMES) and len(labelled(ax)) == len(SPARSITIES)


def test_twenty_groups_stay_apart_and_the_legend_beside_the_axes():
    records = [{"g": f"group-{i}", "x": x, "y": i + x / 10 + rep / 100} for i in range(20) for x in range(5)
               for rep in range(2)]
    fig = make_figure(records, "y", x="x", group_by=["g"])
    (ax,) = fig.axes
    lines = labelled(ax)
    assert len(lines) == 20 and len(legend_texts(fig)) == 20
    assert len({(line.get_color(), line.get_linestyle(), line.get_marker()) for line in lines}) == 20
    fig.draw_without_rendering()
    legend, axes = fig.legends[0].get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes.x1 and legend.y0 >= 0 and legend.x1 <= fig.bbox.x1  # nothing overlaps or is cut


@pytest.mark.parametrize(
    ("y", "x", "fragment"),
    [
        pytest.param("NOPE", None, "no record has a number at NOPE (keys in the records: Name, sparsity", id="absent"),
        pytest.param("LOSS_HISTORY", "sparsity", "LOSS_HISTORY holds lists, so --x sparsity must name a list",
                     id="list-y-scalar-x"),
        pytest.param("ACC", "EPOCHS", "--x EPOCHS holds lists but ACC does not", id="scalar-y-list-x"),
        pytest.param("Name", None, "no record has a number at Name", id="text-y"),
    ],
)
def test_what_cannot_be_drawn_is_a_usage_error(y, x, fragment):
    with pytest.raises(UsageError) as info:
        make_figure(study_records(), y, x=x)
    assert info.value.option == "--plot" and fragment in str(info.value)


def test_records_left_out_are_reported(caplog):
    make_figure(study_records(), "ACC", x="sparsity")
    assert "plot ACC: 1 record(s) without a number at ACC and sparsity are left out" in caplog.text


def test_missing_matplotlib_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what Python does when a package is not installed
    with pytest.raises(MissingPackage) as info:
        make_figure(study_records(), "ACC")
    assert (info.value.package, info.value.extra) == ("matplotlib", "plot")
    assert str(info.value) == ("--plot needs matplotlib, which is not installed (pip install -e '.[plot]' in the "
                               "cool-runner folder, or pip install matplotlib)")


# --- through filter.py -------------------------------------------------------------------------------------


@pytest.fixture
def log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return write_log(tmp_path / "log.yaml", study_records()).name


def test_png_file_is_a_real_picture(log, tmp_path, capsys):
    assert filter_main([log, "--plot", "ACC", "--x", "sparsity", "--group-by", "Name"]) == 0
    out, err = capsys.readouterr()
    path = out.strip()
    assert path.startswith("filtered/plot_") and path.endswith(".png")
    image = matplotlib.image.imread(tmp_path / path)
    height, width, _ = image.shape
    assert width >= 1000 and height >= 500
    white = (image[:, :, :3] > 0.98).all(axis=2)
    assert 0.02 < 1 - white.mean() < 0.6  # drawn on, but not a solid block
    colours = {tuple(pixel) for pixel in (image[::4, ::4, :3] * 255).astype(int).reshape(-1, 3)}
    assert len(colours) > 50  # lines, bands, text and their anti-aliasing
    assert "loaded 37 record(s), kept 37" in err


def test_filters_and_sorts_apply_before_drawing(log, capsys):
    assert filter_main([log, "--filter", "lambda e: e.Name != 'wrn'", "--sort", "lambda e: e.Name",
                        "--plot", "ACC", "--x", "sparsity", "--group-by", "Name", "--format", "svg", "-o",
                        "plot.svg"]) == 0
    assert capsys.readouterr().out.strip() == "plot.svg"
    texts = [t.text for t in ET.parse("plot.svg").iter(f"{SVG}text") if t.text]
    assert "res (n=12)" in texts and "vgg (n=12)" in texts and not any("wrn" in t for t in texts)
    assert texts.index("res (n=12)") < texts.index("vgg (n=12)")  # groups in the sorted order
    assert "sparsity" in texts and "ACC" in texts


def test_pdf_and_stdout(log, capsysbinary):
    assert filter_main([log, "--plot", "LOSS_HISTORY", "--format", "pdf", "-o", "curves.pdf"]) == 0
    with open("curves.pdf", "rb") as handle:
        data = handle.read()
    assert data.startswith(b"%PDF-") and len(data) > 5000
    capsysbinary.readouterr()
    assert filter_main([log, "--plot", "ACC", "--format", "svg", "-o", "-"]) == 0
    assert b"<svg" in capsysbinary.readouterr().out


def test_unknown_figure_format():
    fig = make_figure(study_records(), "ACC", x="sparsity", group_by=["Name"])
    with pytest.raises(UsageError) as info:
        figure_bytes(fig, "gif")
    assert info.value.option == "--format" and "use png, svg or pdf" in str(info.value)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["--format", "pdf"], "--format: pdf is for plots: name the key to draw", id="format-no-plot"),
        pytest.param(["--x", "sparsity"], "--x: only used with --plot", id="x-no-plot"),
        pytest.param(["--plot", "ACC", "--format", "csv"], "--plot: a figure cannot be written as csv",
                     id="plot-as-csv"),
        pytest.param(["--plot", "ACC", "--group-by", "Name", "--agg", "ACC"],
                     "--agg: a png plot has no table for the aggregates", id="agg-on-png"),
        pytest.param(["--plot", "NOPE"], "--plot: no record has a number at NOPE", id="absent-key"),
    ],
)
def test_bad_plot_arguments_exit_2_with_one_line(log, capsys, args, fragment):
    assert filter_main([log, *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1 and err.startswith("filter.py: error: ")


def test_without_matplotlib_filter_exits_2_with_the_pip_command(log, tmp_path):
    blocker = tmp_path / "blocked" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('matplotlib is blocked for this test')\n")
    result = run_script("filter.py", log, "--plot", "ACC", cwd=tmp_path,
                        env={"PYTHONPATH": str(tmp_path / "blocked")})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("filter.py: error: --plot needs matplotlib, which is not installed "
                                     "(pip install -e '.[plot]' in the cool-runner folder, or pip install matplotlib)")


def test_png_read_back_matches_the_figure_size():
    fig = make_figure(study_records(), "ACC", x="sparsity", group_by=["Name"])
    image = matplotlib.image.imread(io.BytesIO(figure_bytes(fig, "png")))
    width, height = fig.get_size_inches() * 150
    assert image.shape[:2] == (int(height), int(width))


def test_plot_keys_that_took_the_log_file_are_refused_with_the_fix(log, capsys):
    assert filter_main(["--plot", "ACC", log]) == 2
    err = capsys.readouterr().err
    assert "--plot took 'ACC' and 'log.yaml' as its values" in err and "--plot=ACC log.yaml" in err
