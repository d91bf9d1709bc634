"""Image data: CIFAR-10 python batches (a small fixture in the real format), the real Fashion-MNIST files,
augmentation on the device, and resumable batches."""
import dataclasses
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from enas.errors import DataError
from enas.tasks import images
from enas.tasks.images import ImageBatches, augment, eval_batches, normalize

FMNIST_DIR = Path(__file__).resolve().parents[2] / "shared/data/fashion-mnist"
needs_fmnist = pytest.mark.skipif(not (FMNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
                                  reason=f"Fashion-MNIST files not in {FMNIST_DIR}")
PER_BATCH = 20  # images per fixture batch file


@pytest.fixture(autouse=True)
def no_user_cache(tmp_path, monkeypatch):
    # never read or fill the user's real cache, never reach the network
    monkeypatch.setenv("ENAS_CACHE", str(tmp_path / "user_cache"))
    monkeypatch.setenv("ENAS_CIFAR10_URL", (tmp_path / "no_mirror" / images.CIFAR10_TAR).as_uri())


# ------------------------------------------------------------------------------------ CIFAR-10 fixture

class _Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the official batches: str / bytes as BINSTRING (read back as
    bytes with encoding="bytes"), numpy arrays under numpy.core.multiarray."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def grid():
    """k, c, r, col index arrays of shape [PER_BATCH, 3, 32, 32]."""
    return np.meshgrid(np.arange(PER_BATCH), np.arange(3), np.arange(32), np.arange(32), indexing="ij")


def pixel(k, c, r, col):
    """The fixture's known value of image k (within its file), channel c, row r, column col."""
    return (k * 7 + c * 80 + r * 5 + col * 3) % 256


def label(file_index, k):
    return (k + file_index) % 10


def write_cifar_fixture(root: Path) -> dict[str, str]:
    """root/cifar-10-batches-py/ (six batches + batches.meta) and root/cifar-10-python.tar.gz; -> md5s."""
    folder = root / images.CIFAR10_FOLDER
    folder.mkdir(parents=True)
    # official row layout: 1024 R values, then G, then B, each plane row-major
    data = pixel(*grid()).astype(np.uint8).reshape(PER_BATCH, 3072)
    md5 = {}
    for i, name in enumerate(images.CIFAR10_FILES):
        blob = py2_pickle({"batch_label": f"fixture batch {i}",
                           "labels": [label(i, j) for j in range(PER_BATCH)], "data": data,
                           "filenames": [f"img_{i}_{j}.png" for j in range(PER_BATCH)]})
        (folder / name).write_bytes(blob)
        md5[name] = hashlib.md5(blob).hexdigest()
    (folder / "batches.meta").write_bytes(py2_pickle({"label_names": list(images.CIFAR10_CLASSES),
                                                      "num_cases_per_batch": PER_BATCH, "num_vis": 3072}))
    with tarfile.open(root / images.CIFAR10_TAR, "w:gz") as tar:
        tar.add(folder, arcname=images.CIFAR10_FOLDER)
    md5[images.CIFAR10_TAR] = hashlib.md5((root / images.CIFAR10_TAR).read_bytes()).hexdigest()
    return md5


@pytest.fixture
def cifar(tmp_path):
    root = tmp_path / "fixture"
    return root, write_cifar_fixture(root)


def check_cifar(data):
    n_train = 5 * PER_BATCH
    assert data.train_x.shape == (n_train, 3, 32, 32) and data.test_x.shape == (PER_BATCH, 3, 32, 32)
    assert data.train_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    assert data.image_shape == (3, 32, 32) and data.num_classes == 10 and data.name == "cifar10"
    expected_y = [label(i, j) for i in range(5) for j in range(PER_BATCH)]
    assert data.train_y.tolist() == expected_y
    assert data.test_y.tolist() == [label(5, j) for j in range(PER_BATCH)]
    want = torch.from_numpy(pixel(*grid()).astype(np.uint8))
    assert torch.equal(data.train_x[PER_BATCH: 2 * PER_BATCH], want)  # [N, C, H, W], channel planes R, G, B
    assert torch.equal(data.test_x, want)
    assert data.train_x[3, 1, 2, 5].item() == pixel(3, 1, 2, 5)
    # mean / std per channel from the training images
    flat = data.train_x.double().div(255).transpose(0, 1).reshape(3, -1)
    assert torch.allclose(data.mean.double(), flat.mean(1), atol=1e-6)
    assert torch.allclose(data.std.double(), flat.std(1, unbiased=False), atol=1e-6)


def test_cifar_from_folder_and_from_tar(cifar, tmp_path):
    root, md5 = cifar
    check_cifar(images.load_cifar10(root, download=False, checksums=md5))  # finds cifar-10-batches-py/
    check_cifar(images.load_cifar10(root / images.CIFAR10_FOLDER, download=False, checksums=md5))
    only_tar = tmp_path / "only_tar"
    only_tar.mkdir()
    (only_tar / images.CIFAR10_TAR).write_bytes((root / images.CIFAR10_TAR).read_bytes())
    check_cifar(images.load_cifar10(only_tar, download=False, checksums=md5))


def test_cifar_official_md5_rejects_fixture(cifar):
    root, _ = cifar
    with pytest.raises(DataError, match=r"data_batch_1: md5 checksum does not match") as e:
        images.load_cifar10(root, download=False)
    assert "\n" not in str(e.value)
    (root / images.CIFAR10_FOLDER / "data_batch_3").unlink()  # loose files incomplete -> the tar.gz is used
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: md5 checksum does not match"):
        images.load_cifar10(root, download=False)


def test_cifar_truncated_batch(cifar):
    root, md5 = cifar
    path = root / images.CIFAR10_FOLDER / "data_batch_2"
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"data_batch_2: md5 checksum does not match"):
        images.load_cifar10(root, download=False, checksums=md5)
    # even with an md5 that matches the truncated bytes, the pickle itself is rejected
    md5 = dict(md5, data_batch_2=hashlib.md5(blob[: len(blob) // 2]).hexdigest())
    with pytest.raises(DataError, match=r"data_batch_2: not a CIFAR-10 python batch") as e:
        images.load_cifar10(root, download=False, checksums=md5)
    assert "\n" not in str(e.value)


def test_cifar_truncated_tar(cifar, tmp_path):
    root, md5 = cifar
    d = tmp_path / "bad_tar"
    d.mkdir()
    blob = (root / images.CIFAR10_TAR).read_bytes()[:-200]
    (d / images.CIFAR10_TAR).write_bytes(blob)
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: md5 checksum does not match"):
        images.load_cifar10(d, download=False, checksums=md5)
    md5 = dict(md5, **{images.CIFAR10_TAR: hashlib.md5(blob).hexdigest()})
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz"):
        images.load_cifar10(d, download=False, checksums=md5)


def test_cifar_pickle_with_code_is_refused(tmp_path, cifar):
    root, md5 = cifar
    path = root / images.CIFAR10_FOLDER / "test_batch"
    path.write_bytes(pickle.dumps({b"data": print}, protocol=2))  # a global outside the allowed set
    md5 = dict(md5, test_batch=hashlib.md5(path.read_bytes()).hexdigest())
    with pytest.raises(DataError, match=r"test_batch: not a CIFAR-10 python batch.*unexpected object.*print"):
        images.load_cifar10(root, download=False, checksums=md5)


def test_cifar_download_into_cache(cifar, tmp_path, monkeypatch):
    root, md5 = cifar
    monkeypatch.setenv("ENAS_CIFAR10_URL", (root / images.CIFAR10_TAR).as_uri())
    empty, cache = tmp_path / "empty", tmp_path / "cache"
    empty.mkdir()
    check_cifar(images.load_cifar10(empty, download=True, cache_dir=cache, checksums=md5))
    assert (cache / images.CIFAR10_TAR).read_bytes() == (root / images.CIFAR10_TAR).read_bytes()
    assert [p.name for p in cache.iterdir()] == [images.CIFAR10_TAR]  # no temporary file left behind
    # second time from the cache, no download
    monkeypatch.setenv("ENAS_CIFAR10_URL", (tmp_path / "gone.tar.gz").as_uri())
    check_cifar(images.load_cifar10(empty, cache_dir=cache, checksums=md5))


def test_cifar_download_checks_md5(cifar, tmp_path, monkeypatch):
    root, _ = cifar
    monkeypatch.setenv("ENAS_CIFAR10_URL", (root / images.CIFAR10_TAR).as_uri())
    with pytest.raises(DataError, match=r"downloaded cifar-10-python\.tar\.gz .*md5"):
        images.load_cifar10(tmp_path / "empty", cache_dir=tmp_path / "cache")  # official md5s
    assert not any((tmp_path / "cache").iterdir())


def test_cifar_missing_names_files_and_places(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as e:
        images.load_cifar10(empty, cache_dir=tmp_path / "cache")  # URL points at nothing (autouse fixture)
    msg = str(e.value)
    assert "\n" not in msg and "data_batch_1" in msg and "test_batch" in msg and images.CIFAR10_TAR in msg
    assert str(empty) in msg and str(tmp_path / "cache") in msg and "downloading" in msg
    with pytest.raises(DataError, match="download is disabled"):
        images.load_cifar10(empty, download=False, cache_dir=tmp_path / "cache")


# ------------------------------------------------------------------------------------ Fashion-MNIST

@pytest.fixture(scope="module")
def fmnist():
    return images.load_fashion_mnist(FMNIST_DIR)


@needs_fmnist
def test_fashion_mnist_real_files(fmnist):
    assert fmnist.train_x.shape == (60000, 1, 28, 28) and fmnist.test_x.shape == (10000, 1, 28, 28)
    assert fmnist.train_x.dtype == torch.uint8 and fmnist.train_y.dtype == torch.int64
    assert fmnist.test_y.shape == (10000,) and fmnist.num_classes == 10
    assert torch.bincount(fmnist.train_y, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(fmnist.test_y, minlength=10).tolist() == [1000] * 10
    assert 0.25 < fmnist.mean.item() < 0.32 and 0.33 < fmnist.std.item() < 0.37  # the known 0.286 / 0.353


@needs_fmnist
def test_fashion_mnist_truncated_and_bad_header(tmp_path):
    for name in images.FASHION_MNIST_FILES.values():
        (tmp_path / name).write_bytes((FMNIST_DIR / name).read_bytes())
    blob = (tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(blob[:-100])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: sha256 checksum does not match"):
        images.load_fashion_mnist(tmp_path)
    # a file whose checksum is accepted but whose header is wrong (an images file in place of labels)
    import gzip
    fake = gzip.compress(struct.pack(">iiii", 2051, 1, 28, 28) + bytes(784))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(fake)
    sums = dict(images.FASHION_MNIST_SHA256)
    sums["t10k-labels-idx1-ubyte.gz"] = hashlib.sha256(fake).hexdigest()
    with pytest.raises(DataError, match=r"IDX magic number 2051, expected 2049"):
        images.load_fashion_mnist(tmp_path, checksums=sums)
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz not found"):
        images.load_fashion_mnist(tmp_path)


@needs_fmnist
def test_split_validation(fmnist):
    small = dataclasses.replace(fmnist, train_x=fmnist.train_x[:3000], train_y=fmnist.train_y[:3000])
    split = images.split_validation(small, num_valid=500, seed=0)
    assert split.num_train == 2500 and split.num_valid == 500 and split.num_test == 10000
    assert images.split_validation(fmnist).num_valid == 5000  # default: 5000 held out, as ENAS on CIFAR-10
    # a random partition of the original training images (each image identified by a fingerprint)
    weights = torch.randint(0, 2**20, (784,), generator=torch.Generator().manual_seed(0))
    key = lambda x: (x.view(x.shape[0], -1).long() * weights).sum(1).tolist()
    assert sorted(key(split.train_x) + key(split.valid_x)) == sorted(key(small.train_x))
    assert key(split.valid_x) != key(small.train_x[-500:])
    assert torch.equal(split.mean, images.channel_stats(split.train_x)[0])  # statistics of the training part
    assert not torch.equal(split.mean, small.mean)
    tail = images.split_validation(small, num_valid=500, seed=None)  # official ENAS: the last images
    assert torch.equal(tail.valid_x, small.train_x[-500:]) and torch.equal(tail.train_y, small.train_y[:-500])


@needs_fmnist
def test_normalised_batches_have_zero_mean(fmnist):
    x = fmnist.train_x[:2000]
    out = augment(x, pad=0, flip=True, generator=torch.Generator().manual_seed(0), mean=fmnist.mean,
                  std=fmnist.std)
    assert abs(out.mean().item()) < 0.05 and abs(out.std().item() - 1) < 0.05
    # the whole training set through eval_batches: mean 0, std 1 per channel (stats are of this set)
    total = squares = 0
    for batch, _ in eval_batches(fmnist.train_x, fmnist.train_y, 20000, mean=fmnist.mean, std=fmnist.std):
        total = total + batch.sum(dtype=torch.float64)
        squares = squares + batch.square_().sum(dtype=torch.float64)
    count = fmnist.train_x.numel()
    assert abs(total.item() / count) < 1e-5 and abs(squares.item() / count - 1) < 1e-4


# ------------------------------------------------------------------------------------ augmentation

def random_images(b=64, c=3, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=g)


RAW = dict(mean=torch.zeros(3), std=torch.full((3,), 1 / 255))  # normalised == raw pixel values


def test_augment_shapes_and_determinism():
    x = random_images()
    g = lambda s: torch.Generator().manual_seed(s)
    kw = dict(pad=4, flip=True, cutout=16, mean=torch.rand(3), std=torch.rand(3) + 0.5)
    a = augment(x, generator=g(1), **kw)
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, augment(x, generator=g(1), **kw))
    assert not torch.equal(a, augment(x, generator=g(2), **kw))
    gen = g(1)
    first, second = augment(x, generator=gen, **kw), augment(x, generator=gen, **kw)
    assert torch.equal(first, a) and not torch.equal(second, a)  # the generator advances


def test_flip_only():
    x = random_images()
    out = augment(x, pad=0, flip=True, generator=torch.Generator().manual_seed(0), **RAW)
    same = (out == normalize(x, **RAW)).flatten(1).all(1)
    mirrored = (out == normalize(x.flip(-1), **RAW)).flatten(1).all(1)
    # every image is exactly one of the two (random images are not mirror-symmetric)
    assert torch.all(same ^ mirrored)
    assert 16 < mirrored.sum().item() < 48


def test_crop_is_a_shift_within_pad():
    b, pad = 256, 4
    rows = torch.arange(1, 33, dtype=torch.uint8).view(1, 32, 1).expand(b, 32, 32)
    cols = torch.arange(1, 33, dtype=torch.uint8).view(1, 1, 32).expand(b, 32, 32)
    x = torch.stack([rows, cols, cols], 1).contiguous()  # channel 0 = row + 1, channel 1 = column + 1
    out = augment(x, pad=pad, flip=False, generator=torch.Generator().manual_seed(3), **RAW).round().long()
    shifts = set()
    for img in out:
        # every output row i reads source row i + dy, or padding (0) where that is outside the image
        seen = img[0] > 0
        dy = int((img[0][seen] - 1 - torch.arange(32).view(32, 1).expand(32, 32)[seen]).unique().item())
        dx = int((img[1][seen] - 1 - torch.arange(32).view(1, 32).expand(32, 32)[seen]).unique().item())
        assert -pad <= dy <= pad and -pad <= dx <= pad
        src_r, src_c = torch.arange(32) + dy, torch.arange(32) + dx
        inside = ((src_r >= 0) & (src_r < 32)).view(32, 1) & ((src_c >= 0) & (src_c < 32)).view(1, 32)
        assert torch.equal(img[0] > 0, inside) and torch.equal(img[1] > 0, inside)
        shifts.add((dy, dx))
    assert len(shifts) > 40  # of the 81 possible offsets, many occur


def test_cutout_zeroes_one_clipped_square():
    b, size = 512, 8
    x = torch.full((b, 3, 32, 32), 200, dtype=torch.uint8)
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.25, 0.3])
    g = torch.Generator().manual_seed(0)
    out = augment(x, pad=0, flip=False, cutout=size, generator=g, mean=mean, std=std)
    kept = normalize(x[:1], mean, std)[0]
    interior = 0
    for img in out:
        zero = img == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # same square in every channel
        assert torch.equal(img[~zero], kept[~zero])  # the rest untouched
        r, c = zero[0].any(1).nonzero().flatten(), zero[0].any(0).nonzero().flatten()
        # a rectangle: rows r x columns c, all zero
        assert zero[0].sum() == len(r) * len(c) and zero[0][r[0]:r[-1] + 1, c[0]:c[-1] + 1].all()
        assert size // 2 <= len(r) <= size and size // 2 <= len(c) <= size
        if len(r) < size:
            assert r[0] == 0 or r[-1] == 31  # only clipped at a border
        if len(c) < size:
            assert c[0] == 0 or c[-1] == 31
        interior += len(r) == size and len(c) == size
    assert interior > b // 2


def test_augment_keeps_normalisation_of_padding_at_zero():
    x = torch.full((32, 3, 32, 32), 255, dtype=torch.uint8)
    out = augment(x, pad=4, flip=True, generator=torch.Generator().manual_seed(0), mean=torch.full((3,), 0.5),
                  std=torch.full((3,), 0.25))
    values = out.unique()  # (1 - 0.5) / 0.25 inside, 0 (the mean colour) in the padding
    assert len(values) == 2 and values[0] == 0 and values[1].item() == pytest.approx(2, abs=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_cpu_generator_same_on_gpu():
    x = random_images(128)
    kw = dict(pad=4, flip=True, cutout=16, mean=torch.rand(3), std=torch.rand(3) + 0.5)
    cpu = augment(x, generator=torch.Generator().manual_seed(5), **kw)
    gpu = augment(x.cuda(), generator=torch.Generator().manual_seed(5), **kw)
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-6)
    b = ImageBatches(x.cuda(), torch.arange(128, device="cuda"), 32, augment_kwargs={"pad": 4},
                     mean=kw["mean"], std=kw["std"])
    imgs, labels = next(b)
    assert imgs.is_cuda and labels.is_cuda and imgs.shape == (32, 3, 32, 32)


# ------------------------------------------------------------------------------------ batches

def test_batches_cover_each_epoch_and_resume_exactly():
    n, bs = 50, 8
    x, y = random_images(n), torch.arange(n)
    make = lambda: ImageBatches(x, y, bs, augment_kwargs={"pad": 4, "flip": True, "cutout": 8}, seed=3,
                                mean=torch.zeros(3), std=torch.ones(3))
    a = make()
    assert len(a) == n // bs
    epoch0 = torch.cat([next(a)[1] for _ in range(len(a))])
    assert len(set(epoch0.tolist())) == len(epoch0) == 48 and not torch.equal(epoch0, torch.arange(48))
    other = make()
    epoch1 = torch.cat([next(other)[1] for _ in range(2 * len(other))])[48:]
    assert not torch.equal(epoch1, epoch0)  # a fresh order every epoch
    for _ in range(3):  # into the second epoch
        next(a)
    state = a.state_dict()
    assert state["epoch"] == 1 and state["position"] == 3 * bs
    state = torch.load(io.BytesIO(_saved(state)), weights_only=True)  # survives a checkpoint
    want = [next(a) for _ in range(10)]  # crosses into epoch 2
    b = make()
    next(b)  # some other state first
    b.load_state_dict(state)
    got = [next(b) for _ in range(10)]
    for (wi, wl), (gi, gl) in zip(want, got):
        assert torch.equal(wi, gi) and torch.equal(wl, gl)
    # without augmentation the batch is exactly the normalised images of its labels
    plain = ImageBatches(x, y, bs, shuffle=False, mean=torch.zeros(3), std=torch.ones(3))
    imgs, labels = next(plain)
    assert torch.equal(labels, torch.arange(bs))
    assert torch.allclose(imgs, x[:bs].float() / 255, atol=1e-6, rtol=0)


def test_eval_batches_in_order():
    x, y = random_images(21), torch.arange(21)
    batches = list(eval_batches(x, y, 8, mean=None, std=None))
    assert [len(l) for _, l in batches] == [8, 8, 5]
    assert torch.equal(torch.cat([l for _, l in batches]), y)
    assert torch.equal(torch.cat([b for b, _ in batches]), x.float() / 255)


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()
