"""CIFAR-10 from the official python-format archive, a learnable synthetic stand-in, and GPU-friendly batches."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class DataError(Exception):
    """The data set cannot be had; the message says where to put it."""


@dataclass
class Split:
    """Images as uint8 (N, 3, 32, 32) and labels as int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


class _ArrayUnpickler(pickle.Unpickler):
    """The CIFAR batches are pickles; this one rebuilds numpy arrays and plain data, and nothing else."""

    ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    })

    def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")


def _load_batch(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    batch = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images, np.asarray(batch[b"labels"], dtype=np.int64)


def download(data_dir: Path) -> Path:
    """The archive in data_dir, downloaded first when missing (where the machine has internet)."""
    archive = data_dir / CIFAR_ARCHIVE
    if archive.exists():
        return archive
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".part")
    try:
        with urllib.request.urlopen(CIFAR_URL, timeout=30) as response, open(partial, "wb") as handle:
            while chunk := response.read(1 << 20):
                handle.write(chunk)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DataError(f"CIFAR-10 is not in {data_dir} and could not be downloaded ({exc}); download "
                        f"{CIFAR_URL} elsewhere and put it at {archive}, or use dataset: synthetic") from exc
    if hashlib.md5(partial.read_bytes()).hexdigest() != CIFAR_MD5:
        partial.unlink()
        raise DataError(f"the download of {CIFAR_URL} is damaged (wrong MD5); try again")
    partial.rename(archive)
    return archive


def load_cifar10(data_dir: str | Path) -> tuple[Split, Split]:
    """Train and test splits from `data_dir/cifar-10-python.tar.gz`."""
    archive = download(Path(data_dir))
    train, test = [], []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in sorted(tar.getmembers(), key=lambda m: m.name):
                name = Path(member.name).name
                if name.startswith("data_batch_") or name == "test_batch":
                    handle = tar.extractfile(member)
                    assert handle is not None
                    (test if name == "test_batch" else train).append(_load_batch(handle.read()))
    except (tarfile.TarError, OSError, pickle.UnpicklingError, KeyError, EOFError) as exc:
        raise DataError(f"{archive} is not a readable CIFAR-10 python archive: {exc}") from exc
    if not train or not test:
        raise DataError(f"{archive} has no data_batch_* or test_batch files")
    return tuple(Split(torch.from_numpy(np.concatenate([b[0] for b in part])),  # type: ignore[return-value]
                       torch.from_numpy(np.concatenate([b[1] for b in part]))) for part in (train, test))


def synthetic(train_size: int = 5000, test_size: int = 1000, seed: int = 0, classes: int = 10) -> tuple[Split, Split]:
    """Images shaped like CIFAR whose class is a fixed random pattern plus noise: learnable, needs no download."""
    generator = torch.Generator().manual_seed(seed)
    # Smooth, left-right symmetric patterns: the standard augmentation (shifts of up to 4 pixels, flips)
    # keeps each class recognisable, as it does for real photographs.
    coarse = torch.rand(classes, 3, 4, 4, generator=generator)
    prototypes = F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    prototypes = (prototypes + prototypes.flip(3)) / 2 * 255

    def make(size: int) -> Split:
        labels = torch.randint(0, classes, (size,), generator=generator)
        noise = torch.randn(size, 3, 32, 32, generator=generator) * 50
        images = (prototypes[labels] * 0.8 + 25 + noise).clamp(0, 255).to(torch.uint8)
        return Split(images, labels)

    return make(train_size), make(test_size)


def normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def augment(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random 32x32 crop of the image padded by 4 on each side, then a random horizontal flip (batched)."""
    batch = images.shape[0]
    padded = F.pad(images, (4, 4, 4, 4))
    device = images.device
    rows = torch.randint(0, 9, (batch,), generator=generator).to(device)[:, None] + torch.arange(32, device=device)
    cols = torch.randint(0, 9, (batch,), generator=generator).to(device)[:, None] + torch.arange(32, device=device)
    index = torch.arange(batch, device=device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=device)[None, :, None, None]
    cropped = padded[index, channel, rows[:, None, :, None], cols[:, None, None, :]]
    flip = (torch.rand(batch, generator=generator) < 0.5).to(device).view(-1, 1, 1, 1)
    return torch.where(flip, cropped.flip(3), cropped)


def batches(split: Split, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
            limit: int | None = None):
    """(images, labels) batches of uint8 images; the last, smaller batch is kept."""
    order = torch.randperm(len(split), generator=generator) if shuffle else torch.arange(len(split))
    for count, start in enumerate(range(0, len(split), batch_size)):
        if limit is not None and count >= limit:
            return
        index = order[start:start + batch_size]
        yield split.images[index], split.labels[index]
