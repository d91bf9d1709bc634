"""A memory of architectures the controller sampled earlier, for the memorisation regulariser of the
ENAS controller (Adam & Lorraine 2019, "Understanding Neural Architecture Search Techniques",
arXiv:1904.00438).

The study found that the ENAS controller's hidden state does not encode the decisions it has made
(architectures sampled from similar states are not similar), and made it do so by training it, beside
REINFORCE, to reconstruct architectures it had sampled before. The search (strategies/enas.py) keeps
those architectures here:

- at the end of every epoch from `controller.memory_start_epoch` on it samples `memory_per_epoch`
  architectures from the controller and stores them, until `memory_size` rows are held; from then
  on each epoch's store overwrites `memory_replace` rows chosen at random with new samples;
- from `controller.memory_loss_start_epoch` on, every controller update draws `memory_batch` rows
  uniformly (with replacement) and adds `memory_weight` times their teacher-forced negative
  log-likelihood under the controller to its REINFORCE loss (policy_gradient.py, `extra_loss`).

Defaults (config.py, ControllerConfig): stores from epoch 5, 1,000 architectures per epoch, at most
10,000 rows, 100 replaced per epoch once full; the loss from epoch 10, on batches of 100, weight 1.0.

The rows live on the device, the count on the host, so storing and drawing never synchronise; every
random choice (rows replaced, rows drawn) uses torch's global generator of the memory's device, which
the search's checkpoint saves, and the rows themselves are in the checkpoint (`state_dict`).
"""
from __future__ import annotations

import torch

from .errors import ConfigError


class ArchMemory:
    """At most `size` architectures as token rows [size, L] (long, on `device`); `len()` of them are held."""

    def __init__(self, num_tokens: int, size: int = 10_000, per_epoch: int = 1_000, replace: int = 100,
                 device: torch.device | str = "cpu"):
        self.size, self.per_epoch, self.replace = size, per_epoch, replace
        self.tokens = torch.zeros(size, num_tokens, dtype=torch.long, device=device)  # [size, L]
        self.count = 0  # rows held: tokens[:count]

    def __len__(self) -> int:
        return self.count

    @property
    def full(self) -> bool:
        return self.count >= self.size

    def wanted(self) -> int:
        """How many new architectures the next `store` takes: `per_epoch` (fewer if they would not fit)
        while the memory fills, `replace` once it is full."""
        if self.full:
            return min(self.replace, self.size)
        return min(self.per_epoch, self.size - self.count)

    def store(self, tokens: torch.Tensor) -> None:
        """One epoch's new architectures [n, L], n = `wanted()`: appended while the memory fills; once
        it is full they overwrite n distinct rows chosen uniformly at random."""
        tokens = tokens.to(self.tokens.device, torch.long)
        n = tokens.shape[0]
        if not self.full:
            n = min(n, self.size - self.count)
            self.tokens[self.count:self.count + n] = tokens[:n]
            self.count += n
        elif n:
            n = min(n, self.size)
            rows = torch.randperm(self.size, device=self.tokens.device)[:n]  # [n] distinct rows
            self.tokens[rows] = tokens[:n]

    def draw(self, n: int) -> torch.Tensor:
        """n rows [n, L] drawn uniformly with replacement from those held (at least one must be)."""
        if not self.count:
            raise ValueError("cannot draw from an empty architecture memory")
        return self.tokens[torch.randint(self.count, (n,), device=self.tokens.device)]

    def state_dict(self) -> dict:
        return {"tokens": self.tokens[:self.count].cpu()}  # [count, L]

    def load_state_dict(self, state: dict) -> None:
        rows = state["tokens"]
        if rows.dim() != 2 or rows.shape[1] != self.tokens.shape[1]:
            raise ConfigError(f"the checkpoint's architecture memory holds rows of shape {list(rows.shape)}, "
                              f"not [n, {self.tokens.shape[1]}]")
        if rows.shape[0] > self.size:
            raise ConfigError(f"the checkpoint's architecture memory holds {rows.shape[0]} architectures, "
                              f"more than controller.memory_size={self.size}")
        self.tokens.zero_()
        self.tokens[:rows.shape[0]] = rows.to(self.tokens.device)
        self.count = rows.shape[0]


__all__ = ["ArchMemory"]
