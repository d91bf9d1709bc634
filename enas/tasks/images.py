"""Image data (CIFAR-10, Fashion-MNIST): files, checksums, the validation split; augmentation and
batches on the device are in augment.py.

The whole data set lives on the device as uint8 [N, C, H, W] (CIFAR-10: 150 MB); batches are drawn by index,
then cropped, flipped, cut out and normalised there in a few batched tensor ops, so no per-image Python work
and no host-device copy happens inside a training step.

CIFAR-10 files come from, in order: `data_dir` (the six python-pickle batches, loose or in
`cifar-10-batches-py/`, or `cifar-10-python.tar.gz`), then the cache (`$ENAS_CACHE/cifar10`, default
`~/.cache/enas/cifar10`), then a download of the tar.gz into the cache. Every file is checked against its
published md5 before it is unpickled. Fashion-MNIST is read from the four IDX .gz files in `data_dir`.
"""
from __future__ import annotations

import codecs
import gzip
import hashlib
import http.client
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .augment import ImageBatches, augment, eval_batches, normalize  # noqa: F401  (part of this module's API)
from .download import download, read_data
from ..errors import ConfigError, DataError

try:
    from numpy._core.multiarray import _reconstruct as _np_reconstruct  # numpy >= 2
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

CIFAR10_TAR = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"  # the folder inside the official tar.gz
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_FILES = CIFAR10_TRAIN + ("test_batch",)
# md5s published on the CIFAR-10 page (www.cs.toronto.edu/~kriz/cifar.html) for the archive; those of the
# batches are the ones torchvision.datasets.CIFAR10 checks (also listed in ../shared/data/README.md).
CIFAR10_MD5 = {
    CIFAR10_TAR: "c58f30108f718f92721af3b95e74349a",
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
# The canonical source; ENAS_CIFAR10_URL overrides it (a mirror, or file://... for offline use).
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DOWNLOAD_TIMEOUT_S = 60

FASHION_MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte.gz", "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz", "test_y": "t10k-labels-idx1-ubyte.gz",
}
# sha256 of the files shipped by Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 (../shared/data/
# fashion-mnist/SOURCE.md); Zalando publishes only md5s, these pin the exact bytes the tests use.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049

# Training augmentation per data set. CIFAR-10: pad 4 + random 32x32 crop + flip, as in official ENAS
# src/cifar10/models.py `_pre_process` (cutout 16 is added for the micro final training by the task config).
# Fashion-MNIST: each product was resized so that its longest side spans the 28 px, so shifts stay small:
# pad 2 (+-2 px, 7% of the side; CIFAR's +-4 of 32 is 12.5%) moves the object without cutting much of it
# off; flips keep the class (garments are near mirror-symmetric, a mirrored shoe is still a shoe).
AUGMENT_DEFAULTS = {"cifar10": {"pad": 4, "flip": True}, "fashion_mnist": {"pad": 2, "flip": True}}


@dataclass
class ImageData:
    """A labelled image data set on one device. Images stay uint8; `normalize` / `augment` make float
    batches from them."""

    name: str
    train_x: torch.Tensor = field(repr=False)  # [N, C, H, W] uint8
    train_y: torch.Tensor = field(repr=False)  # [N] int64
    test_x: torch.Tensor = field(repr=False)  # [M, C, H, W] uint8
    test_y: torch.Tensor = field(repr=False)  # [M] int64
    mean: torch.Tensor  # [C] float32: per-channel mean of train_x / 255
    std: torch.Tensor  # [C] float32: per-channel std of train_x / 255
    classes: tuple[str, ...] = ()
    # held-out training images, set by split_validation
    valid_x: torch.Tensor | None = field(default=None, repr=False)  # [V, C, H, W] uint8
    valid_y: torch.Tensor | None = field(default=None, repr=False)  # [V] int64

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.train_x.shape[1:])

    @property
    def channels(self) -> int:
        return self.train_x.shape[1]

    @property
    def image_size(self) -> int:
        return self.train_x.shape[2]

    @property
    def num_train(self) -> int:
        return self.train_x.shape[0]

    @property
    def num_valid(self) -> int:
        return 0 if self.valid_x is None else self.valid_x.shape[0]

    @property
    def num_test(self) -> int:
        return self.test_x.shape[0]

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    @property
    def augment_defaults(self) -> dict:
        return dict(AUGMENT_DEFAULTS.get(self.name, {"pad": 0, "flip": False}))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return normalize(x, self.mean, self.std)

    def to(self, device: torch.device | str) -> ImageData:
        names = ("train_x", "train_y", "test_x", "test_y", "mean", "std")
        move = {k: getattr(self, k).to(device) for k in names}
        if self.valid_x is not None:
            move.update(valid_x=self.valid_x.to(device), valid_y=self.valid_y.to(device))
        return replace(self, **move)


