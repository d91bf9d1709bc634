"""Image networks of the `darts_cnn` space (official quark0/darts cnn/operations.py, model_search.py,
model.py): one supernet, searched either way, and the standalone child. The `pnas` space's one cell
runs in the same networks, at stride 1 and at stride 2 (its `cells` gives the same blocks for both).

Layout (both): stem 3x3 conv (in_channels -> 3C) and BN; `num_layers` cells, reduction cells at layers
L//3 and 2L//3 where C doubles; cell k reads the outputs of cells k-2 and k-1 (the stem's at first),
preprocessed to C channels (a factorized reduction of input 0 after a reduction, else ReLU-1x1
conv-BN; ReLU-1x1 conv-BN of input 1); a reduction cell runs its ops on the inputs with stride 2
(skip_connect: a factorized reduction); every cell outputs the concatenation of its intermediate nodes;
head: global average pool, linear (with bias).

- The supernet holds every op of every edge (`cells.l.edges.e.k`, k over the ops without `none`)
  and takes either architecture:
    supernet(images, arch)      arch an Arch or LongTensor [L]: only each node's two chosen ops run
                                (what ENAS and random search train);
    supernet(images, weights)   weights float [2, E, 8] (the mixing weights of the normal and the
                                reduction cell, softmax(alpha)): every edge is the weighted sum of its
                                ops (DARTS's relaxation; `none` contributes nothing, its weight only
                                takes its share of the softmax).
  Search-time batch norm is the official search's: no learned offset and scale (affine off), and a
  BN after each pool (model_search.py MixedOp). Its BNs normalise with batch statistics in every mode,
  as the ENAS micro search does, because one set serves many architectures; the official DARTS search
  keeps running averages of its single relaxed network.
- The child, style "search", holds its genotype's ops only and computes what the supernet computes
  for its architecture (inherit with `param_map`); style "final" is the official evaluation network
  (model.py NetworkCIFAR): affine BNs with running statistics, no BN after pools, drop path on every op
  but an identity skip (rate drop_path x `drop_path_progress`, the fraction of training done, as
  train.py ramps it per epoch), and the auxiliary head after layer 2L//3.

Keywords: in_channels (3), num_classes (10), channels (C: 16 search, 36 final), num_layers (L: 8
search, 20 final), drop_path, aux_head, image_size, style, bn_batch_stats, dropout (must be 0: the
official networks have none). Initial weights are PyTorch's defaults, as in the official code.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..arch import Arch
from ..errors import ConfigError
from .cnn_ops import ReLUConvBN, ReLUFactorizedReduction, SepConvStack, arch_tokens, bn, drop_path
from .param_map import ParamSlice

STYLES = ("search", "final")
AUX_WEIGHT = 0.4  # official train.py --auxiliary_weight


class DilConv(nn.Sequential):
    """ReLU, depthwise k x k conv with dilation 2, pointwise 1x1 conv, BN (official operations.py DilConv)."""

    def __init__(self, c: int, k: int, stride: int, affine: bool, batch_stats: bool):
        super().__init__(nn.ReLU(), nn.Conv2d(c, c, k, stride, padding=k - 1, dilation=2, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False), bn(c, batch_stats, affine))


def darts_op(name: str, c: int, stride: int, affine: bool, batch_stats: bool, search: bool) -> nn.Module:
    """Op `name` of DARTS (operations.py OPS) or of PNAS (enas/spaces/pnas.py) on c channels; `search`: the extra BN after a pool that
    model_search.py MixedOp adds (affine off)."""
    if name.endswith("pool_3x3"):
        pool = nn.MaxPool2d(3, stride, 1) if name == "max_pool_3x3" else \
            nn.AvgPool2d(3, stride, 1, count_include_pad=False)
        return nn.Sequential(pool, bn(c, batch_stats, affine=False)) if search else pool
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else ReLUFactorizedReduction(c, c, batch_stats, affine)
    if name == "identity":  # PNAS: at stride 2 a ReLU-1x1 conv-BN (nasnet_utils.py `_apply_conv_operation`)
        return nn.Identity() if stride == 1 else ReLUConvBN(c, c, 1, batch_stats, stride, affine=affine)
    if name == "conv_7x1_1x7":  # PNAS: ReLU, 1x7 then 7x1 conv, BN (the stride split between the two)
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, (1, 7), (1, stride), (0, 3), bias=False),
                             nn.Conv2d(c, c, (7, 1), (stride, 1), (3, 0), bias=False), bn(c, batch_stats, affine))
    if name.startswith("sep_conv"):
        return SepConvStack(c, int(name[-1]), batch_stats, stride, affine)
    if name.startswith("dil_conv"):
        return DilConv(c, int(name[-1]), stride, affine, batch_stats)
    raise ValueError(name)


class DartsCell(nn.Module):
    """One cell. blocks None: every op of every edge (supernet); else a child's (index, op) pairs.
    forward(s0, s1, arch, drop_prob) -> [B, nodes * C, H, W], arch the cell's blocks or its mixing
    weights [E, 8]."""

    def __init__(self, space, c_pp: int, c_p: int, c: int, reduce: bool, reduce_prev: bool, style: str,
                 batch_stats: bool, blocks=None):
        super().__init__()
        affine, search = style == "final", style == "search"
        self.pre0 = ReLUFactorizedReduction(c_pp, c, batch_stats, affine) if reduce_prev else \
            ReLUConvBN(c_pp, c, 1, batch_stats, affine=affine)
        self.pre1 = ReLUConvBN(c_p, c, 1, batch_stats, affine=affine)
        self.nodes, self.reduce = space.blocks, reduce
        stride = lambda source: 2 if reduce and source < 2 else 1  # noqa: E731  (model_search.py Cell)
        names = space.op_names
        self.shared = blocks is None
        if self.shared:
            self.edges = nn.ModuleList(
                nn.ModuleList(darts_op(name, c, stride(j), affine, batch_stats, search) for name in names)
                for i in range(self.nodes) for j in range(2 + i))
            # Ops with neither weights nor running statistics (the pools with their BN, an identity skip)
            # compute the same function on every edge: the relaxed forward runs them once per input node.
            self.stateless = [not any(True for _ in op.parameters()) and not any(True for _ in op.buffers())
                              for op in self.edges[0]]
        else:
            self.ops = nn.ModuleList(nn.ModuleList(darts_op(names[blk[2 * s + 1]], c, stride(blk[2 * s]), affine,
                                                            batch_stats, search) for s in range(2)) for blk in blocks)

    def forward(self, s0, s1, arch, drop_prob: float = 0.0):
        states = [self.pre0(s0), self.pre1(s1)]
        if isinstance(arch, torch.Tensor):  # mixing weights [E, 8]: every op of every edge, weighted
            e, once = 0, {}  # once: (input node, op) -> the output of a stateless op
            for i in range(self.nodes):
                node = 0
                for j, h in enumerate(states):
                    for k, (w, op) in enumerate(zip(arch[e, 1:], self.edges[e])):
                        if self.stateless[k]:
                            y = once[j, k] = once[j, k] if (j, k) in once else op(h)
                        else:
                            y = op(h)
                        node = node + w * y
                    e += 1
                states.append(node)
        else:
            for i, blk in enumerate(arch):
                node = 0
                for slot in range(2):
                    source, op = blk[2 * slot], blk[2 * slot + 1]
                    module = self.edges[i * (i + 3) // 2 + source][op] if self.shared else self.ops[i][slot]
                    y = module(states[source])
                    node = node + (drop_path(y, drop_prob, self.training) if not isinstance(module, nn.Identity) else y)
                states.append(node)
        return torch.cat(states[2:], dim=1)


class AuxHeadCIFAR(nn.Sequential):
    """Official model.py AuxiliaryHeadCIFAR on the 8x8 maps of CIFAR-10 after two reductions: ReLU, 5x5
    average pool stride 3 (-> 2x2), 1x1 conv to 128, BN, ReLU, 2x2 conv to 768, BN, ReLU, linear.
    Smaller maps (7x7 for 28-pixel images) pool to 1x1, and the second conv takes the pooled size."""

    def __init__(self, c: int, num_classes: int, size: int):
        pooled = (size - 5) // 3 + 1 if size >= 5 else 1
        super().__init__(nn.ReLU(), nn.AvgPool2d(min(5, size), 3, count_include_pad=False),
                         nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
                         nn.Conv2d(128, 768, pooled, bias=False), nn.BatchNorm2d(768), nn.ReLU(),
                         nn.Flatten(), nn.Linear(768, num_classes))


class _DartsNet(nn.Module):
    """What supernet and child share: argument checks, stem, cells, heads."""

    def __init__(self, space, in_channels: int = 3, num_classes: int = 10, channels: int = 16,
                 num_layers: int | None = 8, dropout: float = 0.0, drop_path: float = 0.0, aux_head: bool = False,
                 image_size: int = 32, style: str = "search", bn_batch_stats: bool | None = None, blocks=None):
        super().__init__()
        if getattr(space, "models", None) != __name__:
            raise ConfigError(f"the DARTS network builds the spaces whose models are {__name__}, "
                              f"not {getattr(space, 'name', space)!r}")
        num_layers = num_layers or 8
        for name, v in (("in_channels", in_channels), ("num_classes", num_classes), ("channels", channels),
                        ("num_layers", num_layers), ("image_size", image_size)):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if num_layers < 3:
            raise ConfigError(f"num_layers must be >= 3 (two of the cells reduce), got {num_layers}")
        if dropout:
            raise ConfigError("the DARTS networks have no dropout before the classifier: model.dropout must be 0")
        if not 0.0 <= drop_path < 1.0:
            raise ConfigError(f"drop_path must be in [0, 1), got {drop_path!r}")
        if style not in STYLES:
            raise ConfigError(f"style must be one of {STYLES}, got {style!r}")
        self.space, self.style = space, style
        self.in_channels, self.num_classes, self.channels, self.num_layers = in_channels, num_classes, channels, \
            num_layers
        self.drop_path, self.drop_path_progress = drop_path, 1.0
        self.bn_batch_stats = (style == "search") if bn_batch_stats is None else bool(bn_batch_stats)
        self.reduction_layers = (num_layers // 3, 2 * num_layers // 3)
        self.aux_layer = 2 * num_layers // 3 if aux_head else None
        bs, n = self.bn_batch_stats, space.blocks
        c_cur = 3 * channels  # model.py / model_search.py stem_multiplier 3
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_cur, 3, padding=1, bias=False), bn(c_cur, bs))
        c_pp, c_p, c = c_cur, c_cur, channels
        cells, reduce_prev, c_aux, size, aux_size = [], False, None, image_size, None
        for layer in range(num_layers):
            reduce = layer in self.reduction_layers
            if reduce:
                c *= 2
                size = -(-size // 2)
            cell_blocks = None if blocks is None else blocks[int(reduce)]
            cells.append(DartsCell(space, c_pp, c_p, c, reduce, reduce_prev, style, bs, cell_blocks))
            reduce_prev = reduce
            c_pp, c_p = c_p, n * c
            if layer == self.aux_layer:
                c_aux, aux_size = c_p, size
        self.cells = nn.ModuleList(cells)
        self.classifier = nn.Linear(c_p, num_classes)
        if self.aux_layer is not None:
            self.aux_head = AuxHeadCIFAR(c_aux, num_classes, aux_size)

    def _run(self, x, normal, reduce):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"images must be [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        s0 = s1 = self.stem(x)
        aux = None
        for layer, cell in enumerate(self.cells):
            drop = self.drop_path * min(1.0, self.drop_path_progress)
            s0, s1 = s1, cell(s0, s1, reduce if layer in self.reduction_layers else normal, drop)
            if layer == self.aux_layer and self.training:
                aux = self.aux_head(s1)
        logits = self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))
        return (logits, aux) if aux is not None else logits

    def extra_repr(self) -> str:
        return (f"num_layers={self.num_layers}, channels={self.channels}, style={self.style!r}, "
                f"bn_batch_stats={self.bn_batch_stats}, drop_path={self.drop_path}, "
                f"aux_head={self.aux_layer is not None}")


class DartsSupernet(_DartsNet):
    """Every op of every edge of a `darts_cnn` space: `supernet(images, arch or mixing weights)`."""

    def __init__(self, space, **kw):
        if kw.get("style", "search") != "search":
            raise ConfigError("the DARTS supernet is the search network (style='search')")
        if kw.get("bn_batch_stats", True) is not True:
            raise ConfigError("the DARTS supernet normalises with batch statistics (bn_batch_stats=True)")
        super().__init__(space, **kw)

    def forward(self, x: torch.Tensor, arch):
        """x [B,C,H,W]; arch: Arch or LongTensor [L] (the chosen ops), or mixing weights float
        [2, E, 8] (every op, weighted) -> logits [B, classes]."""
        if isinstance(arch, torch.Tensor) and arch.is_floating_point():
            if arch.shape != self.space.mixture_shape:
                raise ConfigError(f"mixing weights must be {list(self.space.mixture_shape)}, got {list(arch.shape)}")
            return self._run(x, arch[0], arch[1])
        normal, reduce = self.space.cells(arch_tokens(self.space, arch))
        return self._run(x, normal, reduce)


class DartsChild(_DartsNet):
    """One genotype with only its ops: `child(images)`. style "search" computes what the supernet
    computes (`param_map`); "final" is the official evaluation network."""

    def __init__(self, space, arch, **kw):
        arch = Arch.of(space, arch)
        normal, reduce = space.cells(arch.tokens)
        super().__init__(space, blocks=(normal, reduce), **kw)
        self.arch, self.normal, self.reduce = arch, normal, reduce

    def forward(self, x: torch.Tensor):
        return self._run(x, self.normal, self.reduce)


# --------------------------------------------------------------------------------------------------
# the registration's builders, and where a child's weights live in the supernet
# --------------------------------------------------------------------------------------------------
def supernet(space, **kw) -> DartsSupernet:
    return DartsSupernet(space, **kw)


def child(space, arch, **kw) -> DartsChild:
    return DartsChild(space, arch, **kw)


def param_map(child_net: DartsChild, supernet_net: DartsSupernet) -> list[ParamSlice]:
    """Every tensor of a search-style child is the supernet tensor of the same name, except the op of
    node i, slot s in layer l, which the supernet holds per edge and op:
    cells.l.ops.i.s.rest -> cells.l.edges.e(i, source).op.rest."""
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
        if parts[0] != "cells" or parts[2] != "ops":
            slices.append(ParamSlice(name, name))
            continue
        layer, i, slot = int(parts[1]), int(parts[3]), int(parts[4])
        blk = (child_net.reduce if layer in child_net.reduction_layers else child_net.normal)[i]
        edge = i * (i + 3) // 2 + blk[2 * slot]
        slices.append(ParamSlice(name, ".".join(["cells", parts[1], "edges", str(edge), str(blk[2 * slot + 1]),
                                                 *parts[5:]])))
    return slices


__all__ = ["DartsSupernet", "DartsChild", "DartsCell", "darts_op", "AUX_WEIGHT", "supernet", "child", "param_map"]
