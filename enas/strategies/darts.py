"""DARTS (Liu, Simonyan & Yang 2019): the discrete choice of every edge relaxed into a softmax-weighted
mixture of all its ops; the architecture weights alpha descend on the validation loss, the network
weights w on the training loss, alternately (Algorithm 1), on the shared-weights engine (engine.py).

Per step (official quark0/darts cnn/train_search.py `train`, architect.py):
1. alpha: one Adam step on an alpha batch. `darts.order=1` uses the gradient of L_val(w, alpha);
   `darts.order=2` that of L_val(w', alpha) at the unrolled weights w' = w - xi (grad_w L_train(w,
   alpha) + the SGD momentum + weight decay * w), xi the current lr, i.e.
   grad_alpha L_val(w', alpha) - xi * (grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)) / 2eps
   with w+- = w +- eps v, v = grad_w' L_val(w', alpha), eps = 0.01 / ||v|| (a finite-difference
   Hessian-vector product, architect.py `_hessian_vector_product`). The unrolled and perturbed weights
   are passed to the supernet with torch.func.functional_call: nothing is copied into a second model.
2. w: one SGD step of the supernet through the mixing weights softmax(alpha) on the training batch
   (the same batch the unrolled step used).
Alpha batches come from the task's held-out split (images: `num_valid` training images, half of them
in the official search; the official code also augments them, here they are not).

Each epoch ends with the genotype derived by the official rule (the space's `derive`) validated on the
shared weights, and logs of what DARTS users watch: the softmax of alpha per edge as a heatmap per
cell type, the genotype as text and picture, the entropy of alpha, the number of parameter-free ops in
the derived normal cell (collapse to skip connections shows there first), and a row of archs.jsonl.
`enas derive` writes the genotype to arch.json with its metric on the shared weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..config import SearchPreset
from ..logger import cell_figure, cell_text
from ..optim import lr_at
from ..registry import SPACES
from .base import register
from .derive import write_best
from .engine import SharedWeights
from .weight_sharing import WeightSharingSearch


@dataclass
class DartsConfig:
    """The DARTS strategy's section (official cnn/train_search.py and architect.py defaults)."""

    order: int = 1                  # 1: first-order approximation; 2: the unrolled step (--unrolled)
    arch_lr: float = 3e-4           # --arch_learning_rate (Adam)
    arch_beta1: float = 0.5         # architect.py: betas=(0.5, 0.999)
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3  # --arch_weight_decay
    init_scale: float = 1e-3        # alpha = init_scale * N(0, 1) (model_search.py _initialize_alphas)
    # the unrolled step clips the weights' gradient at shared.grad_clip and scales the implicit gradient
    # by the clip coefficient, as the official recurrent search does (rnn/architect.py); the
    # convolutional one does not (cnn/architect.py). The official `_clip` returns max_norm / norm also
    # when it is above 1 (no clipping), scaling the implicit gradient up; here the coefficient is at most 1.
    unrolled_clip: bool = False
    # the finite difference's radius: eps = fd_radius / ||v|| (architect.py `_hessian_vector_product`, r)
    fd_radius: float = 1e-2

    ranges: ClassVar[dict] = {"arch_lr": "> 0", "arch_beta1": "< 1", "arch_beta2": "< 1", "fd_radius": "> 0"}
    choices: ClassVar[dict] = {"order": (1, 2)}


