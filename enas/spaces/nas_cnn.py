"""The convolutional space of Zoph & Le 2017 (sec. 3.3 and 4.1): L convolutional layers, each with its
own filter height, width and count (and stride height and width, when predicted), joined by
anchor-point skip connections.

Per layer i, in the order the paper's controller decides (Figure 2: "filter height, filter width,
stride height, stride width, and number of filters for one layer"; Figure 4 and sec. 3.3: each layer
begins at its anchor point, where the layer's input bits are chosen, and "the rest of hyperparameters
are generated afterwards"):

    i input bits (anchor point) | filter height {1, 3, 5, 7} | filter width {1, 3, 5, 7}
    | stride height {1, 2, 3} | stride width {1, 2, 3} (both only with predict_stride)
    | filters {24, 36, 48, 64}

so an arc string reads `fh fw n | b0 fh fw n | b0 b1 fh fw n | ...` (with strides `fh fw sh sw n`)
with each number the index of its choice (filter height index 1 is a height of 3). Layer 0 has no
input bits: it has no earlier layer to choose. Input bit j of layer i says whether layer j feeds layer
i (sec. 3.3: one sigmoid per earlier layer, P(j -> i) = sigmoid(v^T tanh(W_prev h_j + W_curr h_i)),
h_j the controller's state at layer j's anchor point). The filter count ends a layer and is marked
as its anchor, so that with the controller's anchors="before" the step after it, the next layer's
anchor point, is that layer's anchor (the first layer's is a step of its own). Because a layer's
tokens depend on its index only, the arc of an L-layer network is a prefix of the arc of a deeper
one: the depth schedule of sec. 4.1 grows the networks without changing the decisions already made.

The fix-ups of sec. 3.3 make every token list a network (enas/nn/nas_cnn.py builds it):
- a layer with no input bit set reads the image;
- the outputs no later layer reads are concatenated (in depth) into the classifier;
- inputs of different spatial size are zero-padded to the largest before a depth concatenation.
Whether a network fits in memory depends on the image size, so that is checked where the model is
built (enas.nn.nas_cnn.plan), not here.

Options: num_layers (default 6, where the paper's depth schedule starts; NAS v1 has 15), predict_stride
(default False: every stride 1, as NAS v1), pool_at (default none): the layers before which the
network's resolution halves, as NAS v3 adds max pooling at layers 13 and 24 of its 39 (Table 1). The
paper says no more of it; here, before such a layer, the image and every earlier layer's output are
max-pooled 2 x 2 with stride 2 (an odd size rounds up), so that skips across the pooling arrive at the
new resolution, as the ENAS macro network reduces every earlier layer at its pooling layers (official
general_child.py); the pooling is fixed, not a decision.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from ..config import ControllerConfig, ModelConfig, OptimConfig, SearchPreset, TrainConfig
from ..errors import ArchError
from . import drawing, image_presets
from .base import SearchSpace, register, whole_option
from .decisions import Choice, Subset

# Zoph & Le 2017, sec. 4.1 "Search space".
FILTER_SIZES = (1, 3, 5, 7)
FILTER_COUNTS = (24, 36, 48, 64)
STRIDES = (1, 2, 3)
# The deepest network of the paper (Table 1, NAS v3: 39 layers). The supernet holds one 7 x 7 kernel
# per layer for every possible input, about 0.1M * L^2 numbers (39 layers: 0.15G), so a much larger L
# builds a supernet no machine holds.
MAX_LAYERS = 39
IMAGE = -1  # the source index of the image, for a layer without inputs


class Layer(NamedTuple):
    """One layer read from the tokens (values, not indices)."""

    filter_height: int
    filter_width: int
    filters: int
    stride_height: int
    stride_width: int
    inputs: tuple[int, ...]  # the earlier layers it reads; () = the image (sec. 3.3 fix-up)

    @property
    def stride(self) -> tuple[int, int]:
        return self.stride_height, self.stride_width

    @property
    def stride_text(self) -> str:
        """"3" for a square stride, "2x1" (height x width) otherwise."""
        sh, sw = self.stride
        return f"{sh}" if sh == sw else f"{sh}x{sw}"

    @property
    def sources(self) -> tuple[int, ...]:
        """What is concatenated into the layer's input: its input layers in order, or (IMAGE,)."""
        return self.inputs or (IMAGE,)


