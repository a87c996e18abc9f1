"""The training module: `main(exp)` trains, prunes, evaluates and writes its results into `exp`."""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from . import data as datasets
from .models import build_model, count_parameters
from .pruning import apply_masks, density, magnitude_masks, prunable


def hardware_flags(argv: list[str]) -> argparse.Namespace:
    """The module's own command-line flags, hardware settings that run.py passes on: --device, --threads."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", default=None)
    args, _ = parser.parse_known_args(argv)
    if args.threads is not None:
        if not args.threads.isdigit() or int(args.threads) < 1:
            raise ValueError(f"--threads takes a whole number of at least 1, not {args.threads!r}")
        args.threads = int(args.threads)
    return args


def device_from_argv(argv: list[str]) -> torch.device:
    """`--device cuda:1` from the command line (run.py passes it on); CUDA when available otherwise."""
    device = hardware_flags(argv).device
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def learning_rate(exp: Any, epoch: int, step: int) -> float:
    """Piecewise-constant schedule: `values[i]` until `boundaries[i]` (in epochs or steps)."""
    base = float(exp.optimizer.lr)
    schedule = exp.get("lr_schedule")
    if not schedule:
        return base
    boundaries, values = list(schedule.get("boundaries", [])), list(schedule.get("values", []))
    if len(values) != len(boundaries) + 1:
        raise ValueError(f"lr_schedule needs one value more than boundaries ({len(boundaries)} boundaries, "
                         f"{len(values)} values)")
    position = step if schedule.get("unit", "epoch") == "step" else epoch
    for boundary, value in zip(boundaries, values):
        if position < boundary:
            return float(value)
    return float(values[-1])


def load_data(exp: Any) -> tuple[datasets.Split, datasets.Split]:
    name = str(exp.get("dataset", "cifar10")).lower()
    # Read whatever the data set: a study names its CIFAR folder once, and a smoke run that switches to
    # synthetic data with +dataset=synthetic should not be told that the folder went unused.
    data_dir = str(exp.get("data_dir", "data"))
    if name == "synthetic":
        options = exp.get("synthetic") or {}
        return datasets.synthetic(int(options.get("train_size", 5000)), int(options.get("test_size", 1000)),
                                  int(options.get("seed", 0)))
    if name in ("cifar10", "cifar-10"):
        return datasets.load_cifar10(data_dir)
    raise ValueError(f"unknown dataset {name!r}: use cifar10 or synthetic")


def _save_atomic(path: str, state: dict[str, Any]) -> None:
    """torch.save through a temporary file and a rename, so that a crash never leaves half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    torch.save(state, tmp)
    os.replace(tmp, target)


def save_checkpoint(path: str, model: nn.Module, masks: dict[str, torch.Tensor], epoch: int) -> None:
    """Weights and masks, written atomically."""
    # Masks are 0/1: stored as booleans they take a quarter of the space of float ones.
    _save_atomic(path, {"model": model.state_dict(), "masks": {k: v.cpu().bool() for k, v in masks.items()},
                        "epoch": epoch})


def load_checkpoint(path: str, model: nn.Module, device: torch.device) -> dict[str, torch.Tensor]:
    """Load weights (safely: tensors only) into `model`; returns the masks saved with them."""
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    return {k: v.to(device) for k, v in state.get("masks", {}).items()}


def evaluate(model: nn.Module, split: datasets.Split, batch_size: int, device: torch.device,
             limit: int | None) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in datasets.batches(split, batch_size, shuffle=False, limit=limit):
            logits = model(datasets.normalise(images.to(device)))
            correct += int((logits.argmax(1) == labels.to(device)).sum())
            total += len(labels)
    return correct / max(total, 1)


