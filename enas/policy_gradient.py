"""REINFORCE with a moving-average baseline: the one controller update of every strategy with a
controller (ENAS, Pham et al. 2018 sec. 2.2; full NAS, Zoph & Le 2017 sec. 3.2).

An update sees n architectures a_1..a_n sampled from the current policy and their task rewards r_i:

    R_i  = r_i + entropy_weight * H_i              H_i: the policy's entropy along a_i (ENAS adds it
                                                   to the reward; official `build_trainer`)
    b_i  = decay * b_{i-1} + (1 - decay) * R_i     one moving-average step per architecture, in order
    loss = mean_i -(R_i - b_i) log pi(a_i)  +  skip_weight * mean_i KL_skip(a_i)  [+ extra]

then the gradient's global norm is clipped at `grad_clip` (0 = off) and Adam takes one step.
`extra` is an optional differentiable term a strategy adds to the same loss, so that one backward
pass and one clipped step serve both: ENAS's memorisation regulariser (memory.py) passes
memory_weight times the negative log-likelihood of remembered architectures. `controller/loss`
reports the whole loss, extra term included.

Aggregation. Official ENAS runs one architecture per sess.run and SyncReplicasOptimizer averages the
gradients of `num_aggregate` runs before one Adam step (src/utils.py `get_train_ops`); the
parameters do not change in between, so sampling the n architectures in one batch draws them from
the same policy, and the mean over i is that average. Official clips each run's gradient before
the average (a no-op in the official scripts, which set no controller clip); here the mean
gradient is clipped, which needs one backward pass instead of n.

Baseline. Official ENAS (src/ptb/ptb_enas_controller.py, src/cifar10/general_controller.py and
micro_controller.py, `build_trainer`) keeps b in a variable initialised to 0.0 and moves it once per
sess.run, i.e. once per architecture: `assign_sub(b, (1 - bl_dec) * (b - reward))`. The advantage
`reward - b` is computed after that update (the reward carries a control dependency on it, and the
read of a TF1 variable aliases its buffer, which the in-place update has changed), so each
architecture's advantage uses the baseline that already includes its own reward:
R_i - b_i = decay * (R_i - b_{i-1}). carpedm20/ENAS-pytorch (trainer.py `train_controller`) does the
same. b_0 = 0.0 as the official variable; ENAS-pytorch starts from the first reward instead.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .config import ControllerConfig
from .controller import Controller, Sample
from .spaces import Subset


class Update(NamedTuple):
    baseline: torch.Tensor  # b_n: the baseline after the last architecture, 0-dim
    reward: torch.Tensor    # [n] R_i: the task reward plus the entropy bonus
    scalars: dict           # "controller/..." -> 0-dim tensor, for the logger (read back at log time)


def moving_average(baseline: torch.Tensor, rewards: torch.Tensor, decay: float) -> torch.Tensor:
    """[n] b_1..b_n with b_i = decay * b_{i-1} + (1 - decay) * R_i, from b_0 = `baseline` (0-dim)."""
    out = []
    for r in rewards:
        baseline = decay * baseline + (1 - decay) * r
        out.append(baseline)
    return torch.stack(out)


def reinforce(controller: Controller, optimizer: torch.optim.Optimizer, sample: Sample, reward: torch.Tensor,
              baseline: torch.Tensor, c: ControllerConfig, extra_loss: torch.Tensor | None = None) -> Update:
    """One controller update. sample: the policy's `Sample` of n architectures (sampled, or
    `controller.log_prob` of given ones), with gradient; reward [n]: their task rewards; baseline:
    b_0, 0-dim; extra_loss: an optional 0-dim term with gradient, added to the loss before the one
    backward pass. No host synchronisation."""
    entropy = sample.entropy.detach()
    total = reward.detach().to(entropy.dtype) + c.entropy_weight * entropy  # [n]
    baselines = moving_average(baseline.to(total), total, c.baseline_decay)  # [n]
    advantage = total - baselines
    loss = -(advantage * sample.log_prob).mean() + c.skip_weight * sample.skip_kl.mean()
    if extra_loss is not None:
        loss = loss + extra_loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if c.grad_clip:
        torch.nn.utils.clip_grad_norm_(controller.parameters(), c.grad_clip)
    optimizer.step()
    scalars = {"controller/reward": total.mean(), "controller/baseline": baselines[-1],
               "controller/advantage": advantage.mean(), "controller/entropy": entropy.mean(),
               "controller/loss": loss.detach()}
    if any(isinstance(d, Subset) and d.num_options for d in controller.space.decisions):
        scalars["controller/skip_rate"] = sample.skip_rate.mean()
    return Update(baselines[-1], total, scalars)


__all__ = ["Update", "moving_average", "reinforce"]
