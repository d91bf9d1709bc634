"""Image classification (CIFAR-10, Fashion-MNIST) as a task: loss, metric (accuracy, higher is
better) and the ENAS reward (accuracy of the sampled child on one validation batch)."""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import Arch
from ..errors import ConfigError
from .augment import ImageBatches, eval_batches
from .images import load_cifar10, load_fashion_mnist, split_validation

LOADERS = {"cifar10": load_cifar10, "fashion_mnist": load_fashion_mnist}


class ImageTask:
    """Images stay on the device as uint8; batches are drawn, augmented and normalised there.

    Search holds out `num_valid` training images (the last 5000, as the official ENAS data_utils.py)
    and draws reward batches from them; final training with num_valid=0 trains on every training
    image and reads the test set only (official final scripts), so the model kept is the last one.
    """

    metric = "acc"
    higher_is_better = True
    unit = "images"
    data_parallel = True       # every rank draws its own batches (strategies/distributed.py)
    holds_out_valid = True     # searches score on held-out training images: num_valid >= 1
    nas_controller_lr = 6e-4   # Zoph & Le 2017, sec. 4.1: the controller's Adam lr on CIFAR-10
    carries_state = False      # batches are independent: a step is `train_loss`

    def __init__(self, name: str, data_dir: str, device: torch.device, batch_size: int, eval_batch_size: int,
                 num_valid: int = 5000, cutout: int = 0, aux_weight: float = 0.4, seed: int = 0):
        if name not in LOADERS:
            raise ConfigError(f"unknown image task {name!r}; known: {', '.join(LOADERS)}")
        data = LOADERS[name](data_dir, device=device)
        if num_valid:
            data = split_validation(data, num_valid, seed=None)
        self.name, self.data, self.aux_weight = name, data, aux_weight
        self.eval_batch_size = eval_batch_size
        norm = dict(mean=data.mean, std=data.std)
        self.train = ImageBatches(data.train_x, data.train_y, batch_size, seed=seed,
                                  augment_kwargs={**data.augment_defaults, "cutout": cutout}, **norm)
        self.has_valid = bool(num_valid)
        self.valid = ImageBatches(data.valid_x, data.valid_y, min(eval_batch_size, num_valid), seed=seed + 1,
                                  **norm) if num_valid else None
        self._norm = norm

    def model_kwargs(self, m) -> dict:
        return dict(in_channels=self.data.channels, num_classes=self.data.num_classes,
                    image_size=self.data.image_size, channels=m.channels, num_layers=m.num_layers or None,
                    dropout=m.dropout, drop_path=m.drop_path, aux_head=m.aux_head, style=m.style)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train)

    # --- training ---------------------------------------------------------------------------
    def train_inputs(self, model: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The next augmented training batch: images [B,C,H,W] and labels [B]."""
        return next(self.train)

    def train_loss(self, model: nn.Module, arch: torch.Tensor | None = None, batch=None):
        """Cross-entropy of `batch` (else the next augmented one) (+ aux_weight x the auxiliary head's,
        official micro final: 0.4); returns (loss, images, correct)."""
        x, y = self.train_inputs() if batch is None else batch
        out = model(x) if arch is None else model(x, arch)
        logits, aux = out if isinstance(out, tuple) else (out, None)
        loss = F.cross_entropy(logits, y)
        if aux is not None:
            loss = loss + self.aux_weight * F.cross_entropy(aux, y)
        return loss, y.numel(), (logits.detach().argmax(-1) == y).sum()

    @staticmethod
    def window_metric(mean_loss: float, metric_sum: float, items: int) -> float:
        return metric_sum / max(items, 1)

    # --- a second objective on held-out data (DARTS's architecture weights) ------------------------
    def alpha_inputs(self, model: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch of the held-out split (`num_valid` training images)."""
        return self.next_reward_batch()

    def batch_loss(self, model, arch, batch) -> tuple[torch.Tensor, None]:
        """(the training loss of `batch`, no state to carry)."""
        return self.train_loss(model, arch, batch)[0], None

    def keep_alpha_state(self, state) -> None:
        """Images carry no state between batches."""

    # --- rewards ----------------------------------------------------------------------------
    def next_reward_batch(self):
        return next(self.valid)

    def first_reward_batch(self):
        return next(eval_batches(self.data.valid_x, self.data.valid_y, self.eval_batch_size, **self._norm))

    @torch.no_grad()
    def score(self, model: nn.Module, arch: torch.Tensor | None, batch) -> torch.Tensor:
        """Accuracy of `arch` on one batch, in eval mode: a 0-d tensor."""
        x, y = batch
        was_training = model.training
        model.eval()
        logits = model(x) if arch is None else model(x, arch)
        model.train(was_training)
        return (logits.argmax(-1) == y).float().mean()

    @torch.no_grad()
    def score_many(self, model: nn.Module, tokens: torch.Tensor, batch) -> torch.Tensor:
        """`score` of every architecture of `tokens` [n, L] on one batch: accuracies [n]. The CNN
        supernets run only each architecture's ops, so there is nothing to share between
        architectures: one forward per architecture. Which ops run is decided in Python, so the n
        architectures are read to the host once, not once per forward."""
        return torch.stack([self.score(model, Arch(model.space, tuple(t)), batch) for t in tokens.tolist()])

    def reward_batches(self, k: int) -> list:
        """The first k batches of held-out images (fewer where the split is shorter)."""
        return list(itertools.islice(eval_batches(self.data.valid_x, self.data.valid_y, self.eval_batch_size,
                                                  **self._norm), k))

    @torch.no_grad()
    def score_over(self, model: nn.Module, tokens: torch.Tensor, batches: list) -> torch.Tensor:
        """`score_many` over several batches: the accuracy of every architecture of `tokens` [n, L] over all
        the batches' images, [n]."""
        weights = [len(b[1]) for b in batches]
        return sum(self.score_many(model, tokens, b) * w for b, w in zip(batches, weights)) / sum(weights)

    def reward(self, acc: torch.Tensor) -> torch.Tensor:
        """ENAS CIFAR-10: the reward is the validation accuracy itself."""
        return acc

    @torch.no_grad()
    def evaluate(self, model: nn.Module, arch: torch.Tensor | None = None, split: str = "valid",
                 max_batches: int = 0) -> float:
        x, y = {"valid": (self.data.valid_x, self.data.valid_y), "test": (self.data.test_x, self.data.test_y)}[split]
        if x is None:
            raise ConfigError("this task holds out no validation images (num_valid=0)")
        was_training = model.training
        model.eval()
        correct, count = torch.zeros((), device=x.device), 0
        for i, (images, labels) in enumerate(eval_batches(x, y, self.eval_batch_size, **self._norm)):
            if max_batches and i >= max_batches:
                break
            logits = model(images) if arch is None else model(images, arch)
            correct += (logits.argmax(-1) == labels).sum()
            count += labels.numel()
        model.train(was_training)
        return correct.item() / count

    # --- resume -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"train": self.train.state_dict(), "valid": self.valid.state_dict() if self.valid else None}

    def load_state_dict(self, state: dict) -> None:
        self.train.load_state_dict(state["train"])
        if self.valid is not None:
            self.valid.load_state_dict(state["valid"])
