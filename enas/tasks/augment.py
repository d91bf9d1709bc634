"""Augmentation and batches on the device: random crop, flip and cutout for a whole batch in a few
tensor ops, normalisation, and the resumable stream of training batches.

Images stay uint8 [N, C, H, W] on the device; a batch is drawn by index and augmented there, so no
per-image Python work and no host-device copy happens inside a training step.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError

def normalize(x: torch.Tensor, mean: torch.Tensor | None = None,
              std: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 [B, C, H, W] -> float32 (x / 255 - mean) / std, per channel; mean / std None -> x / 255."""
    if x.dtype != torch.uint8:
        raise ConfigError(f"normalize expects uint8 images, got {x.dtype}")
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    return _normalize_into(out.view(x.shape[0], x.shape[1], -1), x.reshape(x.shape[0], x.shape[1], -1),
                           mean, std).view(x.shape)


def _normalize_into(out: torch.Tensor, x: torch.Tensor, mean, std) -> torch.Tensor:
    """out [B, C, P] float32 (may be a strided view) <- normalised uint8 x [B, C, P]."""
    if mean is None:
        return torch.div(x, 255, out=out)
    # x * 1/(255 std) - mean/std: one multiply and one add, in place (addcmul with broadcast is slower on CPU)
    std64 = std.to(x.device, torch.float64)
    scale = (1.0 / (255.0 * std64)).float().view(1, -1, 1)
    shift = (-mean.to(x.device, torch.float64) / std64).float().view(1, -1, 1)
    return torch.mul(x, scale, out=out).add_(shift)


def augment(x: torch.Tensor, pad: int = 4, flip: bool = True, cutout: int = 0,
            generator: torch.Generator | None = None, *, mean: torch.Tensor | None = None,
            std: torch.Tensor | None = None) -> torch.Tensor:
    """A training batch: uint8 x [B, C, H, W] -> normalised float32 [B, C, H, W], each image independently
    randomly shifted (a crop of the image zero-padded by `pad`), mirrored (prob. 1/2 if `flip`) and, if
    `cutout` > 0, with a cutout x cutout square at a uniform random centre zeroed (clipped at the borders;
    DeVries & Taylor 2017). Padding and cutout are zeros of the *normalised* image (the mean colour), as in
    official ENAS (src/cifar10/models.py pads and masks images normalised by data_utils.py) and in DeVries &
    Taylor's code (Cutout after Normalize). The square follows DeVries & Taylor (uniform centre, clipped on
    every side); official ENAS instead draws its top-left corner uniformly in [0, 32), clipped only at the
    bottom / right, which covers the top-left border less often.

    All random numbers come from one draw of `generator` (on its own device; a CPU generator gives the same
    batch on CPU and GPU), so the result is a function of x and the generator state. The whole batch is one
    gather: output pixel (b, i, j) reads pixel (i + dy_b, j' + dx_b) of image b, j' = W-1-j if b is mirrored,
    or a zero appended after the last pixel where that lies in the padding or in the cutout square.
    """
    b, c, h, w = x.shape
    if x.dtype != torch.uint8:
        raise ConfigError(f"augment expects uint8 images, got {x.dtype}")
    if pad < 0 or cutout < 0:
        raise ConfigError(f"pad and cutout must be >= 0, got pad={pad}, cutout={cutout}")
    if pad == 0 and not flip and cutout == 0:
        return normalize(x, mean, std)
    dev, p = x.device, h * w
    u = torch.rand(b, 5, generator=generator, device=generator.device if generator is not None else dev)
    u = u.to(dev, non_blocking=True)  # [B, 5]: dy, dx, flip, cutout row, cutout column

    def draw(col: int, n: int) -> torch.Tensor:  # uniform integers 0..n-1, [B, 1]
        return (u[:, col: col + 1] * n).long().clamp_(max=n - 1)

    rows = torch.arange(h, device=dev)
    cols = torch.arange(w, device=dev)
    src_r = rows + (draw(0, 2 * pad + 1) - pad)  # [B, H] source row of each output row
    out_c = torch.where(u[:, 2:3] < 0.5, w - 1 - cols, cols) if flip else cols.expand(b, w)  # [B, W]
    src_c = out_c + (draw(1, 2 * pad + 1) - pad)  # [B, W] source column of each output column
    # Flat source index; rows or columns in the padding get 2p, so their sum is >= p: the zero pixel.
    row_off = torch.where((src_r >= 0) & (src_r < h), src_r * w, 2 * p)
    col_off = torch.where((src_c >= 0) & (src_c < w), src_c, 2 * p)
    idx = (row_off[:, :, None] + col_off[:, None, :]).clamp_(max=p)  # [B, H, W]
    if cutout > 0:
        # [B, 1] each; the square may stick out of the image
        top, left = draw(3, h) - cutout // 2, draw(4, w) - cutout // 2
        in_r = (rows >= top) & (rows < top + cutout)  # [B, H]
        in_c = (cols >= left) & (cols < left + cutout)  # [B, W]
        idx.masked_fill_(in_r[:, :, None] & in_c[:, None, :], p)

    src = torch.empty(b, c, p + 1, dtype=torch.float32, device=dev)  # normalised images + one zero pixel
    src[:, :, p] = 0
    _normalize_into(src[:, :, :p], x.reshape(b, c, p), mean, std)
    return src.gather(2, idx.view(b, 1, p).expand(b, c, p)).view(b, c, h, w)