# --- presets -------------------------------------------------------------------------------------
# Zoph & Le 2017, sec. 4.1, "Training details": child networks are trained with momentum 0.9 (Nesterov),
# lr 0.1 and weight decay 1e-4, for 50 epochs, 5,000 training images held out for the reward; the
# controller samples 12,800 architectures, m = 8 per controller update. Not stated there: batch size,
# lr schedule, dropout, and everything about shared weights (ENAS did not search this space); those
# come from the ENAS macro recipe (enas/spaces/enas_macro.py, _search_paper / _train_paper).

def _search_paper(task: str) -> SearchPreset:
    """Full NAS on CIFAR-10 as sec. 4.1 (use --strategy nas); with --strategy enas the same children
    share weights, under the ENAS macro search's controller and schedule.

    Full NAS grows its children as sec. 4.1 does: "increase the depth by 2 for the child models every
    1,600 samples, starting at 6 layers" (enas/strategies/nas.py, the depth schedule: 6 layers for
    the first 1,600 children, 8 for the next, ...). The paper states no final depth; the schedule stops
    at NAS v1's 15 layers (Table 1), the space's num_layers, reached after 8,000 of the 12,800 children.
    `--set nas.grow_from=0` trains every child at 15 layers."""
    return SearchPreset(
        space="nas_cnn", task=task,
        space_options={"num_layers": 15},        # NAS v1 (Table 1); full NAS grows to it from 6 (sections)
        epochs=310, batch_size=128, eval_batch_size=128, shared_steps=0,  # ENAS macro (not stated)
        num_valid=5000,                          # sec. 4.1: 5,000 validation images from the training set
        log_every=50, derive_samples=100,
        nas_updates=1600,                        # sec. 4.1: 12,800 architectures / 8 per update
        sections={"nas": {"grow_from": 6, "grow_by": 2, "grow_every": 1600}},  # sec. 4.1, depth schedule
        child_epochs=50,                         # sec. 4.1: each child trains 50 epochs
        model=ModelConfig(dropout=0.1),          # not stated: ENAS macro keep_prob 0.9
        shared=OptimConfig(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4,  # sec. 4.1
                           schedule="cosine", lr_min=0.0005, lr_T0=10, lr_T_mul=2,  # not stated: ENAS macro
                           grad_clip=0.0),
        controller=ControllerConfig(hidden_size=64, lr=0.001, adam_beta1=0.0,  # ENAS macro; --strategy nas
                                    temperature=0.0, tanh_constant=1.5,       # replaces them with sec. 4.1's
                                    entropy_weight=1e-4, baseline_decay=0.99,  # (enas/strategies/nas.py)
                                    num_aggregate=8,                           # sec. 4.1: m = 8 children
                                    steps=50, reward_c=1.0, skip_target=0.4, skip_weight=0.8,
                                    init_range=0.1,
                                    anchors="before"),         # the anchor point's own state (sec. 3.3)
    )


def _train_paper(task: str) -> TrainConfig:
    """Final training of a found network: sec. 4.1's child optimiser (lr 0.1, Nesterov momentum 0.9,
    weight decay 1e-4); the paper then grid-searches lr, weight decay and the decay epoch, and gives no
    epoch count or batch size, so those are the ENAS macro final recipe's."""
    return TrainConfig(
        task=task, epochs=310, batch_size=100, eval_batch_size=100, num_valid=0,  # ENAS macro final
        model=ModelConfig(dropout=0.5, style="final"),                             # ENAS macro keep_prob 0.5
        optim=OptimConfig(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4,  # sec. 4.1
                          schedule="cosine", lr_min=0.001, lr_T0=10, lr_T_mul=2, grad_clip=0.0),
    )


