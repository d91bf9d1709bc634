"""Image networks of the `enas_macro` space: the supernet and the standalone child.

Layout (official ENAS src/cifar10/general_child.py):

    stem: 3x3 conv (in_channels -> C), BN                     entries = [stem]
    layer i: out = op_i(entries[-1]); for i >= 1 combine out with the entries its skip bits name
             (bit k -> entries[k]: stem, layer 0, ..., layer i-2; see enas/spaces/enas_macro.py);
             entries.append(out)
    after the pool layers (space.pool_layers): every entry -> factorized reduction (H/2, W/2)
    head: global average pool, dropout, linear (no bias)

Two layer styles, both from the official code:
- "search" (`_enas_layer`, the weight-shared search network; the supernet and, by default, the
  child): ops are `cnn_ops.macro_op(style="search")`; combine = BN(out + sum of skipped entries);
  C channels throughout (the official search does not widen at pools).
- "final" (`_fixed_layer`, the network trained from scratch; child only): ReLU-conv-BN ops;
  combine = ReLU, 1x1 conv over concat(skipped entries, out) to C, BN; C doubles at each pool
  (24 layers and 96 filters in official scripts/cifar10_macro_final.sh).

Only the factorized reductions whose result some later layer reads are built and run, so every
weight a forward touches belongs to the architecture and a child holds nothing else.

Keywords (supernet and child): in_channels (3), num_classes (10), channels (C, 36 as the official
search; 96 in the final script), num_layers (optional, must equal space.num_layers), dropout before
the classifier (official keep_prob: 0.9 search, 0.5 final -> 0.1 / 0.5), style, bn_batch_stats
(child only; see MacroChild); aux_head and drop_path must stay off and image_size is ignored (the
same keywords as the micro networks).

The supernet holds one op per (layer, op) (`ops[i][o]`) and one reduction per (pool, entry); a
forward runs only the sampled op of each layer. The architecture is read on the host (a
LongTensor is copied back once per call): which modules run is Python control flow.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..arch import Arch
from ..errors import ConfigError
from .cnn_ops import FactorizedReduction, ReLUConvBN, arch_tokens, bn, conv, init_cnn_, macro_op
from .param_map import ParamSlice

STYLES = ("search", "final")


def needed_reductions(space, layers) -> dict[int, list[int]]:
    """pool layer P -> the entries whose reduction after P some later layer reads (as input or skip)."""
    # layer i reads entry i (its input) and its skip sources
    reads = [{i} | set(space.skip_sources(bits)) for i, (_, bits) in enumerate(layers)]
    # at pool P the entries are the stem and layers 0..P, i.e. 0..P+1
    return {p: sorted({k for j in range(p + 1, len(layers)) for k in reads[j] if k <= p + 1})
            for p in space.pool_layers}


class _SkipSum(nn.Module):
    """Search-style combine: BN(out + sum(skips)) (official `_enas_layer`)."""

    def __init__(self, c: int, batch_stats: bool):
        super().__init__()
        self.bn = bn(c, batch_stats)

    def forward(self, out, skips):
        for s in skips:
            out = out + s
        return self.bn(out)


class _SkipConcat(nn.Module):
    """Final-style combine: ReLU, 1x1 conv over concat(skips, out), BN (official `_fixed_layer`)."""

    def __init__(self, num_skips: int, c: int, batch_stats: bool):
        super().__init__()
        self.conv = ReLUConvBN((num_skips + 1) * c, c, 1, batch_stats)

    def forward(self, out, skips):
        return self.conv(torch.cat([*skips, out], dim=1))


class _MacroNet(nn.Module):
    """What supernet and child share: the stem, the head, the schedule of widths and pools."""

    def __init__(self, space, in_channels: int = 3, num_classes: int = 10, channels: int = 36,
                 num_layers: int | None = None, dropout: float = 0.0, style: str = "search",
                 bn_batch_stats: bool | None = None, aux_head: bool = False, drop_path: float = 0.0,
                 image_size: int | None = None):
        """image_size is accepted for the same keywords as the micro networks and not needed here."""
        super().__init__()
        if getattr(space, "models", None) != __name__:  # a space whose registration names this module
            raise ConfigError(f"the macro network builds the spaces whose models are {__name__}, "
                              f"not {getattr(space, 'name', space)!r}")
        for name, v in (("in_channels", in_channels), ("num_classes", num_classes), ("channels", channels)):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if channels % 2:
            raise ConfigError(f"channels must be even (factorized reductions halve them), got {channels}")
        if num_layers is not None and num_layers != space.num_layers:
            raise ConfigError(f"num_layers={num_layers} but the space has {space.num_layers} layers")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
        if style not in STYLES:
            raise ConfigError(f"style must be one of {STYLES}, got {style!r}")
        # The official macro child (general_child.py) has neither; its scripts' flags for them go unused.
        if aux_head:
            raise ConfigError("the macro network has no auxiliary head (official general_child.py has none)")
        if drop_path:
            raise ConfigError("the macro network has no drop path (official general_child.py applies none)")
        self.space, self.style = space, style
        self.in_channels, self.num_classes, self.channels = in_channels, num_classes, channels
        self.dropout = dropout
        self.bn_batch_stats = (style == "search") if bn_batch_stats is None else bool(bn_batch_stats)
        self.num_layers = space.num_layers
        # width of layer i; the final style doubles after each pool (official `out_filters *= 2`)
        widths, c = [], channels
        for i in range(self.num_layers):
            widths.append(c)
            if style == "final" and i in space.pool_layers:
                c *= 2
        self.widths = widths
        self.stem = nn.Sequential(conv(in_channels, channels, 3), bn(channels, self.bn_batch_stats))
        self.fc = nn.Linear(c, num_classes, bias=False)

    def _reduction(self, p: int) -> FactorizedReduction:
        c = self.widths[p]
        return FactorizedReduction(c, 2 * c if self.style == "final" else c, self.bn_batch_stats)

    def _combine(self, i: int, num_skips: int) -> nn.Module:
        c = self.widths[i]
        if self.style == "search":
            return _SkipSum(c, self.bn_batch_stats)
        return _SkipConcat(num_skips, c, self.bn_batch_stats)

    def _run(self, x: torch.Tensor, layers, op_of) -> torch.Tensor:
        """x [B,in,H,W] -> logits [B,classes]; op_of(i, op) is the module of layer i's op."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"images must be [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        needed = needed_reductions(self.space, layers)
        entries: list[torch.Tensor | None] = [self.stem(x)]
        out = entries[0]
        for i, (op, bits) in enumerate(layers):
            out = op_of(i, op)(entries[-1])
            if i > 0:
                out = self.combine[i](out, [entries[k] for k in self.space.skip_sources(bits)])
            entries.append(out)
            if i in needed:  # entries no later layer reads are dropped, not reduced
                keep = set(needed[i])
                entries = [self.reduce[f"{i}_{k}"](e) if k in keep else None for k, e in enumerate(entries)]
                out = entries[-1]
        h = F.adaptive_avg_pool2d(out, 1).flatten(1)  # [B,C]
        h = F.dropout(h, self.dropout, self.training)
        return self.fc(h)

    def extra_repr(self) -> str:
        return (f"num_layers={self.num_layers}, channels={self.channels}, style={self.style!r}, "
                f"bn_batch_stats={self.bn_batch_stats}, dropout={self.dropout}")


