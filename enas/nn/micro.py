"""Image networks of the `enas_micro` space: the supernet and the standalone child.

Layout (official ENAS src/cifar10/micro_child.py, `_model`), N normal cells per stage:

    stem: 3x3 conv (in_channels -> 3C), BN;  inputs = [stem, stem]
    3N + 2 layers; layers N and 2N + 1 are reduction cells (official pool_layers with
    child_num_layers = 3N: 6 -> N = 2 in the search, 15 -> N = 5 in the final network); C doubles
    at each; all other layers are normal cells; after each layer inputs = [inputs[1], output]
    head: ReLU, global average pool, dropout, linear (no bias)
    auxiliary head (aux_head=True, training only) on the output of layer 2N + 2

Two cell styles, both from the official code:
- "search" (`_enas_layer`; the supernet and, by default, the child): a reduction layer first
  halves its last input with a factorized reduction and runs a stride-1 cell on
  [last input, reduced]; inputs are calibrated to C channels (ReLU + factorized reduction when
  the sizes differ, else ReLU-1x1 conv-BN when the widths do); each block sums op(node) of two
  earlier nodes; the loose ends are concatenated and mapped back to C by ReLU, 1x1 conv, BN.
  The supernet holds one op per (cell, block, slot, input node, op), as the official search
  indexes its weights by the input node (`prev_cell`), and one 1x1 slice per possible loose
  end (`out_w[k]`); it runs only the sampled ops.
- "final" (`_fixed_layer`; child only, trained from scratch): the calibrated inputs, then
  ReLU-1x1 conv-BN on input 1 ("layer_base"); reduction cells apply their ops with stride 2 to
  the two inputs (identity: a factorized reduction); drop path on every op but identity; the
  output is the concatenation of the loose ends (loose inputs of a reduction cell reduced first),
  with no 1x1 conv, so widths vary with the architecture.

Drop path (official `_apply_drop_path`, which only the final network uses; off by default here in
both styles): every op but identity drops whole examples with probability
drop_path * (l + 1) / (3N + 2) * min(1, drop_path_progress) in layer l; set
`net.drop_path_progress` to the fraction of training done (it starts at 1.0: the full rate).
The official final value is drop_path = 0.4 (child_drop_path_keep_prob = 0.6).

Keywords (supernet and child): in_channels (3), num_classes (10), channels (C: 20 search, 36 final),
num_layers (N, cells per stage: 2 search, 5 final), dropout before the classifier (official
keep_prob 0.9 search, 0.8 final -> 0.1 / 0.2), drop_path, aux_head, image_size (the input's side,
which sizes the auxiliary head's last conv; 32 for CIFAR-10, 28 for Fashion-MNIST), style,
bn_batch_stats (child only; see MicroChild).

forward(images) returns logits [B, num_classes]; with aux_head=True in training mode it returns
(logits, aux_logits) and the training loss is loss(logits) + 0.4 * loss(aux_logits) (official
micro_child.py `_build_train`). `AUX_WEIGHT` holds the 0.4.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..arch import Arch
from ..errors import ConfigError
from .cnn_ops import (AuxHead, FactorizedReduction, ReLUConvBN, ReLUFactorizedReduction, arch_tokens,
                      bn, conv, drop_path, init_cnn_, micro_op)
from .param_map import ParamSlice

STYLES = ("search", "final")
NEVER_DROPPED = "identity"  # the op drop path leaves alone (official `_fixed_layer`)
AUX_WEIGHT = 0.4  # official micro_child.py: train_loss = loss + 0.4 * aux_loss


def _calibrate(c0: int, c1: int, c: int, halve0: bool, batch_stats: bool) -> tuple[nn.Module, nn.Module]:
    """Bring both inputs to c channels and the same size (official `_maybe_calibrate_size`)."""
    if halve0:
        cal0 = ReLUFactorizedReduction(c0, c, batch_stats)
    else:
        cal0 = ReLUConvBN(c0, c, 1, batch_stats) if c0 != c else nn.Identity()
    cal1 = ReLUConvBN(c1, c, 1, batch_stats) if c1 != c else nn.Identity()
    return cal0, cal1


class SearchCell(nn.Module):
    """A search-style cell of `space`; `blocks=None` builds every (block, slot, input, op) edge
    (supernet), a block list builds only those edges (child). forward(s0, s1, blocks) -> [B,C,H,W]."""

    def __init__(self, space, c0: int, c1: int, c: int, halve0: bool, batch_stats: bool, blocks=None):
        super().__init__()
        self.calib0, self.calib1 = _calibrate(c0, c1, c, halve0, batch_stats)
        self.loose_ends, self.op_names = space.loose_ends, space.op_names
        num_blocks = space.num_blocks
        self.shared = blocks is None
        if self.shared:
            # ops[b][slot][index][op]: one module per edge; the official search indexes the weights
            # of each block's x and y branches by their input node (`_enas_cell`, `prev_cell`)
            def all_ops():
                return nn.ModuleList(micro_op(name, c, 1, batch_stats) for name in self.op_names)
            self.ops = nn.ModuleList(
                nn.ModuleList(nn.ModuleList(all_ops() for _index in range(2 + b)) for _slot in range(2))
                for b in range(num_blocks))
            self.out_w = nn.ParameterList(nn.Parameter(torch.empty(c, c, 1, 1))
                                          for _ in range(num_blocks + 2))
            for w in self.out_w:  # He-normal as the child's 1x1 conv (init_cnn_ sees only modules)
                nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")
        else:
            self.ops = nn.ModuleList(nn.ModuleList(micro_op(self.op_names[blk[2 * s + 1]], c, 1, batch_stats)
                                                   for s in range(2)) for blk in blocks)
            loose = self.loose_ends(blocks)
            self.out_conv = nn.Conv2d(len(loose) * c, c, 1, bias=False)
        self.out_bn = bn(c, batch_stats)

    def op(self, b: int, slot: int, index: int, op: int) -> nn.Module:
        return self.ops[b][slot][index][op] if self.shared else self.ops[b][slot]

    def forward(self, s0, s1, blocks, drop_prob: float = 0.0):
        nodes = [self.calib0(s0), self.calib1(s1)]
        for b, blk in enumerate(blocks):
            h = []
            for slot in range(2):
                index, op = blk[2 * slot], blk[2 * slot + 1]
                y = self.op(b, slot, index, op)(nodes[index])
                h.append(drop_path(y, drop_prob, self.training) if self.op_names[op] != NEVER_DROPPED else y)
            nodes.append(h[0] + h[1])
        loose = self.loose_ends(blocks)
        w = torch.cat([self.out_w[k] for k in loose], dim=1) if self.shared else self.out_conv.weight
        out = torch.cat([nodes[k] for k in loose], dim=1) if len(loose) > 1 else nodes[loose[0]]
        return self.out_bn(F.conv2d(F.relu(out), w))


class FinalCell(nn.Module):
    """A final-style cell of fixed blocks (official `_fixed_layer`); output width out_channels."""

    def __init__(self, space, blocks, c0: int, c1: int, c: int, halve0: bool, reduce: bool, batch_stats: bool):
        super().__init__()
        self.blocks, self.reduce = [tuple(b) for b in blocks], reduce
        self.op_names = space.op_names
        self.calib0, self.calib1 = _calibrate(c0, c1, c, halve0, batch_stats)
        self.base = ReLUConvBN(c, c, 1, batch_stats)  # official "layer_base", on input 1
        stride = lambda index: 2 if reduce and index < 2 else 1  # noqa: E731
        self.ops = nn.ModuleList(nn.ModuleList(micro_op(self.op_names[blk[2 * s + 1]], c, stride(blk[2 * s]),
                                                        batch_stats) for s in range(2)) for blk in self.blocks)
        self.loose = space.loose_ends(self.blocks)
        # loose inputs of a reduction cell are at twice the size: reduce them (official `_fixed_combine`)
        self.shrink = nn.ModuleDict({str(k): FactorizedReduction(c, c, batch_stats)
                                     for k in self.loose if reduce and k < 2})
        self.out_channels = len(self.loose) * c

    def forward(self, s0, s1, drop_prob: float = 0.0):
        nodes = [self.calib0(s0), self.base(self.calib1(s1))]
        for b, blk in enumerate(self.blocks):
            h = []
            for slot in range(2):
                index, op = blk[2 * slot], blk[2 * slot + 1]
                y = self.ops[b][slot](nodes[index])
                h.append(drop_path(y, drop_prob, self.training) if self.op_names[op] != NEVER_DROPPED else y)
            nodes.append(h[0] + h[1])
        outs = [self.shrink[str(k)](nodes[k]) if str(k) in self.shrink else nodes[k] for k in self.loose]
        return torch.cat(outs, dim=1)


class _MicroNet(nn.Module):
    """What supernet and child share: argument checks, the stem, the layer schedule, the heads."""

    def __init__(self, space, in_channels: int = 3, num_classes: int = 10, channels: int = 20,
                 num_layers: int = 2, dropout: float = 0.0, drop_path: float = 0.0, aux_head: bool = False,
                 image_size: int = 32, style: str = "search", bn_batch_stats: bool | None = None):
        super().__init__()
        if getattr(space, "models", None) != __name__:  # a space whose registration names this module
            raise ConfigError(f"the micro network builds the spaces whose models are {__name__}, "
                              f"not {getattr(space, 'name', space)!r}")
        for name, v in (("in_channels", in_channels), ("num_classes", num_classes), ("channels", channels),
                        ("num_layers", num_layers), ("image_size", image_size)):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if channels % 2:
            raise ConfigError(f"channels must be even (factorized reductions halve them), got {channels}")
        for name, v in (("dropout", dropout), ("drop_path", drop_path)):
            if not 0.0 <= v < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {v!r}")
        if style not in STYLES:
            raise ConfigError(f"style must be one of {STYLES}, got {style!r}")
        self.space, self.style = space, style
        self.in_channels, self.num_classes, self.channels = in_channels, num_classes, channels
        self.num_layers, self.dropout, self.drop_path = num_layers, dropout, drop_path
        self.bn_batch_stats = (style == "search") if bn_batch_stats is None else bool(bn_batch_stats)
        self.drop_path_progress = 1.0
        self.num_blocks = space.num_blocks
        self.total_layers = 3 * num_layers + 2
        self.reduction_layers = (num_layers, 2 * num_layers + 1)
        self.aux_layer = 2 * num_layers + 2 if aux_head else None
        self.image_size = image_size
        self.stem = nn.Sequential(conv(in_channels, 3 * channels, 3), bn(3 * channels, self.bn_batch_stats))

    def _heads(self, c_last: int, c_aux: int | None) -> None:
        self.fc = nn.Linear(c_last, self.num_classes, bias=False)
        if self.aux_layer is not None:
            size = -(-self.image_size // 4)  # after two halvings (ceil: 28 -> 14 -> 7)
            self.aux_head = AuxHead(c_aux, self.num_classes, size)

    def _drop_prob(self, layer: int) -> float:
        # official `_apply_drop_path`: deeper layers drop more; the rate ramps up with training
        return self.drop_path * (layer + 1) / self.total_layers * min(1.0, self.drop_path_progress)

    def _head(self, x, aux):
        h = F.adaptive_avg_pool2d(F.relu(x), 1).flatten(1)
        logits = self.fc(F.dropout(h, self.dropout, self.training))
        return (logits, aux) if aux is not None else logits

    def _check(self, x):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"images must be [B, {self.in_channels}, H, W], got {tuple(x.shape)}")

    def extra_repr(self) -> str:
        return (f"num_layers={self.num_layers} (x3 + 2 reductions), channels={self.channels}, "
                f"style={self.style!r}, bn_batch_stats={self.bn_batch_stats}, dropout={self.dropout}, "
                f"drop_path={self.drop_path}, "
                f"aux_head={self.aux_layer is not None}")


class _SearchNet(_MicroNet):
    """The search-style network; `arch_blocks=None` for the supernet, (normal, reduce) for a child."""

    def _build_search(self, arch_blocks):
        C, bs = self.channels, self.bn_batch_stats
        c_prev, c_cur, c = 3 * C, 3 * C, C  # widths of inputs[0], inputs[1], this stage
        cells, pre = [], {}
        c_aux = None
        for layer in range(self.total_layers):
            reduce = layer in self.reduction_layers
            halve0 = False
            if reduce:
                c *= 2
                pre[str(layer)] = FactorizedReduction(c_cur, c, bs)  # official: reduce, then a stride-1 cell
                c_prev, c_cur, halve0 = c_cur, c, True
            blocks = None if arch_blocks is None else arch_blocks[int(reduce)]
            cells.append(SearchCell(self.space, c_prev, c_cur, c, halve0, bs, blocks))
            c_prev, c_cur = c_cur, c
            if layer == self.aux_layer:
                c_aux = c
        self.cells, self.pre_reduce = nn.ModuleList(cells), nn.ModuleDict(pre)
        self._heads(c, c_aux)

    def _run(self, x, normal, reduce):
        self._check(x)
        s0 = s1 = self.stem(x)
        aux = None
        for layer, cell in enumerate(self.cells):
            if layer in self.reduction_layers:
                s0, s1 = s1, self.pre_reduce[str(layer)](s1)
                out = cell(s0, s1, reduce, self._drop_prob(layer))
            else:
                out = cell(s0, s1, normal, self._drop_prob(layer))
            s0, s1 = s1, out
            if layer == self.aux_layer and self.training:
                aux = self.aux_head(out)
        return self._head(s1, aux)


class MicroSupernet(_SearchNet):
    """Shared weights of every `enas_micro` architecture: `supernet(images, arch) -> logits`."""

    def __init__(self, space, **kw):
        if kw.get("style", "search") != "search":
            raise ConfigError("the micro supernet is the search network (style='search')")
        if kw.get("bn_batch_stats", True) is not True:
            raise ConfigError("the micro supernet normalises with batch statistics (bn_batch_stats=True)")
        super().__init__(space, **kw)
        self._build_search(None)
        init_cnn_(self)

    def forward(self, x: torch.Tensor, arch):
        """x [B,C,H,W], arch: Arch or LongTensor[L] -> logits [B, classes] (or (logits, aux) in training)."""
        normal, reduce = self.space.cells(arch_tokens(self.space, arch))
        return self._run(x, normal, reduce)


class MicroChild(_SearchNet):
    """One `enas_micro` architecture with only its weights: `child(images) -> logits`.

    style="search" computes what the supernet computes (inherit its weights: `param_map`);
    style="final" is the official final network. bn_batch_stats defaults to True for "search"
    (as the supernet) and False for "final" (running statistics in eval).
    """

    def __init__(self, space, arch, **kw):
        super().__init__(space, **kw)
        self.arch = Arch.of(space, arch)
        self.normal, self.reduce = space.cells(self.arch.tokens)
        if self.style == "search":
            self._build_search((self.normal, self.reduce))
        else:
            self._build_final()
        init_cnn_(self)

    def _build_final(self):
        C, bs = self.channels, self.bn_batch_stats
        c_prev, c_cur, c = 3 * C, 3 * C, C
        halve_next = False  # the cell after a reduction sees inputs[0] at twice the size
        cells, c_aux = [], None
        for layer in range(self.total_layers):
            reduce = layer in self.reduction_layers
            if reduce:
                c *= 2
            cell = FinalCell(self.space, self.reduce if reduce else self.normal, c_prev, c_cur, c, halve_next, reduce,
                             bs)
            cells.append(cell)
            halve_next = reduce
            c_prev, c_cur = c_cur, cell.out_channels
            if layer == self.aux_layer:
                c_aux = c_cur
        self.cells = nn.ModuleList(cells)
        self._heads(c_cur, c_aux)

    def forward(self, x: torch.Tensor):
        """x [B,C,H,W] -> logits [B, classes] (or (logits, aux_logits) in training with aux_head)."""
        if self.style == "search":
            return self._run(x, self.normal, self.reduce)
        self._check(x)
        s0 = s1 = self.stem(x)
        aux = None
        for layer, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self._drop_prob(layer))
            if layer == self.aux_layer and self.training:
                aux = self.aux_head(s1)
        return self._head(s1, aux)


# --------------------------------------------------------------------------------------------------
# the registration's builders, and where a child's weights live in the supernet
# --------------------------------------------------------------------------------------------------
def supernet(space, **kw) -> MicroSupernet:
    return MicroSupernet(space, **kw)


def child(space, arch, **kw) -> MicroChild:
    return MicroChild(space, arch, **kw)


def param_map(child_net: MicroChild, supernet_net: MicroSupernet) -> list[ParamSlice]:
    """Every tensor of a search-style child is a whole supernet tensor under the same name, except
    - the op of block b, slot s in layer l, which the supernet holds per input node and op:
      cells.l.ops.b.s.rest -> cells.l.ops.b.s.index.op.rest;
    - a cell's output 1x1 conv [C, n*C, 1, 1] over its n loose ends, whose k-th C-column slice
      (child_index) is the supernet's out_w of the k-th loose end: cells.l.out_w.node [C, C, 1, 1]."""
    if child_net.style != "search":
        raise ConfigError("only a style='search' child computes the supernet's function; "
                          "a final child trains from scratch")
    same = ("in_channels", "num_classes", "channels", "num_layers")
    if any(getattr(supernet_net, k) != getattr(child_net, k) for k in same) or \
            (supernet_net.aux_layer is None) != (child_net.aux_layer is None):
        raise ConfigError(f"supernet and child differ in one of {same + ('aux_head',)}")
    slices = []
    for name in child_net.state_dict():
        parts = name.split(".")
        if parts[0] != "cells" or parts[2] not in ("ops", "out_conv"):
            slices.append(ParamSlice(name, name))
            continue
        layer = int(parts[1])
        blocks = child_net.reduce if layer in child_net.reduction_layers else child_net.normal
        if parts[2] == "ops":
            blk, slot = blocks[int(parts[3])], int(parts[4])
            parts[5:5] = [str(blk[2 * slot]), str(blk[2 * slot + 1])]
            slices.append(ParamSlice(name, ".".join(parts)))
        else:
            c = child_net.cells[layer].out_conv.out_channels
            slices += [ParamSlice(name, f"cells.{layer}.out_w.{k}", (), (slice(None), slice(j * c, (j + 1) * c)))
                       for j, k in enumerate(child_net.space.loose_ends(blocks))]
    return slices


__all__ = ["MicroSupernet", "MicroChild", "SearchCell", "FinalCell", "AUX_WEIGHT", "supernet", "child", "param_map"]
