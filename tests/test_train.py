"""The PyTorch training module and the three study files (CPU, synthetic data; skipped without torch)."""

from __future__ import annotations

import io
import os
import pickle
import shlex
import subprocess
import sys
import tarfile

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from conftest import ROOT, read_log  # noqa: E402

from cool_runner.study.mapping import Exp  # noqa: E402
from modules.train import data as datasets  # noqa: E402
from modules.train.models import build_model, count_parameters  # noqa: E402
from modules.train.pruning import apply_masks, density, magnitude_masks  # noqa: E402
from modules.train.train import device_from_argv, hardware_flags, learning_rate, main  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a machine shared with other test runs, spinning worker threads make small models
    several times slower, and these tests must stay far from their timeout."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("name", "paper"),
    [
        pytest.param("resnet20", 0.27e6, id="resnet20"),
        pytest.param("resnet32", 0.46e6, id="resnet32"),
        pytest.param("resnet56", 0.85e6, id="resnet56"),
        pytest.param("wrn16-8", 11.0e6, id="wrn16-8"),
        pytest.param("vgg19", 20.0e6, id="vgg19"),
    ],
)
def test_parameter_counts_match_the_papers(name, paper):
    assert count_parameters(build_model(name)) == pytest.approx(paper, rel=0.02)


@pytest.mark.parametrize("name", ["resnet20", "vgg11", "wrn10-1"])
def test_models_classify_cifar_shaped_batches(name):
    assert build_model(name)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", ["resnet20", "vgg11", "wrn10-2"])
def test_width_factor_scales_every_layer(name):
    narrow = build_model(name, width_factor=0.25)
    assert count_parameters(narrow) < count_parameters(build_model(name)) / 10  # most weights are width squared
    assert narrow(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="width_factor must be above 0"):
        build_model(name, width_factor=0)


@pytest.mark.parametrize("name", ["resnet21", "vgg12", "wrn15-2", "alexnet"])
def test_unknown_models(name):
    with pytest.raises(ValueError):
        build_model(name)


def test_magnitude_masks_are_global_exact_and_nested():
    model = build_model("resnet20")
    masks = magnitude_masks(model, 0.5)
    apply_masks(model, masks)
    assert density(model) == pytest.approx(0.5, abs=1e-5)
    kept = {name: float(mask.mean()) for name, mask in masks.items()}
    assert min(kept.values()) < 0.48 and max(kept.values()) > 0.6  # global: layers end at different densities
    deeper = magnitude_masks(model, 0.8, masks)
    assert all(bool((deeper[n] <= masks[n]).all()) for n in masks)  # pruned weights stay pruned
    with pytest.raises(ValueError):
        magnitude_masks(model, 1.0)


def test_learning_rate_schedule():
    exp = Exp.wrap({"optimizer": {"lr": 0.1}, "lr_schedule": {"boundaries": [2, 4], "values": [0.1, 0.01, 0.001]}})
    assert [learning_rate(exp, epoch, 0) for epoch in range(6)] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    exp.lr_schedule.unit = "step"
    assert learning_rate(exp, 0, 3) == 0.01
    assert learning_rate(Exp.wrap({"optimizer": {"lr": 0.3}}), 9, 9) == 0.3
    exp.lr_schedule["values"] = [0.1]
    with pytest.raises(ValueError, match="one value more than boundaries"):
        learning_rate(exp, 0, 0)


def test_hardware_flags():
    assert device_from_argv(["--device", "cpu", "--other", "x"]).type == "cpu"
    assert device_from_argv([]).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert hardware_flags(["--threads", "3", "--device", "cpu"]).threads == 3
    assert hardware_flags(["--lr", "1"]).threads is None
    for bad in ["0", "two", "-1"]:
        with pytest.raises(ValueError, match="--threads takes a whole number of at least 1"):
            hardware_flags([f"--threads={bad}"])


def test_augment_keeps_shape_and_content():
    images = datasets.synthetic(8, 1)[0].images
    out = datasets.augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert not torch.equal(out, images)


def small(**extra):
    """ResNet-20 at half width on a small synthetic set: 20 steps per epoch, a few seconds on one core."""
    return Exp.wrap({
        "Name": "t", "model": "resnet20", "width_factor": 0.5, "dataset": "synthetic",
        "synthetic": {"train_size": 640, "test_size": 256}, "batch_size": 32, "epochs": 2,
        "optimizer": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0005}, "seed": 0, **extra})


def test_short_training_learns_far_above_chance(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["run.py", "--device", "cpu"])
    exp = small()
    main(exp)
    assert exp.TRAIN_ACC > 0.6 and exp.BEST_ACC > 0.4  # chance is 0.1
    assert len(exp.TEST_ACC_HISTORY) == 2 and exp.STEPS == 40 and exp.DENSITY == 1.0


def test_pruned_weights_stay_zero_through_training(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["run.py", "--device", "cpu"])
    base = small(epochs=1, steps_per_epoch=3, save_model={1: str(tmp_path / "base.pt")})
    main(base)
    pruned = small(epochs=1, steps_per_epoch=5, sparsity=0.9, load_model=str(tmp_path / "base.pt"),
                   save_model={0: str(tmp_path / "start.pt"), 1: str(tmp_path / "end.pt")})
    main(pruned)
    start = torch.load(tmp_path / "start.pt", weights_only=True)
    end = torch.load(tmp_path / "end.pt", weights_only=True)
    for name, mask in end["masks"].items():
        assert mask.dtype == torch.bool  # a quarter of the size of float masks
        assert torch.equal(mask, start["masks"][name])
        assert bool((end["model"][name][mask == 0] == 0).all())
    changed = [n for n in end["masks"] if not torch.equal(end["model"][n], start["model"][n])]
    assert changed  # training did move the weights that were kept
    assert pytest.approx(0.1, abs=1e-5) == pruned.DENSITY


