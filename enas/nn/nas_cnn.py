"""Networks of the `nas_cnn` space (Zoph & Le 2017, sec. 3.3 and 4.1): the supernet and the child.

One network per architecture (enas/spaces/nas_cnn.py reads the tokens into `Layer`s):

    layer i:  x_i = ReLU(BN(conv_{fh x fw, n filters, stride sh x sw}(concat_padded(sources_i))))
              sources_i = the layers its input bits name, or the image when there are none
              (before a layer of the space's pool_at, the image and every x_j so far are max-pooled
              2 x 2, stride 2, and stay so)
    logits =  linear(dropout(global_average_pool(concat_padded(outputs no later layer reads))))

- Order conv -> BN -> ReLU: the paper names ReLU and batch norm (sec. 4.1) but not their order; this
  is the order of the ENAS macro search branches (official general_child.py `_conv_branch`).
- Convolutions have no bias (BN's offset follows) and "same" padding (fh // 2, fw // 2: the sizes are
  odd), so a layer of stride sh x sw maps H x W to ceil(H / sh) x ceil(W / sw). No layer can shrink
  below one pixel that way; what can break is memory, checked by `plan`.
- concat_padded: zero-pads every map to the largest height and width among them, then concatenates
  in depth (sec. 3.3). The paper does not say where the zeros go; here they surround the smaller map
  evenly (an odd extra row or column after it).
- The classifier reads the outputs no later layer reads, concatenated the same way (sec. 3.3), as the
  global average of each channel, then a linear layer with bias.

Weight sharing (the supernet). Input channels have fixed blocks: the image's C channels at [0, C),
then layer j's at [C + 64 j, C + 64 j + 64). Layer i holds one kernel [64, C + 64 i, 7, 7] and one BN
of 64 channels; an architecture uses weight[:n] cropped to the centre fh x fw of the kernel, and from
it the blocks of its sources, each cut to the source's filter count.
Neither paper fixes how filter sizes share weights (Zoph & Le share none; ENAS never searched this
space). A separate weight per (filter height, filter width), 16 per layer, hardly learns: with the
`small` search preset on Fashion-MNIST (benchmarks/learning_curve.py --space nas_cnn --task
fashion_mnist --preset small) its shared loss was 2.31 at step 200 and 2.16 at step 600 (uniform
guessing 2.30), against 2.00 at step 200 and 1.88 at step 300 with centre crops of one kernel, since
then every filter size trains the same middle taps (the kernel sharing of Once-for-All, Cai et al.
2020). A convolution of a concatenation is the sum of the convolutions of its parts, so that
slice, concatenated along its input axis, is exactly a child's weight: the supernet runs one
convolution per layer, on the same concatenated input as the child. The classifier's weight likewise
has a 64-wide in-feature block per layer. `param_map` states all of this as ParamSlices.

Keywords (ImageTask.model_kwargs): in_channels (3), num_classes (10), image_size (32; the child checks
the architecture against it when built, the supernet at every forward against the images it gets),
num_layers (optional, must equal the space's), dropout before the classifier, style ("search" or
"final": the same layers, as Zoph & Le train the same child during the search and at the end),
bn_batch_stats (default: True for "search", False for "final"; the supernet's must be True).
Ignored: channels (the filter counts are the architecture's). Refused when set: aux_head and
drop_path (the paper's networks have neither).

Batch norm in the supernet normalises with the statistics of the current batch, in training and in
eval mode (`bn_batch_stats`, track_running_stats=False, as the macro and micro supernets here and
the official micro search): running averages would be shared by every filter size, filter count and
input set, and fit no single network. With them, the controller's most likely network scored
0.06-0.11 on validation images at the end of each epoch of the `small` search on Fashion-MNIST while
the sampled networks' training accuracy was 0.44, so rewards were noise; with batch statistics it
scored 0.24-0.47. A child built for inheritance (style "search") does the same and computes the
supernet's function exactly; a final-style child keeps running statistics and trains from scratch.

The architecture is read on the host (an Arch, or a LongTensor copied back once per forward): which
weights a layer slices is Python control flow.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..arch import Arch
from ..errors import ArchError, ConfigError
from ..spaces.nas_cnn import FILTER_COUNTS, FILTER_SIZES, IMAGE, Layer
from .cnn_ops import arch_tokens
from .param_map import ParamSlice

STYLES = ("search", "final")
MAX_FILTERS = max(FILTER_COUNTS)
BN_EPS, BN_MOMENTUM = 1e-5, 0.1  # as enas/nn/cnn_ops.py (TF decay 0.9)
# The largest depth concatenation one image may make, in numbers (16 MiB in float32): a 15-layer
# network on 32 x 32 images concatenates at most 3 + 14 * 64 = 899 channels (0.9M numbers); a layer
# over this bound (large images, no strides) would take gigabytes per batch.
MAX_CONCAT = 2 ** 22


def concat_padded(maps: list[torch.Tensor]) -> torch.Tensor:
    """maps [B, C_k, H_k, W_k] -> [B, sum C_k, max H_k, max W_k]; each zero-padded evenly around."""
    H, W = max(m.shape[2] for m in maps), max(m.shape[3] for m in maps)
    padded = []
    for m in maps:
        dh, dw = H - m.shape[2], W - m.shape[3]
        padded.append(F.pad(m, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)) if dh or dw else m)
    return padded[0] if len(padded) == 1 else torch.cat(padded, dim=1)


def max_pool(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, ceil(H / 2), ceil(W / 2)]: the pooling of the space's pool_at layers."""
    return F.max_pool2d(x, 2, 2, ceil_mode=True)