def _search_tiny(task: str) -> SearchPreset:
    """Fashion-MNIST in about a minute on two CPU cores per strategy: 3 layers with predicted strides
    (strided layers make the 28 x 28 convolutions cheaper), the sizes of the ENAS image tiny presets."""
    return SearchPreset(
        space="nas_cnn", task=task, space_options={"num_layers": 3, "predict_stride": True},
        epochs=2, batch_size=32, eval_batch_size=64, shared_steps=10, num_valid=500, eval_max_batches=2,
        derive_samples=6, analyze_samples=100, analyze_batches=2, log_every=5,
        nas_updates=2, child_max_steps=20,  # full NAS / random from scratch: 8 children of 20 steps
        shared=OptimConfig(lr=0.05, schedule="cosine", lr_min=0.001, lr_T0=1, momentum=0.9, nesterov=True,
                           weight_decay=1e-4, grad_clip=0.0),
        controller=ControllerConfig(hidden_size=32, lr=0.0035, tanh_constant=1.5, steps=3, num_aggregate=4,
                                    reward_c=1.0, skip_weight=0.8, anchors="before",
                                    # memory=true: 8 rows stored after epoch 1, loss in epoch 2, 2 replaced
                                    memory_start_epoch=1, memory_per_epoch=8, memory_size=8, memory_replace=2,
                                    memory_loss_start_epoch=2, memory_batch=4),
    )


def _train_tiny(task: str) -> TrainConfig:
    """Seconds: 150 steps of 32 images, a cosine schedule over three 50-step epochs."""
    return TrainConfig(
        epochs=3, batch_size=32, eval_batch_size=100, max_steps=50, eval_max_batches=10, log_every=25,
        num_valid=0, model=ModelConfig(style="final"),
        optim=OptimConfig(lr=0.05, schedule="cosine", lr_min=0.001, lr_T0=3, momentum=0.9, nesterov=True,
                          weight_decay=1e-4, grad_clip=0.0),
    )


def _search_small(task: str) -> SearchPreset:
    """A search that learns for real on one machine (Fashion-MNIST: minutes on two CPU cores): the ENAS
    image `small` schedule (enas/spaces/image_presets.search_small) over 6 layers of stride 1 with NAS
    v3's pooling (Table 1) before layers 1 and 3, sec. 4.1's weight decay and m = 8.

    Why the pooling, measured on Fashion-MNIST (README): with every layer at 28 x 28 (NAS v1) a
    layer costs 784 multiply-adds per weight, so what a final training of minutes affords is a
    network of about 70k weights; the derived one (72,034, four layers deep, mostly 1x3 and 3x5
    filters) saw at most 9 x 13 pixels, ended its training at accuracy 0.85 and tested at 0.859: it
    underfit. With predicted strides (NAS v2) the search chose a stride of 3 on the image and wide
    layers at full size (96 images/s in training). NAS v3 pools at layers 13 and 24 of 39; here the
    pooling comes before layers 1 and 3, so that only layer 0, which reads the one-channel image,
    runs at full size, and the last three layers see the whole image at 7 x 7."""
    cfg = image_presets.search_small(_search_paper(task), {"num_layers": 6, "predict_stride": False,
                                                           "pool_at": (1, 3)}, cells_per_stage=0)
    cfg.shared.weight_decay = 1e-4  # sec. 4.1 (num_valid 5,000 comes with the paper preset)
    cfg.controller.num_aggregate = 8                                # sec. 4.1: m = 8
    cfg.nas_updates, cfg.child_epochs, cfg.child_max_steps = 8, 1, 150  # full NAS: 64 children of 150 steps
    cfg.sections = {}  # 64 children at 6 layers: the paper's schedule would not grow them before 1,600
    return cfg


def _train_small(task: str) -> TrainConfig:
    """Six epochs with one cosine cycle at sec. 4.1's child lr 0.1 and weight decay 1e-4 (Fashion-MNIST:
    minutes on two CPU cores); the ENAS image `small` final recipe otherwise. Its four epochs at lr 0.05
    left the derived network underfit: training accuracy 0.885 at the end and test accuracy 0.894
    (a hand-made 6-layer chain of this space with strides: 0.895 and 0.895)."""
    cfg = image_presets.train_small(channels=16, cells_per_stage=0, aux_head=False)  # channels: ignored
    cfg.task, cfg.optim.weight_decay, cfg.optim.lr = task, 1e-4, 0.1  # sec. 4.1
    cfg.epochs = cfg.optim.lr_T0 = 6
    return cfg