def main(exp: Any) -> None:
    """Train `exp.model` on `exp.dataset`, pruned to `exp.sparsity`; see modules/README.md for every key."""
    device = device_from_argv(sys.argv[1:])
    threads = hardware_flags(sys.argv[1:]).threads
    if threads:
        torch.set_num_threads(threads)
    generator = torch.Generator()
    if exp.get("seed") is not None:
        torch.manual_seed(int(exp.seed))
        generator.manual_seed(int(exp.seed))
    else:
        generator.seed()
    train, test = load_data(exp)
    model = build_model(str(exp.model), dropout=float(exp.get("dropout", 0.0)),
                        width_factor=float(exp.get("width_factor", 1.0))).to(device)

    masks: dict[str, torch.Tensor] = {}
    if exp.get("load_model"):
        masks = load_checkpoint(str(exp.load_model), model, device)
        exp.LOADED_FROM = str(exp.load_model)
    sparsity = float(exp.get("sparsity", 0.0))
    if sparsity > 0:
        masks = magnitude_masks(model, sparsity, masks)
    if exp.get("rewind_model"):
        load_checkpoint(str(exp.rewind_model), model, device)  # keep the masks just computed
        exp.REWOUND_FROM = str(exp.rewind_model)
    apply_masks(model, masks)

    options = exp.optimizer
    optimizer = torch.optim.SGD(model.parameters(), lr=float(options.lr), momentum=float(options.get("momentum", 0.9)),
                                nesterov=bool(options.get("nesterov", True)),
                                weight_decay=float(options.get("weight_decay", 0.0)))
    mixed = str(exp.get("precision", "fp32")) == "mixed" and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=mixed)
    batch_size = int(exp.get("batch_size", 128))
    per_epoch = math.ceil(len(train) / batch_size)
    if exp.get("steps_per_epoch"):
        per_epoch = min(per_epoch, int(exp.steps_per_epoch))
    total_steps = int(exp.steps) if exp.get("steps") else None
    epochs = int(exp.get("epochs", 1)) if total_steps is None else math.ceil(total_steps / per_epoch)
    eval_limit = int(exp.eval_batches) if exp.get("eval_batches") else None
    saves = {int(k): str(v) for k, v in (exp.get("save_model") or {}).items()}
    saved: list[str] = []

    def checkpoint(epoch: int) -> None:
        if epoch in saves:
            save_checkpoint(saves[epoch], model, masks, epoch)
            saved.append(saves[epoch])

    history: dict[str, list[float]] = {"test_acc": [], "train_loss": [], "train_acc": [], "lr": []}
    resume = str(exp.resume) if exp.get("resume") else None
    start, step = 0, 0
    if resume and Path(resume).exists():
        # A requeued or restarted job goes on after the last epoch it finished, with the same masks,
        # optimiser state and random stream, instead of training from scratch.
        state = torch.load(resume, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        masks = {k: v.to(device) for k, v in state["masks"].items()}
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        generator.set_state(state["generator"])
        start, step, history = int(state["epoch"]), int(state["step"]), state["history"]
        exp.RESUMED_AT_EPOCH = start
    else:
        checkpoint(0)
    for epoch in range(start, epochs):
        model.train()
        loss_sum = correct = seen = 0
        lr = learning_rate(exp, epoch, step)
        for images, labels in datasets.batches(train, batch_size, shuffle=True, generator=generator, limit=per_epoch):
            if total_steps is not None and step >= total_steps:
                break
            lr = learning_rate(exp, epoch, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images = datasets.normalise(datasets.augment(images, generator).to(device))
            labels = labels.to(device)
            with torch.autocast(device.type, enabled=mixed):
                logits = model(images)
                loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            apply_masks(model, masks)
            loss_sum += float(loss.detach()) * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            step += 1
        history["train_loss"].append(loss_sum / max(seen, 1))
        history["train_acc"].append(correct / max(seen, 1))
        history["lr"].append(lr)
        history["test_acc"].append(evaluate(model, test, batch_size, device, eval_limit))
        checkpoint(epoch + 1)
        if resume:
            _save_atomic(resume, {"model": model.state_dict(), "masks": {k: v.cpu() for k, v in masks.items()},
                                  "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                                  "generator": generator.get_state(), "epoch": epoch + 1, "step": step,
                                  "history": history})

    exp.ACC = history["test_acc"][-1] if history["test_acc"] else evaluate(model, test, batch_size, device, eval_limit)
    exp.BEST_ACC = max(history["test_acc"], default=exp.ACC)
    exp.TRAIN_LOSS = history["train_loss"][-1] if history["train_loss"] else None
    exp.TRAIN_ACC = history["train_acc"][-1] if history["train_acc"] else None
    exp.DENSITY = density(model)
    exp.PARAMS = count_parameters(model)
    exp.PRUNABLE = sum(w.numel() for w in prunable(model).values())
    exp.STEPS = step
    exp.DEVICE = str(device)
    exp.TEST_ACC_HISTORY = history["test_acc"]
    exp.TRAIN_LOSS_HISTORY = history["train_loss"]
    exp.TRAIN_ACC_HISTORY = history["train_acc"]
    exp.LR_HISTORY = history["lr"]
    if saved:
        exp.SAVED = saved