# ----------------------------------------------------------------------------------------------- CIFAR-10

def default_cache_dir(name: str = "cifar10") -> Path:
    """`$ENAS_CACHE/<name>`, or `~/.cache/enas/<name>`."""
    root = os.environ.get("ENAS_CACHE") or Path.home() / ".cache" / "enas"
    return Path(root).expanduser() / name


def load_cifar10(data_dir: str | os.PathLike | None, device: torch.device | str = "cpu",
                 download: bool = True, cache_dir: str | os.PathLike | None = None,
                 checksums: dict[str, str] = CIFAR10_MD5) -> ImageData:
    """CIFAR-10 as uint8 [50000, 3, 32, 32] / [10000, 3, 32, 32] on `device`. `checksums` maps each file name
    (the six batches and the tar.gz) to its md5. Missing, altered or unreadable files -> DataError."""
    blobs, batches = _cifar10_blobs(data_dir, download, cache_dir, checksums), {}
    for name in CIFAR10_FILES:
        blob, where = blobs.pop(name)  # each file's bytes are released once parsed
        # md5 first: only the published bytes are ever unpickled
        batches[name] = _parse_cifar_batch(_verified(blob, name, where, checksums), where)
    train_x = np.concatenate([batches[n][0] for n in CIFAR10_TRAIN])
    train_y = np.concatenate([batches[n][1] for n in CIFAR10_TRAIN])
    # each row is 3072 bytes: the R, G and B planes, each 32 x 32 row-major -> [N, 3, 32, 32]
    to_images = lambda a: torch.from_numpy(a).view(-1, 3, 32, 32).to(device)  # noqa: E731
    train = to_images(train_x)
    mean, std = channel_stats(train)
    test_x, test_y = batches["test_batch"]
    return ImageData("cifar10", train, torch.from_numpy(train_y).to(device), to_images(test_x),
                     torch.from_numpy(test_y).to(device), mean, std, CIFAR10_CLASSES)