class MacroSupernet(_MacroNet):
    """Shared weights of every `enas_macro` architecture: `supernet(images, arch) -> logits`."""

    def __init__(self, space, **kw):
        if kw.get("style", "search") != "search":
            raise ConfigError("the macro supernet is the search network (style='search')")
        if kw.get("bn_batch_stats", True) is not True:
            raise ConfigError("the macro supernet normalises with batch statistics (bn_batch_stats=True)")
        super().__init__(space, **kw)
        self.ops = nn.ModuleList(nn.ModuleList(macro_op(name, self.widths[i], self.widths[i], "search", True)
                                               for name in space.op_names) for i in range(self.num_layers))
        self.combine = nn.ModuleList(nn.Identity() if i == 0 else self._combine(i, i) for i in range(self.num_layers))
        # one reduction per (pool layer p, entry k), entries 0 .. p+1 (stem and layers 0..p)
        self.reduce = nn.ModuleDict({f"{p}_{k}": self._reduction(p)
                                     for p in space.pool_layers for k in range(p + 2)})
        init_cnn_(self)

    def forward(self, x: torch.Tensor, arch) -> torch.Tensor:
        """x [B,C,H,W], arch: Arch or LongTensor[L] -> logits [B, num_classes]."""
        layers = self.space.layers(arch_tokens(self.space, arch))
        return self._run(x, layers, lambda i, op: self.ops[i][op])


class MacroChild(_MacroNet):
    """One `enas_macro` architecture with only its weights: `child(images) -> logits`.

    style="search" computes what the supernet computes (inherit its weights: `param_map`);
    style="final" is the official final network (train it from scratch). bn_batch_stats defaults
    to True for "search" (as the supernet) and False for "final" (running statistics in eval).
    """

    def __init__(self, space, arch, **kw):
        super().__init__(space, **kw)
        self.arch = Arch.of(space, arch)
        self.layers = space.layers(self.arch.tokens)
        bs = self.bn_batch_stats
        self.ops = nn.ModuleList(macro_op(space.op_names[op], self.widths[i], self.widths[i], self.style, bs)
                                 for i, (op, _) in enumerate(self.layers))
        self.combine = nn.ModuleList(nn.Identity() if i == 0 else self._combine(i, sum(bits))
                                     for i, (_, bits) in enumerate(self.layers))
        self.reduce = nn.ModuleDict({f"{p}_{k}": self._reduction(p)
                                     for p, ks in needed_reductions(space, self.layers).items() for k in ks})
        init_cnn_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B,C,H,W] -> logits [B, num_classes]."""
        return self._run(x, self.layers, lambda i, op: self.ops[i])


# --------------------------------------------------------------------------------------------------
# the registration's builders, and where a child's weights live in the supernet
# --------------------------------------------------------------------------------------------------
def supernet(space, **kw) -> MacroSupernet:
    return MacroSupernet(space, **kw)


def child(space, arch, **kw) -> MacroChild:
    return MacroChild(space, arch, **kw)


def param_map(child_net: MacroChild, supernet_net: MacroSupernet) -> list[ParamSlice]:
    """Every tensor of a search-style child is a whole supernet tensor under the same name, except
    layer i's op, which is op `op_i` of the supernet's layer i: ops.i.rest -> ops.i.op_i.rest."""
    if child_net.style != "search":
        raise ConfigError("only a style='search' child computes the supernet's function; "
                          "a final child trains from scratch")
    same = ("in_channels", "num_classes", "channels")
    if any(getattr(supernet_net, k) != getattr(child_net, k) for k in same):
        raise ConfigError("supernet and child differ in in_channels, num_classes or channels")
    slices = []
    for name in child_net.state_dict():
        parts = name.split(".")
        if parts[0] == "ops":
            parts.insert(2, str(child_net.layers[int(parts[1])][0]))
        slices.append(ParamSlice(name, ".".join(parts)))
    return slices