def plan(layers: list[Layer], in_channels: int, height: int, width: int,
         pool_at: tuple[int, ...] = ()) -> list[tuple[int, int]]:
    """The output size (H, W) of every layer for images of height x width (as the network keeps it: pooled
    by the pooling before every later layer of pool_at); ArchError naming the layer whose padded input
    concatenation would exceed MAX_CONCAT numbers per image."""
    sizes: list[tuple[int, int]] = []
    for i, layer in enumerate(layers):
        if i in pool_at:
            (height, width), sizes = _halved(height, width), [_halved(h, w) for h, w in sizes]
        srcs = [(in_channels, height, width) if j == IMAGE else (layers[j].filters, *sizes[j])
                for j in layer.sources]
        c, h, w = sum(s[0] for s in srcs), max(s[1] for s in srcs), max(s[2] for s in srcs)
        _bound(f"layer {i}", c, h, w)
        sizes.append((math.ceil(h / layer.stride_height), math.ceil(w / layer.stride_width)))
    return sizes


def _halved(h: int, w: int) -> tuple[int, int]:
    return math.ceil(h / 2), math.ceil(w / 2)


def _bound(what: str, c: int, h: int, w: int) -> None:
    if c * h * w > MAX_CONCAT:
        raise ArchError(f"nas_cnn: {what} concatenates {c} channels of {h}x{w} ({c * h * w:,} numbers per "
                        f"image, over the bound of {MAX_CONCAT:,}); give it fewer inputs or stride earlier")


def _source_block(j: int, in_channels: int) -> int:
    """First input channel of source j (IMAGE or a layer) in a supernet weight."""
    return 0 if j == IMAGE else in_channels + MAX_FILTERS * j