def _cifar10_blobs(data_dir, download, cache_dir, checksums) -> dict[str, tuple[bytes, str]]:
    """file name -> (bytes, where they came from) for the six batches: loose files, else the tar.gz."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    roots = ([Path(data_dir).expanduser()] if data_dir is not None else []) + [cache]
    for root in roots:
        for folder in (root, root / CIFAR10_FOLDER):
            if all((folder / n).is_file() for n in CIFAR10_FILES):
                return {n: (read_data(folder / n), str(folder / n)) for n in CIFAR10_FILES}
        if (root / CIFAR10_TAR).is_file():
            return _read_tar(root / CIFAR10_TAR, checksums)

    where = ", ".join(str(r) for r in roots)
    wanted = f"CIFAR-10 files ({', '.join(CIFAR10_FILES)}, or {CIFAR10_TAR})"
    if not download:
        raise DataError(f"{wanted} not found in {where} (or their {CIFAR10_FOLDER}/) "
                        "and download is disabled")
    url = os.environ.get("ENAS_CIFAR10_URL") or CIFAR10_URL
    try:
        _download(url, cache / CIFAR10_TAR, checksums.get(CIFAR10_TAR))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = str(getattr(e, "reason", None) or e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{wanted} not found in {where}, and downloading {url} failed: {reason}") from None
    return _read_tar(cache / CIFAR10_TAR, checksums)


def _read_tar(path: Path, checksums) -> dict[str, tuple[bytes, str]]:
    """The six batches read from the archive into memory (nothing is extracted to disk, so member names
    cannot write anywhere), once the archive's own md5 matched."""
    _verified(read_data(path), CIFAR10_TAR, str(path), checksums)
    wanted = {f"{CIFAR10_FOLDER}/{n}": n for n in CIFAR10_FILES}
    out = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                name = wanted.get(member.name.removeprefix("./"))
                if name is not None and member.isfile():
                    out[name] = (tar.extractfile(member).read(), f"{path}:{member.name}")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path}: cannot read the archive ({type(e).__name__}: {e}); "
                        "delete it and retry") from None
    missing = [n for n in CIFAR10_FILES if n not in out]
    if missing:
        raise DataError(f"{path}: archive lacks {', '.join(f'{CIFAR10_FOLDER}/{n}' for n in missing)}")
    return out


def _verified(data: bytes, name: str, where: str, checksums: dict[str, str]) -> bytes:
    if name not in checksums:
        raise ConfigError(f"no md5 given for the CIFAR-10 file {name}")
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if digest != checksums[name]:
        raise DataError(f"{where}: md5 checksum does not match the published {name} (truncated or altered? "
                        f"{len(data):,} bytes); delete it or replace it with the original")
    return data


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 batch holds: dicts, lists, bytes, ints and numpy uint8 arrays. The
    md5 check already pins the bytes; this keeps a file given with its own md5 from running code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,  # the official files (Python 2, numpy 1)
        ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}") from None


