"""Data-parallel search under `torchrun`: every rank trains the shared weights on its own batches of
the same sampled architecture; rank 0 samples (and broadcasts) it, trains the controller, logs and
writes checkpoints.

    torchrun --nproc-per-node 2 -m enas search --space enas_micro --task cifar10 ...
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def launch_rank() -> int:
    """This process's rank in a torchrun launch; 0 for a single process."""
    return int(os.environ.get("RANK", "0"))


class Distributed:
    """The process group of a torchrun launch, or a single process (world size 1)."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = launch_rank()
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        nccl = torch.cuda.is_available()
        # collectives of small tensors go through the backend's own device
        self.comm_device = torch.device("cuda", self.local_rank) if nccl else torch.device("cpu")
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if nccl else "gloo")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        if self.enabled and device.type == "cuda":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP over the supernet; only the sampled ops run, so some parameters go unused each step."""
        if not self.enabled:
            return model
        ids = [self.local_rank] if next(model.parameters()).is_cuda else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def broadcast_arch(self, tokens: torch.Tensor) -> torch.Tensor:
        """Rank 0's sampled architecture [L], on every rank."""
        if self.enabled:
            dist.broadcast(tokens, src=0)
        return tokens

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (a Ctrl-C seen by any rank stops them all)."""
        if not self.enabled:
            return flag
        t = torch.tensor([int(flag)], device=self.comm_device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def checksums(self, model: nn.Module) -> list[float]:
        """Every rank's sum of its weights (float64): equal when the replicas are in sync."""
        total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().to(self.comm_device)
        if not self.enabled:
            return [total.item()]
        out = [torch.zeros_like(total) for _ in range(self.world)]
        dist.all_gather(out, total)
        return [t.item() for t in out]

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