class _NasCNN(nn.Module):
    """What supernet and child share: the keywords, the layer loop, the classifier's pooling."""

    def __init__(self, space, in_channels: int = 3, num_classes: int = 10, image_size: int | None = 32,
                 channels: int | None = None, num_layers: int | None = None, dropout: float = 0.0,
                 drop_path: float = 0.0, aux_head: bool = False, style: str = "search",
                 bn_batch_stats: bool | None = None):
        """channels is accepted for the keywords every image network takes and ignored (see module doc)."""
        super().__init__()
        if getattr(space, "models", None) != __name__:  # a space whose registration names this module
            raise ConfigError(f"the nas_cnn network builds the spaces whose models are {__name__}, "
                              f"got {getattr(space, 'name', space)!r}")
        for name, v in (("in_channels", in_channels), ("num_classes", num_classes),
                        ("image_size", 1 if image_size is None else image_size)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if num_layers is not None and num_layers != space.num_layers:
            raise ConfigError(f"num_layers={num_layers} but the space has {space.num_layers} layers")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
        if style not in STYLES:
            raise ConfigError(f"style must be one of {STYLES}, got {style!r}")
        if aux_head:
            raise ConfigError("the nas_cnn network has no auxiliary head (Zoph & Le 2017 use none)")
        if drop_path:
            raise ConfigError("the nas_cnn network has no drop path (Zoph & Le 2017 use none)")
        self.space, self.style = space, style
        self.in_channels, self.num_classes, self.image_size = in_channels, num_classes, image_size
        self.dropout = dropout
        self.bn_batch_stats = (style == "search") if bn_batch_stats is None else bool(bn_batch_stats)

    def _run(self, x: torch.Tensor, layers: list[Layer], layer_fn, classify_fn) -> torch.Tensor:
        """x [B, C, H, W] -> logits [B, classes]. layer_fn(i, layer, input [B, C_in, H', W']) -> [B, n, h, w];
        classify_fn(features [B, sum of the classifier inputs' counts], classifier inputs) -> logits."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"images must be [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        pool_at = self.space.options["pool_at"]
        plan(layers, self.in_channels, x.shape[2], x.shape[3], pool_at)  # before any work: an ArchError
        outs: list[torch.Tensor] = []
        for i, layer in enumerate(layers):
            if i in pool_at:  # the resolution halves for everything from here on (enas/spaces/nas_cnn.py)
                x, outs = max_pool(x), [max_pool(o) for o in outs]
            h = concat_padded([x if j == IMAGE else outs[j] for j in layer.sources])
            outs.append(layer_fn(i, layer, h))
        heads = self.space.classifier_inputs(layers)
        feats = concat_padded([outs[j] for j in heads]).mean(dim=(2, 3))  # [B, sum counts]
        feats = F.dropout(feats, self.dropout, self.training)
        return classify_fn(feats, heads)

    def extra_repr(self) -> str:
        return (f"num_layers={self.space.num_layers}, in_channels={self.in_channels}, "
                f"num_classes={self.num_classes}, style={self.style!r}, bn_batch_stats={self.bn_batch_stats}, "
                f"dropout={self.dropout}")


class _SharedLayer(nn.Module):
    """Layer i's shared weights: one kernel [64, C + 64 i, 7, 7] whose centre crops are every filter size,
    and one 64-channel BN without running statistics."""

    def __init__(self, i: int, in_channels: int):
        super().__init__()
        k = max(FILTER_SIZES)
        self.weight = nn.Parameter(torch.empty(MAX_FILTERS, in_channels + MAX_FILTERS * i, k, k))
        self.bn = nn.BatchNorm2d(MAX_FILTERS, eps=BN_EPS, momentum=BN_MOMENTUM, track_running_stats=False)
        # He-normal for one 64-channel source of 3 x 3 kernels (the image's block starts as small as a
        # layer's). BN follows every conv, so the scale leaves the outputs alone but sets how far an
        # update moves a weight.
        nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / (MAX_FILTERS * 9)))


def kernel_crop(filter_height: int, filter_width: int) -> tuple[slice, slice]:
    """The rows and columns of the shared 7 x 7 kernel that a filter_height x filter_width filter uses:
    its centre, so that every size sees the same pixels at the same offsets."""
    k = max(FILTER_SIZES)
    r, c = (k - filter_height) // 2, (k - filter_width) // 2
    return slice(r, r + filter_height), slice(c, c + filter_width)


class NasCNNSupernet(_NasCNN):
    """Shared weights of every `nas_cnn` architecture: `supernet(images, arch) -> logits`."""

    def __init__(self, space, **kw):
        if kw.get("bn_batch_stats", True) is not True:
            raise ConfigError("the nas_cnn supernet normalises with batch statistics (bn_batch_stats=True)")
        super().__init__(space, **kw)
        L = space.num_layers
        self.layers = nn.ModuleList(_SharedLayer(i, self.in_channels) for i in range(L))
        self.classifier = nn.Linear(MAX_FILTERS * L, self.num_classes)

    def _layer(self, layers: list[Layer], i: int, h: torch.Tensor) -> torch.Tensor:
        """Layer i of `layers` on its concatenated input h [B, C_in, H, W] -> [B, n_i, H / sh, W / sw]."""
        shared, layer = self.layers[i], layers[i]
        w = shared.weight[(slice(None), slice(None), *kernel_crop(layer.filter_height, layer.filter_width))]
        n, C = layer.filters, self.in_channels
        parts = [w[:n, _source_block(j, C):_source_block(j, C) + (C if j == IMAGE else layers[j].filters)]
                 for j in layer.sources]
        weight = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # [n, C_in, fh, fw]
        y = F.conv2d(h, weight, stride=layer.stride, padding=(layer.filter_height // 2, layer.filter_width // 2))
        bn = shared.bn  # the batch's own statistics in every mode (module docstring)
        y = F.batch_norm(y, None, None, bn.weight[:n], bn.bias[:n], True, BN_MOMENTUM, BN_EPS)
        return F.relu(y)

    def _classify(self, layers: list[Layer], feats: torch.Tensor, heads: list[int]) -> torch.Tensor:
        """feats [B, sum of the heads' counts] -> logits [B, classes], through the heads' weight blocks."""
        W = self.classifier.weight
        blocks = [W[:, MAX_FILTERS * j:MAX_FILTERS * j + layers[j].filters] for j in heads]
        return F.linear(feats, blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1), self.classifier.bias)

    def forward(self, x: torch.Tensor, arch) -> torch.Tensor:
        """x [B, C, H, W], arch: Arch or LongTensor [num_tokens] -> logits [B, num_classes]."""
        layers = self.space.layers(arch_tokens(self.space, arch))
        return self._run(x, layers, lambda i, layer, h: self._layer(layers, i, h),
                         lambda feats, heads: self._classify(layers, feats, heads))


class _ChildLayer(nn.Module):
    """One layer of a child: conv (He-normal, no bias) and BN of its filter count."""

    def __init__(self, layer: Layer, c_in: int, batch_stats: bool):
        super().__init__()
        fh, fw = layer.filter_height, layer.filter_width
        self.conv = nn.Conv2d(c_in, layer.filters, (fh, fw), layer.stride, padding=(fh // 2, fw // 2), bias=False)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_in", nonlinearity="relu")
        self.bn = nn.BatchNorm2d(layer.filters, eps=BN_EPS, momentum=BN_MOMENTUM, track_running_stats=not batch_stats)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(h)))


class NasCNNChild(_NasCNN):
    """One `nas_cnn` architecture with only its weights: `child(images) -> logits`.

    Layer i holds conv.weight [n_i, sum of its sources' channels, fh, fw] (sources in order) and a BN
    of n_i channels; the classifier [classes, sum of the classifier inputs' counts]. ArchError naming
    the layer when the network does not fit images of image_size (see `plan`).
    """

    def __init__(self, space, arch, **kw):
        super().__init__(space, **kw)
        self.arch = Arch.of(space, arch)
        self.arch_layers = space.layers(self.arch.tokens)
        if self.image_size is not None:
            sizes = plan(self.arch_layers, self.in_channels, self.image_size, self.image_size,
                         space.options["pool_at"])
            heads = space.classifier_inputs(self.arch_layers)
            _bound("the classifier", sum(self.arch_layers[j].filters for j in heads),
                   max(sizes[j][0] for j in heads), max(sizes[j][1] for j in heads))
        self.layers = nn.ModuleList()
        for layer in self.arch_layers:
            c_in = sum(self.in_channels if j == IMAGE else self.arch_layers[j].filters for j in layer.sources)
            self.layers.append(_ChildLayer(layer, c_in, self.bn_batch_stats))
        heads = space.classifier_inputs(self.arch_layers)
        self.classifier = nn.Linear(sum(self.arch_layers[j].filters for j in heads), self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> logits [B, num_classes]."""
        return self._run(x, self.arch_layers, lambda i, layer, h: self.layers[i](h),
                         lambda feats, heads: self.classifier(feats))


# --------------------------------------------------------------------------------------------------
# the registry's builders
# --------------------------------------------------------------------------------------------------
def supernet(space, **kw) -> NasCNNSupernet:
    return NasCNNSupernet(space, **kw)


def child(space, arch, **kw) -> NasCNNChild:
    return NasCNNChild(space, arch, **kw)


def param_map(child: NasCNNChild, supernet: NasCNNSupernet) -> list[ParamSlice]:
    """Where each tensor of `child` lives in `supernet`: conv weights block by source, BN and classifier
    entries cut to the filter counts (module docstring)."""
    if not child.bn_batch_stats:
        raise ConfigError("the nas_cnn supernet normalises with batch statistics: only a child with "
                          "bn_batch_stats=True (style 'search') computes its function; a final child "
                          "trains from scratch")
    if child.in_channels != supernet.in_channels:
        raise ConfigError(f"supernet and child differ in in_channels ({supernet.in_channels} against "
                          f"{child.in_channels})")
    layers, C, all_ = child.arch_layers, child.in_channels, slice(None)
    slices = []
    for i, layer in enumerate(layers):
        n, pos, crop = layer.filters, 0, kernel_crop(layer.filter_height, layer.filter_width)
        for j in layer.sources:
            width = C if j == IMAGE else layers[j].filters
            start = _source_block(j, C)
            slices.append(ParamSlice(f"layers.{i}.conv.weight", f"layers.{i}.weight",
                                     (slice(0, n), slice(start, start + width), *crop),
                                     (all_, slice(pos, pos + width))))
            pos += width
        for name in ("weight", "bias"):
            slices.append(ParamSlice(f"layers.{i}.bn.{name}", f"layers.{i}.bn.{name}", (slice(0, n),)))
    pos = 0
    for j in child.space.classifier_inputs(layers):
        width = layers[j].filters
        start = MAX_FILTERS * j
        slices.append(ParamSlice("classifier.weight", "classifier.weight",
                                 (all_, slice(start, start + width)), (all_, slice(pos, pos + width))))
        pos += width
    slices.append(ParamSlice("classifier.bias", "classifier.bias"))
    return slices