@register
class NasCNNSpace(SearchSpace):
    name = "nas_cnn"
    tasks = ("cifar10", "fashion_mnist")
    models = "enas.nn.nas_cnn"
    defaults = {"num_layers": 6, "predict_stride": False, "pool_at": ()}
    presets = {("search", "paper"): _search_paper, ("search", "tiny"): _search_tiny,
               ("train", "paper"): _train_paper, ("train", "tiny"): _train_tiny,
               ("search", "small"): _search_small, ("train", "small"): _train_small}
    # No op biases; the presets take each layer's anchor at its anchor-point step, the step after the
    # previous layer's filter count (ControllerConfig.anchors = "before": module docstring).
    controller_options: dict = {}

    def __init__(self, **options):
        if isinstance(options.get("pool_at"), list):  # as read back from JSON; options stay hashable
            options["pool_at"] = tuple(options["pool_at"])
        super().__init__(**options)

    def build_decisions(self):
        n = whole_option(self.name, "num_layers", self.options["num_layers"], 1, MAX_LAYERS)
        strided = self.options["predict_stride"]
        if not isinstance(strided, bool):
            raise ArchError(f"{self.name}: predict_stride must be true or false, got {strided!r}")
        pools = self.options["pool_at"]
        if not (isinstance(pools, tuple) and all(type(i) is int and 0 < i < n for i in pools)
                and list(pools) == sorted(set(pools))):
            raise ArchError(f"{self.name}: pool_at must list layers 1..{n - 1} in increasing order, got {pools!r}")
        sizes = tuple(map(str, FILTER_SIZES))
        strides = tuple(map(str, STRIDES))
        decisions = []
        for i in range(n):
            if i:  # the anchor point: layer 0 has no earlier layer to choose
                decisions.append(Subset(f"layer{i}.inputs", i))
            decisions.append(Choice(f"layer{i}.filter_height", len(FILTER_SIZES), sizes, group="filter_height"))
            decisions.append(Choice(f"layer{i}.filter_width", len(FILTER_SIZES), sizes, group="filter_width"))
            if strided:
                decisions.append(Choice(f"layer{i}.stride_height", len(STRIDES), strides, group="stride_height"))
                decisions.append(Choice(f"layer{i}.stride_width", len(STRIDES), strides, group="stride_width"))
            decisions.append(Choice(f"layer{i}.filters", len(FILTER_COUNTS), tuple(map(str, FILTER_COUNTS)),
                                    anchor=True, group="filters"))
        return decisions

    def infer_options(self, num_tokens: int) -> dict:
        # L layers of c choices and L(L-1)/2 input bits: L^2 + (2c - 1) L - 2 * tokens = 0; without strides
        # (c = 3, the default) first, so a count both fit reads as the default.
        for c, strided in ((3, False), (5, True)):
            b = 2 * c - 1
            n = (math.isqrt(b * b + 8 * num_tokens) - b) // 2
            if n >= 1 and n * c + n * (n - 1) // 2 == num_tokens:
                return {"num_layers": n, "predict_stride": strided}
        return {}

    # --- reading an architecture ---------------------------------------------------------------
    def layers(self, tokens) -> list[Layer]:
        """The layers of a token list, in order."""
        tokens, out, pos = list(tokens), [], 0
        strided = self.options["predict_stride"]
        for i in range(self.options["num_layers"]):
            bits = tokens[pos:pos + i]
            fh, fw = tokens[pos + i:pos + i + 2]
            pos += i + 2
            sh, sw = (STRIDES[tokens[pos]], STRIDES[tokens[pos + 1]]) if strided else (1, 1)
            pos += 2 * strided
            n = tokens[pos]
            pos += 1
            out.append(Layer(FILTER_SIZES[fh], FILTER_SIZES[fw], FILTER_COUNTS[n], sh, sw,
                             tuple(j for j, b in enumerate(bits) if b)))
        return out

    @staticmethod
    def classifier_inputs(layers: list[Layer]) -> list[int]:
        """The layers no later layer reads: their outputs go to the classifier (sec. 3.3 fix-up)."""
        read = {j for layer in layers for j in layer.inputs}
        return [i for i in range(len(layers)) if i not in read]

    # --- drawing -------------------------------------------------------------------------------
    def text(self, tokens) -> str:
        """One line per layer: filter size, count, stride and inputs; then the classifier's inputs."""
        layers = self.layers(tokens)
        width = len(f"layer {len(layers) - 1}")
        lines = [f"{self.name}, {len(layers)} layers: {' '.join(map(str, tokens))}"]
        for i, layer in enumerate(layers):
            if i in self.options["pool_at"]:
                lines.append(f"  {'':<{width}}   max pool 2x2, stride 2: the image and every layer above")
            reads = ", ".join(f"layer {j}" for j in layer.inputs) or "image"
            lines.append(f"  {f'layer {i}':<{width}} = conv {layer.filter_height}x{layer.filter_width}, "
                         f"{layer.filters} filters, stride {layer.stride_text}  <- {reads}")
        outs = ", ".join(f"layer {j}" for j in self.classifier_inputs(layers))
        lines.append(f"  {'logits':<{width}} = linear(global average pool(concat({outs})))")
        return "\n".join(lines)

    def figure(self, tokens):
        """Layers as boxes left to right (filter size, count, stride); the image and the classifier at
        the ends. Edges between neighbours are straight, longer skips arc above the row, and the outputs
        that go to the classifier arc below it, dashed."""
        layers = self.layers(tokens)
        outs = self.classifier_inputs(layers)
        L = len(layers)
        dx, row = 1.3, 1.6  # inches between box centres; height of the row of boxes
        span = L + 1  # image at column 0, layers at 1..L, classifier at L + 1
        arc = 0.2 * dx * span + 0.2  # room above and below the row: an arc rises about rad / 2 of its length
        fig, ax = drawing.inch_axes(max(dx * (span + 1), 7.0), row + 2 * arc)
        y = arc + row / 2
        shade = {n: c for n, c in zip(FILTER_COUNTS, ("#eef3fb", "#cfe2f3", "#9fc5e8", "#6fa8dc"))}

        def at(col: int) -> tuple[float, float]:
            return (col + 0.5) * dx, y

        image = drawing.box(ax, *at(0), "image", "white")
        boxes = [drawing.box(ax, *at(i + 1), f"layer {i}\n{lay.filter_height}x{lay.filter_width}, {lay.filters}"
                             + (f"\nstride {lay.stride_text}" if lay.stride != (1, 1) else "")
                             + ("\nafter max pool" if i in self.options["pool_at"] else ""), shade[lay.filters])
                 for i, lay in enumerate(layers)]
        head = drawing.box(ax, *at(L + 1), "avg pool\n+ linear", "#fce5cd")

        def link(src, dst, distance: int, below: bool = False, **kw):
            if distance <= 1:
                drawing.arrow(ax, src, dst, **kw)
                return
            # top (or bottom) edge to top (bottom) edge; a positive rad bends an edge running right upwards
            side = (0.5, 0.0) if below else (0.5, 1.0)
            rad = (0.25 + 0.15 / distance) * (1 if below else -1)
            drawing.arrow(ax, src, dst, src_side=side, dst_side=side, connectionstyle=f"arc3,rad={rad}", **kw)

        for i, lay in enumerate(layers):
            if not lay.inputs:
                link(image, boxes[i], i + 1)
            for j in lay.inputs:
                link(boxes[j], boxes[i], i - j)
        for j in outs:
            link(boxes[j], head, L - j, below=True, color=drawing.LOOSE_COLOR, linestyle=drawing.LOOSE_STYLE)
        drawing.caption(fig, f"{self.name}: {' '.join(map(str, tokens))}")
        entries = [(f"{n} filters", dict(fc=c)) for n, c in shade.items()]
        entries += [("input", dict(color=drawing.EDGE_COLOR)),
                    ("to the classifier", dict(color=drawing.LOOSE_COLOR, ls=drawing.LOOSE_STYLE))]
        drawing.legend(fig, entries)
        return fig