class ImageBatches:
    """An endless stream of training batches: a fresh random permutation of the images every epoch (drawn
    on the device), the last incomplete batch of an epoch dropped so every batch has the same shape, each
    batch augmented on the device. `state_dict()` / `load_state_dict()` hold (epoch, position, generator
    state), so a resumed run sees the same batches as an uninterrupted one.

        batches = ImageBatches(data.train_x, data.train_y, 128, augment_kwargs=data.augment_defaults,
                               mean=data.mean, std=data.std, seed=0)
        images, labels = next(batches)   # float32 [128, C, H, W], int64 [128]

    augment_kwargs None -> batches are only normalised.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = True,
                 augment_kwargs: dict | None = None, seed: int = 0, *, mean: torch.Tensor | None,
                 std: torch.Tensor | None):
        if x.shape[0] != y.shape[0]:
            raise ConfigError(f"{x.shape[0]} images but {y.shape[0]} labels")
        if not 1 <= batch_size <= x.shape[0]:
            raise ConfigError(f"batch size {batch_size} must be between 1 and the number of images "
                              f"{x.shape[0]}")
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.augment_kwargs = None if augment_kwargs is None else dict(augment_kwargs)
        self.mean, self.std, self.seed = mean, std, seed
        # Separate streams for the order and for the augmentation: the permutation of epoch e depends on
        # (seed, e) only, so it is recomputed on resume rather than stored.
        self.generator = torch.Generator(x.device).manual_seed(_mix(seed, 0))
        self.epoch, self.position = 0, 0
        self._order: torch.Tensor | None = None

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.x.shape[0] // self.batch_size

    def __iter__(self):
        return self

    def _epoch_order(self) -> torch.Tensor:
        n = self.x.shape[0]
        if not self.shuffle:
            return torch.arange(n, device=self.x.device)
        g = torch.Generator(self.x.device).manual_seed(_mix(self.seed, 1, self.epoch))
        return torch.randperm(n, generator=g, device=self.x.device)

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.position + self.batch_size > self.x.shape[0]:
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        if self._order is None:
            self._order = self._epoch_order()
        idx = self._order[self.position: self.position + self.batch_size]
        self.position += self.batch_size
        images = self.x.index_select(0, idx)  # uint8 [B, C, H, W]
        if self.augment_kwargs is None:
            out = normalize(images, self.mean, self.std)
        else:
            out = augment(images, generator=self.generator, mean=self.mean, std=self.std,
                          **self.augment_kwargs)
        return out, self.y.index_select(0, idx)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self.seed = int(state["epoch"]), int(state["position"]), int(state["seed"])
        self.generator.set_state(state["generator"])
        self._order = None


def eval_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, mean: torch.Tensor | None,
                 std: torch.Tensor | None):
    """(normalised float32 [B, C, H, W], labels [B]) in order, no augmentation; the last batch may be
    smaller."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    for i in range(0, x.shape[0], batch_size):
        yield normalize(x[i: i + batch_size], mean, std), y[i: i + batch_size]


def _mix(*ints: int) -> int:
    """A well-mixed 63-bit seed from small integers: nearby (seed, stream, epoch) give unrelated
    streams."""
    return int(np.random.SeedSequence(list(ints)).generate_state(1, np.uint64)[0] >> np.uint64(1))