def _fake_cifar(path, hostile=False):
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        for name, size in [("data_batch_1", 20), ("data_batch_2", 10), ("test_batch", 5)]:
            batch = {b"data": rng.integers(0, 256, (size, 3072), dtype=np.uint8), b"labels": list(range(size))}
            payload = pickle.dumps(batch) if not hostile else pickle.dumps(subprocess.Popen)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_cifar_archive_is_read_without_trusting_its_pickles(tmp_path):
    _fake_cifar(tmp_path / datasets.CIFAR_ARCHIVE)
    train, test = datasets.load_cifar10(tmp_path)
    assert train.images.shape == (30, 3, 32, 32) and test.images.shape == (5, 3, 32, 32)
    assert train.labels.tolist()[:3] == [0, 1, 2] and train.images.dtype == torch.uint8
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    _fake_cifar(hostile / datasets.CIFAR_ARCHIVE, hostile=True)
    with pytest.raises(datasets.DataError, match=r"refusing to load subprocess\.Popen"):
        datasets.load_cifar10(hostile)


def test_missing_cifar_without_internet_says_where_to_put_it(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", offline)
    with pytest.raises(datasets.DataError) as info:
        datasets.load_cifar10(tmp_path / "data")
    message = str(info.value)
    assert "could not be downloaded" in message and str(tmp_path / "data" / datasets.CIFAR_ARCHIVE) in message
    assert not list((tmp_path / "data").glob("*.part"))


def smoke_command(study: str) -> list[str]:
    """The smoke command in the top comment of a study file, as the README shows it."""
    text = (ROOT / "studies" / f"experiment-{study}.yaml").read_text(encoding="utf-8")
    (line,) = [line for line in text.splitlines() if line.startswith("#   python run.py") and "+dataset=synthetic" in line]
    return shlex.split(line[len("#   "):])


def test_the_readme_shows_the_same_smoke_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert shlex.join(smoke_command("resnet")) in readme


@pytest.mark.parametrize(("study", "one_shot"), [("resnet", 9), ("vgg", 11), ("wrn", 9)])
def test_study_files_smoke_commands_run_end_to_end(tmp_path, study, one_shot):
    python, script, *args = smoke_command(study)
    assert (python, script, args[:2]) == ("python", "run.py", ["--exp", f"studies/experiment-{study}.yaml"])
    assert args[-4:] == ["--device", "cpu", "--threads", "1"]  # one thread: quick on a busy machine too
    args[1] = str(ROOT / args[1])
    env = {**os.environ, "NO_COLOR": "1"}
    result = subprocess.run([sys.executable, str(ROOT / script), *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=100)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "never read by the module" not in result.stdout and "warning" not in result.stdout + result.stderr
    records = read_log(tmp_path / "logs" / f"{study}.yaml")
    assert [r["Name"] for r in records] == ["dense", "iterative", "iterative", "iterative", "one-shot"]
    assert [r["sparsity"] for r in records[:4]] == pytest.approx([0.0, 0.3, 0.51, 0.657])
    for record in records:
        assert record["DENSITY"] == pytest.approx(1 - record["sparsity"], abs=1e-4)
        assert record["STATUS"] == "done" and record["STEPS"] == 2
    dense, one_shot_record = records[0], records[-1]
    assert one_shot_record["REWOUND_FROM"] == dense["save_model"][0]
    assert one_shot_record["LOADED_FROM"] == dense["save_model"][1]
    assert records[1]["LOADED_FROM"] == dense["save_model"][1]
    assert records[2]["LOADED_FROM"] == records[1]["save_model"][1]
    assert one_shot_record["sparsity"] == pytest.approx(1 - 0.7 ** (10 if study == "vgg" else 8))
    # Checkpoints only where the chain needs them: the dense run's first and last, every other run's last.
    assert [sorted(r["save_model"]) for r in records] == [[0, 1], [1], [1], [1], [1]]
    written = sorted(p for p in (tmp_path / "checkpoints").rglob("*") if p.is_file())
    assert written == sorted(tmp_path / path for r in records for path in r["save_model"].values())
    assert sum(p.stat().st_size for p in written) < 100e6


def test_resume_goes_on_from_the_last_finished_epoch(tmp_path):
    """A job that was stopped after one epoch and started again ends where an uninterrupted run ends."""
    settings = {"epochs": 2, "steps_per_epoch": 3, "eval_batches": 1, "seed": 7,
                "synthetic": {"train_size": 128, "test_size": 64}, "width_factor": 0.25}
    whole = small(**settings)
    main(whole)
    resume = tmp_path / "resume.pt"
    first = small(**{**settings, "epochs": 1}, resume=str(resume))  # the attempt that was preempted
    main(first)
    assert resume.is_file() and "RESUMED_AT_EPOCH" not in first
    again = small(**settings, resume=str(resume))
    main(again)
    assert again.RESUMED_AT_EPOCH == 1 and again.STEPS == whole.STEPS == 6
    assert pytest.approx(whole.TRAIN_LOSS_HISTORY) == again.TRAIN_LOSS_HISTORY
    assert pytest.approx(whole.TEST_ACC_HISTORY) == again.TEST_ACC_HISTORY
