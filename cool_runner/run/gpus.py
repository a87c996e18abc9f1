"""Slots: how many experiments run at once, and which GPU each slot's processes see."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import UsageError

GPU_LINE = re.compile(r"^GPU (\d+):", re.MULTILINE)


@dataclass(frozen=True)
class SlotSpec:
    """One slot: a number (from 0) and the GPU its processes see through CUDA_VISIBLE_DEVICES, if any."""

    number: int
    gpu: str | None = None

    @property
    def label(self) -> str:
        return f"slot {self.number}" + (f" GPU {self.gpu}" if self.gpu is not None else "")

    def place(self) -> dict[str, Any]:
        """What the record says about where the experiment ran."""
        place: dict[str, Any] = {"SLOT": self.number}
        if self.gpu is not None:
            place["GPU"] = int(self.gpu) if self.gpu.isdigit() else self.gpu
        return place


def visible_gpus(environ: Mapping[str, str] | None = None,
                 run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> list[str]:
    """Every GPU this process may use: CUDA_VISIBLE_DEVICES when it is set, else what `nvidia-smi -L` lists."""
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [part.strip() for part in visible.split(",") if part.strip()]
        if not ids or ids[0] == "-1":
            raise UsageError("CUDA_VISIBLE_DEVICES hides every GPU", option="--gpus all",
                             hint="unset it, or name the GPUs, e.g. --gpus 0,1")
        return ids
    try:
        result = run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise UsageError("nvidia-smi was not found on PATH", option="--gpus all",
                         hint="install the NVIDIA driver, or name the GPUs, e.g. --gpus 0,1") from None
    except subprocess.TimeoutExpired:
        raise UsageError("nvidia-smi -L did not answer within 60 s", option="--gpus all",
                         hint="name the GPUs, e.g. --gpus 0,1") from None
    if result.returncode != 0:
        message = (result.stderr or result.stdout or "").strip().splitlines()
        raise UsageError(f"nvidia-smi -L failed: {message[0] if message else f'exit code {result.returncode}'}",
                         option="--gpus all", hint="name the GPUs, e.g. --gpus 0,1")
    ids = GPU_LINE.findall(result.stdout)
    if not ids:
        raise UsageError("nvidia-smi -L lists no GPU", option="--gpus all", hint="run without --gpus to use the CPU")
    return ids


def parse_gpus(value: Any, option: str = "--gpus", environ: Mapping[str, str] | None = None,
               run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> list[str]:
    """`0,1,3`, `[0, 1]`, `2` or `all` as a list of GPU ids (as CUDA_VISIBLE_DEVICES takes them)."""
    if value is None:
        return []
    if isinstance(value, str) and value.strip().lower() == "all":
        return visible_gpus(environ, run)
    if isinstance(value, bool):
        raise UsageError(f"{value!r} is not a list of GPU ids", option=option, hint="e.g. 0,1,2,3 or all")
    parts = value if isinstance(value, list) else str(value).split(",")
    ids = [str(part).strip() for part in parts]
    if not ids or any(not part or part.lower() == "all" or "," in part for part in ids):
        raise UsageError(f"{value!r} is not a list of GPU ids", option=option, hint="e.g. 0,1,2,3 or all")
    repeated = sorted({part for part in ids if ids.count(part) > 1})
    if repeated:
        raise UsageError(f"GPU {repeated[0]} is listed twice", option=option,
                         hint="to run several experiments per GPU, use --per-gpu N (Global.per_gpu)")
    return ids


def layout(workers: int | None, gpus: list[str], per_gpu: int | None) -> list[SlotSpec]:
    """The slots: `workers` of them (default 1), or one per GPU times `per_gpu`, GPUs taken in turn."""
    if not gpus:
        if per_gpu is not None:
            raise UsageError("--per-gpu needs GPUs", option="--per-gpu", hint="add --gpus 0,1 or --gpus all")
        return [SlotSpec(number) for number in range(workers or 1)]
    count = len(gpus) * (per_gpu or 1)
    if workers is not None and per_gpu is not None and workers != count:
        raise UsageError(f"--workers {workers} does not match {len(gpus)} GPU(s) with --per-gpu {per_gpu} "
                         f"({count} slots)", option="--workers", hint="give --workers or --per-gpu, not both")
    if workers is not None:
        count = workers
    return [SlotSpec(number, gpus[number % len(gpus)]) for number in range(count)]
