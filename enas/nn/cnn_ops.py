"""Building blocks of the ENAS image networks (official ENAS src/cifar10/general_child.py,
micro_child.py, image_ops.py): every op of the macro and micro spaces is built here.

Conventions (all NCHW, stride-1 "same" padding unless said):
- Batch norm is affine (official `batch_norm`: learned offset and scale) with eps 1e-5 and
  momentum 0.1 (TF decay 0.9); the official macro search's masked BN uses eps 1e-3, here 1e-5
  throughout. `batch_stats=True` makes it normalise with the statistics of the current batch in
  train *and* eval mode (track_running_stats=False): what the official micro search does in every
  pass (micro_child.py forces is_training=True), and the sound choice when one BN serves many
  architectures (the official macro search keeps running averages shared by all of them).
- Convolutions have no bias and start He-normal (official `create_weight`: he_normal).
- Pools are 3x3, padding 1; the average excludes the padding, as TF's "SAME" pooling does.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..arch import Arch
from ..errors import ArchError


def bn(channels: int, batch_stats: bool, affine: bool = True) -> nn.BatchNorm2d:
    """affine=False: no learned offset and scale (DARTS's search networks)."""
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1, affine=affine, track_running_stats=not batch_stats)


def init_cnn_(module: nn.Module) -> None:
    """He-normal convolutions and linear layers, BN scale 1 and offset 0 (official initialisers)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def conv(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, groups=groups, bias=False)


class ConvBNReLU(nn.Sequential):
    """conv -> BN -> ReLU: the macro search branches (general_child.py `_conv_branch`)."""

    def __init__(self, c_in: int, c_out: int, k: int, batch_stats: bool, separable: bool = False):
        if separable:
            layers = [conv(c_in, c_in, k, groups=c_in), conv(c_in, c_out, 1)]
        else:
            layers = [conv(c_in, c_out, k)]
        super().__init__(*layers, bn(c_out, batch_stats), nn.ReLU())


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv -> BN: calibrations, cell outputs, macro final layers (official `_fixed_layer`)."""

    def __init__(self, c_in: int, c_out: int, k: int, batch_stats: bool, stride: int = 1,
                 separable: bool = False, affine: bool = True):
        if separable:  # depthwise k x k (channel multiplier 1, as official) then pointwise 1x1
            layers = [conv(c_in, c_in, k, stride, groups=c_in), conv(c_in, c_out, 1)]
        else:
            layers = [conv(c_in, c_out, k, stride)]
        super().__init__(nn.ReLU(), *layers, bn(c_out, batch_stats, affine))


class SepConvStack(nn.Sequential):
    """Micro separable conv: (ReLU -> depthwise k x k -> pointwise -> BN) twice; the stride on the first
    (official micro_child.py `_enas_conv` / `_fixed_conv`, stack_convs=2)."""

    def __init__(self, c: int, k: int, batch_stats: bool, stride: int = 1, affine: bool = True):
        super().__init__(ReLUConvBN(c, c, k, batch_stats, stride, separable=True, affine=affine),
                         ReLUConvBN(c, c, k, batch_stats, 1, separable=True, affine=affine))


class Pool(nn.Module):
    """3x3 average or max pool; 'avg' excludes the zero padding (TF "SAME")."""

    def __init__(self, kind: str, stride: int = 1):
        super().__init__()
        if kind not in ("avg", "max"):
            raise ValueError(kind)
        self.kind, self.stride = kind, stride

    def forward(self, x):
        if self.kind == "avg":
            return F.avg_pool2d(x, 3, self.stride, 1, count_include_pad=False)
        return F.max_pool2d(x, 3, self.stride, 1)

    def extra_repr(self) -> str:
        return f"{self.kind}, stride={self.stride}"


class FactorizedReduction(nn.Module):
    """Halve H and W without dropping pixels (official `_factorized_reduction`): two 1x1 convs on the
    even and on the odd (shifted, zero-padded) pixels, c_out/2 channels each, concatenated, BN.
    Odd sizes work: 7 -> 4 on both paths."""

    def __init__(self, c_in: int, c_out: int, batch_stats: bool, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"factorized reduction needs an even channel count, got {c_out}")
        self.conv1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv2 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.bn = bn(c_out, batch_stats, affine)

    def forward(self, x):
        path1 = self.conv1(x[:, :, ::2, ::2])
        path2 = self.conv2(F.pad(x, (0, 1, 0, 1))[:, :, 1::2, 1::2])
        return self.bn(torch.cat([path1, path2], dim=1))


class ReLUFactorizedReduction(nn.Sequential):
    """ReLU then factorized reduction (official `_maybe_calibrate_size`, "pool_x")."""

    def __init__(self, c_in: int, c_out: int, batch_stats: bool, affine: bool = True):
        super().__init__(nn.ReLU(), FactorizedReduction(c_in, c_out, batch_stats, affine))


def drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Zero whole examples of x [B,C,H,W] with probability drop_prob, scale the rest by 1/keep
    (official image_ops.py `drop_path`)."""
    if not training or drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask.div_(keep)


def _same_padding(k: int) -> tuple[int, int, int, int]:
    """TF "SAME" padding for a stride-1 k x k kernel: the odd pixel goes after (right, bottom)."""
    before = (k - 1) // 2
    return (before, k - 1 - before, before, k - 1 - before)


class AuxHead(nn.Sequential):
    """Auxiliary classifier (official micro_child.py "aux_head"): ReLU, 5x5 average pool stride 3
    (no padding), 1x1 conv to 128, BN, ReLU, an hw x hw conv to 768 ("same" padding, hw = the pooled
    size: 2 for 32x32 images), BN, ReLU, global average, linear to the classes (no bias).
    Its BNs use batch statistics (official is_training=True); the head only runs in training.
    Maps smaller than 5x5 (images under 17 pixels) pool with a kernel of their own size."""

    def __init__(self, c_in: int, num_classes: int, feature_size: int):
        k = min(5, feature_size)
        hw = (feature_size - k) // 3 + 1
        super().__init__(nn.ReLU(), nn.AvgPool2d(k, 3),
                         nn.Conv2d(c_in, 128, 1, bias=False), bn(128, True), nn.ReLU(),
                         nn.ZeroPad2d(_same_padding(hw)), nn.Conv2d(128, 768, hw, bias=False), bn(768, True),
                         nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(768, num_classes, bias=False))


# --------------------------------------------------------------------------------------------------
# the ops of the two spaces, by the names their decisions give them (`op_names` of the spaces)
# --------------------------------------------------------------------------------------------------
_KERNEL = {"conv3x3": 3, "sep3x3": 3, "conv5x5": 5, "sep5x5": 5}


def macro_op(name: str, c_in: int, c: int, style: str, batch_stats: bool) -> nn.Module:
    """Macro op `name` (conv3x3, sep3x3, conv5x5, sep5x5, avgpool3x3, maxpool3x3) from c_in to c channels.

    style "search" (official general_child.py `_enas_layer`, `_conv_branch` / `_pool_branch`):
      convs: 1x1 conv-BN-ReLU, then k x k (or separable) conv-BN-ReLU; pools: 1x1 conv-BN-ReLU, pool.
    style "final" (official `_fixed_layer`): convs: ReLU-1x1 conv-BN, then ReLU-k x k conv-BN.
      The official fixed layer builds a plain k x k conv for the separable ops too and has no pool
      branch; here separable ops stay separable and pools are ReLU-1x1 conv-BN then the pool.
    """
    sep = name.startswith("sep")
    if style == "search":
        if name in _KERNEL:
            return nn.Sequential(ConvBNReLU(c_in, c, 1, batch_stats),
                                 ConvBNReLU(c, c, _KERNEL[name], batch_stats, sep))
        return nn.Sequential(ConvBNReLU(c_in, c, 1, batch_stats), Pool(name[:3]))
    if style == "final":
        if name in _KERNEL:
            return nn.Sequential(ReLUConvBN(c_in, c, 1, batch_stats),
                                 ReLUConvBN(c, c, _KERNEL[name], batch_stats, separable=sep))
        return nn.Sequential(ReLUConvBN(c_in, c, 1, batch_stats), Pool(name[:3]))
    raise ValueError(style)


def micro_op(name: str, c: int, stride: int, batch_stats: bool) -> nn.Module:
    """Micro op `name` (sep3x3, sep5x5, avgpool3x3, maxpool3x3, identity) on c channels (official
    micro_child.py `_enas_cell` / `_fixed_layer`): separable stacks, 3x3 pools, identity (a factorized
    reduction when stride is 2)."""
    if name.startswith("sep"):
        return SepConvStack(c, _KERNEL[name], batch_stats, stride)
    if name.endswith("pool3x3"):
        return Pool(name[:3], stride)
    if name == "identity":
        return nn.Identity() if stride == 1 else FactorizedReduction(c, c, batch_stats)
    raise ValueError(name)


# --------------------------------------------------------------------------------------------------
# reading the architecture argument of the image networks
# --------------------------------------------------------------------------------------------------
def arch_tokens(space, arch) -> tuple[int, ...]:
    """The tokens of an Arch or of a LongTensor [L]. Which modules run is Python control flow, so a
    tensor is copied to the host (once per forward) and validated."""
    if isinstance(arch, Arch):
        if arch.space != space:
            raise ArchError(f"architecture of {arch.space!r} given to a network of {space!r}")
        return arch.tokens
    if isinstance(arch, torch.Tensor):
        if arch.shape != (space.num_tokens,):
            raise ArchError(f"arch tensor must have shape [{space.num_tokens}], got {tuple(arch.shape)}")
        return Arch(space, tuple(arch.tolist())).tokens
    raise ArchError(f"arch must be an Arch or a LongTensor of tokens, got {type(arch).__name__}")