def _parse_cifar_batch(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, 3072], labels int64 [n]) of one batch: a dict with b"data" and b"labels"."""
    try:
        # encoding="bytes": the official batches were pickled by Python 2; keys come back as bytes.
        batch = _BatchUnpickler(io.BytesIO(blob), encoding="bytes").load()
        data, labels = batch[b"data"], np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as e:  # a corrupt pickle fails in many ways (EOFError, UnpicklingError, KeyError, ...)
        raise DataError(f"{where}: not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3072 and labels.shape == (data.shape[0],)):
        got = f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}"
        raise DataError(f"{where}: expected b'data' uint8 [n, 3072] and n b'labels', "
                        f"got {got} and {labels.shape}")
    if labels.size and not 0 <= labels.min() <= labels.max() < 10:
        raise DataError(f"{where}: labels outside 0..9")
    return np.ascontiguousarray(data), labels


def _download(url: str, dest: Path, md5: str | None) -> None:
    download(url, dest, "md5", md5, DOWNLOAD_TIMEOUT_S)


# ------------------------------------------------------------------------------------------- Fashion-MNIST

def load_fashion_mnist(data_dir: str | os.PathLike, device: torch.device | str = "cpu",
                       checksums: dict[str, str] = FASHION_MNIST_SHA256) -> ImageData:
    """Fashion-MNIST as uint8 [60000, 1, 28, 28] / [10000, 1, 28, 28] on `device` from the four IDX .gz files
    in `data_dir`, each checked against its sha256. Missing or bad files -> DataError."""
    d = Path(data_dir).expanduser()
    missing = [n for n in FASHION_MNIST_FILES.values() if not (d / n).is_file()]
    if missing:
        raise DataError(f"Fashion-MNIST file(s) {', '.join(missing)} not found in {d}")
    arrays = {}
    for key, name in FASHION_MNIST_FILES.items():
        blob = read_data(d / name)
        digest = hashlib.sha256(blob).hexdigest()
        if digest != checksums.get(name):
            raise DataError(f"{d / name}: sha256 checksum does not match the published Fashion-MNIST file "
                            f"(truncated or altered? {len(blob):,} bytes)")
        arrays[key] = _parse_idx(blob, d / name, images=key.endswith("_x"))
    for split in ("train", "test"):
        if len(arrays[f"{split}_x"]) != len(arrays[f"{split}_y"]):
            raise DataError(f"Fashion-MNIST {split}: {len(arrays[f'{split}_x'])} images but "
                            f"{len(arrays[f'{split}_y'])} labels in {d}")
    t = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
    mean, std = channel_stats(t["train_x"])
    return ImageData("fashion_mnist", t["train_x"], t["train_y"], t["test_x"], t["test_y"], mean, std,
                     FASHION_MNIST_CLASSES)


def _parse_idx(blob: bytes, path: Path, images: bool) -> np.ndarray:
    """IDX (big-endian int32 header: magic, then the sizes) -> uint8 [n, 1, rows, cols] or int64
    labels [n]."""
    try:
        raw = gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable gzip file ({type(e).__name__}: {e})") from None
    ndim = 3 if images else 1
    magic = IDX_IMAGES_MAGIC if images else IDX_LABELS_MAGIC
    header = np.frombuffer(raw[: 4 * (1 + ndim)], dtype=">i4") if len(raw) >= 4 * (1 + ndim) else None
    if header is None or header[0] != magic:
        found = None if header is None else int(header[0])
        raise DataError(f"{path}: IDX magic number {found}, expected {magic}")
    dims = tuple(int(v) for v in header[1:])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 * (1 + ndim))
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {' x '.join(map(str, dims))} but holds {body.size:,} bytes")
    if images:
        return body.reshape(dims[0], 1, dims[1], dims[2]).copy()
    if body.size and body.max() > 9:
        raise DataError(f"{path}: labels outside 0..9")
    return body.astype(np.int64)


# ---------------------------------------------------------------------------------- statistics and splits

def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population, as np.std) std of uint8 x [N, C, H, W] / 255: float32 [C] on x's
    device. Computed exactly from a 256-bin histogram per channel, 10x faster than summing (CIFAR-10:
    0.5 s on one CPU core) and without the 600 MB float copy."""
    values = torch.arange(256, dtype=torch.float64, device=x.device)
    hist = torch.stack([torch.bincount(x[:, i].reshape(-1), minlength=256)
                        for i in range(x.shape[1])]).double()  # [C, 256] pixel counts
    count = hist.sum(1)
    mean = (hist * values).sum(1) / count
    var = (hist * values * values).sum(1) / count - mean * mean
    return (mean / 255).float(), (var.clamp_min(0).sqrt() / 255).float()


def split_validation(data: ImageData, num_valid: int = 5000, seed: int | None = 0) -> ImageData:
    """Hold `num_valid` training images out as `valid_x` / `valid_y` (the controller's reward data during
    search; ENAS uses 45k / 5k on CIFAR-10). seed=None takes the last num_valid images, as the official
    src/cifar10/data_utils.py does; an int draws a random subset. mean / std are recomputed on the remaining
    training images (official ENAS normalises with the statistics of the training part)."""
    n = data.num_train
    if not 0 < num_valid < n:
        raise ConfigError(f"num_valid must be between 1 and {n - 1}, got {num_valid}")
    if seed is None:
        order = torch.arange(n)
    else:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    keep, held = order[: n - num_valid].to(data.device), order[n - num_valid:].to(data.device)
    train_x = data.train_x.index_select(0, keep)
    mean, std = channel_stats(train_x)
    return replace(data, train_x=train_x, train_y=data.train_y.index_select(0, keep), mean=mean, std=std,
                   valid_x=data.train_x.index_select(0, held), valid_y=data.train_y.index_select(0, held))