class ArchitectureWeights:
    """alpha (the space's `mixture_shape`), its Adam optimiser, and the alpha step."""

    unit = "step"
    steps = 0  # the alpha steps ride along with the weight steps, one each
    candidates_from = "derived from the architecture weights by the DARTS rule"

    def __init__(self, c: DartsConfig, engine: SharedWeights):
        self.c, self.engine = c, engine
        space = engine.space
        self.alpha = torch.nn.Parameter(c.init_scale * torch.randn(space.mixture_shape, device=engine.device))
        self.optimizer = torch.optim.Adam([self.alpha], lr=c.arch_lr, betas=(c.arch_beta1, c.arch_beta2),
                                          weight_decay=c.arch_weight_decay)

    def weights(self) -> torch.Tensor:
        """The mixing weights softmax(alpha) over each edge's ops, as the supernet takes them."""
        return F.softmax(self.alpha, dim=-1)

    def best(self) -> torch.Tensor:
        """The genotype the official rule derives from alpha, tokens [L] on the device."""
        return torch.tensor(self.engine.space.derive(self.weights()), device=self.engine.device)

    # --- the alpha step ---------------------------------------------------------------------------
    def step(self, train_batch) -> None:
        """One Adam step of alpha on the next alpha batch (`train_batch`: the weights' batch of this
        step, which the unrolled step trains on). A recurrent task carries the alpha batches' state."""
        e = self.engine
        e.supernet.train()
        valid_batch = e.task.alpha_inputs(e.supernet)
        self.optimizer.zero_grad(set_to_none=True)
        if self.c.order == 1:
            loss, state = self._loss(valid_batch)
            grad = torch.autograd.grad(loss, self.alpha)[0]
        else:
            grad, state = self.unrolled_gradient(train_batch, valid_batch)
        e.task.keep_alpha_state(state)
        self.alpha.grad = grad
        self.optimizer.step()

    def _loss(self, batch, params: dict | None = None):
        """(loss, state after it): the task's loss of the supernet (or of the supernet with `params` in
        place of its weights) through the mixture softmax(alpha) on `batch`."""
        e = self.engine
        model = e.supernet if params is None else _Functional(e.supernet, params)
        return e.task.batch_loss(model, self.weights(), batch)

    def unrolled_gradient(self, train_batch, valid_batch):
        """(grad_alpha of L_val at the unrolled weights, the alpha batch's state after it) (module
        docstring; architect.py `_backward_step_unrolled`)."""
        e, cfg = self.engine, self.engine.cfg.shared
        names, w = zip(*e.supernet.named_parameters())
        xi = lr_at(cfg, e.epoch)
        grads = torch.autograd.grad(self._loss(train_batch)[0], w)
        with torch.no_grad():
            clip = _clip(grads, cfg.grad_clip) if self.c.unrolled_clip else 1.0
            moments = [e.optimizer.state.get(p, {}).get("momentum_buffer") for p in w]
            unrolled = {n: (p - xi * ((0 if m is None else cfg.momentum * m) + g + cfg.weight_decay * p))
                        .requires_grad_() for n, p, g, m in zip(names, w, grads, moments)}
        loss, state = self._loss(valid_batch, unrolled)
        d_alpha, *v = torch.autograd.grad(loss, [self.alpha, *unrolled.values()])
        with torch.no_grad():
            if self.c.unrolled_clip:
                _clip(v, cfg.grad_clip)
            eps = self.c.fd_radius / _norm(v)
            plus = {n: p + eps * t for n, p, t in zip(names, w, v)}
            minus = {n: p - eps * t for n, p, t in zip(names, w, v)}
        g_plus = torch.autograd.grad(self._loss(train_batch, plus)[0], self.alpha)[0]
        g_minus = torch.autograd.grad(self._loss(train_batch, minus)[0], self.alpha)[0]
        return d_alpha - xi * clip * (g_plus - g_minus) / (2 * eps), state

    # --- what an epoch logs -----------------------------------------------------------------------
    def end_epoch(self, valid: float | None) -> None:
        """The epoch's alpha and genotype (module docstring), on rank 0."""
        e = self.engine
        if not e.dist.is_main:
            return
        space, step, m = e.space, e.global_step, e.task.metric
        # the relaxed supernet's own validation (what the official search reports as valid_acc); the
        # derived genotype on the same weights usually scores far lower (the discretisation gap)
        relaxed = e.task.evaluate(e.supernet, self.weights().detach(), "valid", e.cfg.eval_max_batches)
        weights = self.weights().detach().cpu()
        tokens = space.derive(weights)
        entropy = -(weights * weights.clamp_min(1e-30).log()).sum(-1).mean()
        scalars = {"darts/alpha_entropy": entropy, f"darts/relaxed_valid_{m}": relaxed}
        if hasattr(space, "parameter_free"):
            scalars["darts/parameter_free_ops"] = space.parameter_free(tokens)
        e.logger.scalars(scalars, step)
        e.logger.text("darts/genotype", cell_text(space, tokens), step)
        e.logger.figure("darts/genotype_cell", cell_figure(space, tokens), step)
        for name, fig in _heatmaps(space, weights).items():
            e.logger.figure(f"darts/alpha_{name}", fig, step)
        record = {"step": e.shared_step, "epoch": e.epoch, "phase": "epoch", "arch": " ".join(map(str, tokens)),
                  "metric": valid, "relaxed_metric": relaxed, "entropy": float(entropy)}
        if valid is not None:
            record["reward"] = float(e.task.reward(torch.tensor(valid)))
        e.logger.arch(record)

    def flush(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {"alpha": self.alpha.detach().cpu(), "alpha_opt": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
        self.optimizer.load_state_dict(state["alpha_opt"])


def _norm(tensors) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


def _clip(tensors, max_norm: float) -> torch.Tensor:
    """Scale `tensors` in place to a global norm of at most max_norm; the coefficient (rnn/architect.py `_clip`)."""
    coef = (max_norm / (_norm(tensors) + 1e-6)).clamp(max=1.0)
    for t in tensors:
        t.mul_(coef)
    return coef


class _Functional:
    """A supernet called with other weights (torch.func.functional_call), as a task calls a model."""

    def __init__(self, module: torch.nn.Module, params: dict):
        self.module, self.params = module, params

    def __call__(self, *args):
        return functional_call(self.module, self.params, args)


def _heatmaps(space, weights: torch.Tensor) -> dict:
    """softmax(alpha) per cell type [E, ops] as a figure with the edges and ops named."""
    from matplotlib.figure import Figure

    cells = ("normal", "reduce") if weights.dim() == 3 else ("cell",)
    figures = {}
    for name, w in zip(cells, weights.reshape(len(cells), *weights.shape[-2:])):
        rows = space.edge_names()
        fig = Figure(figsize=(1.2 + 0.55 * w.shape[1], 0.8 + 0.28 * len(rows)))
        ax = fig.add_axes((0.3, 0.15, 0.6, 0.8))
        image = ax.imshow(w.numpy(), cmap="viridis", vmin=0.0, aspect="auto")
        ax.set_xticks(range(w.shape[1]), space.mixed_ops, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_title(f"softmax(alpha), {name} cell", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.05)
        figures[name] = fig
    return figures


@register
class Darts(WeightSharingSearch):
    name = "darts"
    description = "DARTS (Liu et al. 2019): a softmax-relaxed supernet; alpha by gradient on the validation loss"
    Section = DartsConfig
    validated = "the derived genotype"

    @classmethod
    def section_preset(cls, recipe: SearchPreset, task: str) -> DartsConfig:
        return DartsConfig(**recipe.sections.get(cls.name, {}))

    @classmethod
    def unfit(cls, space: type, task: str) -> str | None:
        if getattr(space, "mixed_ops", None) is None:
            relaxed = [s.name for s in SPACES if getattr(s, "mixed_ops", None) is not None]
            return f"DARTS needs a space with a relaxed supernet ({', '.join(relaxed)})"
        return None

    def make_policy(self):
        return ArchitectureWeights(self.cfg.darts, self.engine)

    def run(self, max_units: int | None = None, deadline: float | None = None) -> bool:
        e, alpha = self.engine, self.policy
        with e.loop({"shared": (e.shared_steps, "step")}, self.save, max_units, deadline) as loop:
            while loop.epoch < self.cfg.epochs:
                for _ in loop.units("shared"):                   # Algorithm 1, per minibatch:
                    batch = e.next_batch()
                    alpha.step(batch)                            # alpha down the validation loss
                    e.train_step(alpha.weights().detach(), batch)  # w down the training loss, through the mixture
                valid = e.validate(alpha.best)                   # the derived genotype on the shared weights
                alpha.end_epoch(valid)
                loop.end_epoch()
        return loop.finished

    def derive(self, samples: int | None = None) -> dict | None:
        """The genotype of the trained alpha (the official rule), with its metric on the shared weights."""
        return write_best(self, self.policy.best()[None], f"{self.policy.candidates_from} (the strongest op "
                          f"other than none on the strongest edges of each node), scored on the shared weights "
                          f"on the first validation batch")
