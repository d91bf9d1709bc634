"""The ENAS macro CNN space (Pham et al. 2018, section 2.3): a chain of L layers with skip connections.

Every layer i applies one of six ops to the output of layer i-1 and may add skip connections.
Arc format of the official ENAS code (src/cifar10/general_controller.py with
search_whole_channels, and the arc of scripts/cifar10_macro_final.sh): per layer the op, then i
skip bits,

    op_0 | op_1 s | op_2 s s | op_3 s s s | ...        (L + L(L-1)/2 numbers)

op in {0 conv3x3, 1 sep3x3, 2 conv5x5, 3 sep5x5, 4 avgpool3x3, 5 maxpool3x3}.

What a skip bit points at. The official child (src/cifar10/general_child.py, `_enas_layer` and
`_fixed_layer`) keeps the list [stem, layer 0, ..., layer i-1]; layer i reads the last entry as its
input and skip bit k of layer i adds entry k. So bit 0 is the stem and bit k >= 1 is layer k-1; the
previous layer, already the input, is never a skip. `skip_sources` spells this out, and the
networks in enas/nn/macro.py follow it, so the published arc computes the published network.

Decisions. Layer i is `Choice(op, anchor=True)` then `Subset(i)`; layer 0 has an empty Subset
(no token). The empty decision keeps the controller in step with the official one, which runs an
LSTM step after every op (the layer's anchor) and feeds the start embedding after layer 0.

Pooling (official general_child.py): after layers floor(L/3)-1 and 2*floor(L/3)-1 every entry of
the list is reduced by a factorized reduction; `pool_layers` gives those layer indices.
"""
from __future__ import annotations

import math

from ..config import ControllerConfig, ModelConfig, SearchPreset, TrainConfig
from . import drawing, image_presets
from .base import SearchSpace, register, whole_option
from .decisions import Choice, Subset

# Official op order (general_child.py `_enas_layer`: branch_0 .. branch_5).
MACRO_OPS = ("conv3x3", "sep3x3", "conv5x5", "sep5x5", "avgpool3x3", "maxpool3x3")
MAX_LAYERS = 64  # official search 12, final 24
OP_COLORS = {"conv3x3": "#cfe2f3", "sep3x3": "#d9ead3", "conv5x5": "#9fc5e8", "sep5x5": "#b6d7a8",
             "avgpool3x3": "#fce5cd", "maxpool3x3": "#f9cb9c"}


# --- presets (official scripts/cifar10_macro_{search,final}.sh; image_presets.py says what they share) --

def _search_paper(task: str) -> SearchPreset:
    return SearchPreset(
        space="enas_macro", space_options={"num_layers": 12}, task=task,  # child_num_layers=12
        epochs=310, batch_size=128, eval_batch_size=128, shared_steps=0,      # a pass over 45k images
        num_valid=5000, log_every=50, derive_samples=100,
        model=ModelConfig(channels=36, dropout=0.1),            # out_filters 36, keep_prob 0.9
        shared=image_presets.cosine(lr_min=0.0005, l2=0.00025),
        controller=ControllerConfig(hidden_size=64, lr=0.001, adam_beta1=0.0,  # main.py: lstm_size=64
                                    temperature=0.0, tanh_constant=1.5, entropy_weight=1e-4,
                                    baseline_decay=0.99, num_aggregate=20, steps=50, reward_c=1.0,
                                    skip_target=0.4, skip_weight=0.8, init_range=0.1),
    )


def _train_paper(task: str) -> TrainConfig:
    return TrainConfig(task=task, epochs=310, batch_size=100, eval_batch_size=100, num_valid=0,
                       model=ModelConfig(channels=96, dropout=0.5, style="final"),  # 24 layers: the arch's
                       optim=image_presets.cosine(lr_min=0.001, l2=2e-4))


# num_layers 0: the macro network takes its depth from the space, not from the model config.
def _search_tiny(task: str) -> SearchPreset:
    return image_presets.search_tiny("enas_macro", {"num_layers": 4}, cells_per_stage=0, controller=dict(
        skip_weight=0.8, op_tanh_reduce=1.0, op_bias=False, anchors="after"))


def _train_tiny(task: str) -> TrainConfig:
    return image_presets.train_tiny(cells_per_stage=0, aux_head=False)


def _search_small(task: str) -> SearchPreset:
    return image_presets.search_small(_search_paper(task), {"num_layers": 6}, cells_per_stage=0)


def _train_small(task: str) -> TrainConfig:
    return image_presets.train_small(channels=24, cells_per_stage=0, aux_head=False)


@register
class EnasMacroSpace(SearchSpace):
    name = "enas_macro"
    tasks = ("cifar10", "fashion_mnist")
    models = "enas.nn.macro"
    op_names = MACRO_OPS  # what the networks (enas/nn) build for each op token
    presets = {("search", "paper"): _search_paper, ("search", "tiny"): _search_tiny,
               ("search", "small"): _search_small, ("train", "paper"): _train_paper,
               ("train", "tiny"): _train_tiny, ("train", "small"): _train_small}
    # 12 layers: official scripts/cifar10_macro_search.sh (--child_num_layers=12).
    defaults = {"num_layers": 12}

    def build_decisions(self):
        n = self.options["num_layers"]
        whole_option(self.name, "num_layers", n, 1, MAX_LAYERS)
        decisions = []
        for i in range(n):
            decisions.append(Choice(f"layer{i}.op", len(MACRO_OPS), MACRO_OPS, anchor=True))
            decisions.append(Subset(f"layer{i}.skip", i))  # layer 0: empty, no token
        return decisions

    def infer_options(self, num_tokens: int) -> dict:
        # L + L(L-1)/2 = L(L+1)/2 tokens
        n = int((math.isqrt(8 * num_tokens + 1) - 1) // 2)
        return {"num_layers": n} if n >= 1 and n * (n + 1) // 2 == num_tokens else {}

    # --- reading an architecture ---------------------------------------------------------------
    def layers(self, tokens) -> list[tuple[int, tuple[int, ...]]]:
        """(op, skip bits) per layer; layer i has i bits."""
        tokens, out, pos = list(tokens), [], 0
        for i in range(self.options["num_layers"]):
            out.append((tokens[pos], tuple(tokens[pos + 1:pos + 1 + i])))
            pos += 1 + i
        return out

    @staticmethod
    def skip_sources(bits) -> list[int]:
        """Entries of [stem, layer 0, ..., layer i-2] that layer i adds: bit k -> entry k (0 = stem)."""
        return [k for k, b in enumerate(bits) if b]

    @property
    def pool_layers(self) -> tuple[int, ...]:
        """Layers after which every earlier output is halved in size (official general_child.py)."""
        d = self.options["num_layers"] // 3
        return tuple(p for p in (d - 1, 2 * d - 1) if p >= 0)

    # --- drawing -----------------------------------------------------------------------------
    def _entry_name(self, k: int) -> str:
        return "stem" if k == 0 else f"layer {k - 1}"

    def text(self, tokens) -> str:
        """One line per layer, `layer i = op(layer i-1)` and the skips it adds, and where pools fall."""
        layers, width = self.layers(tokens), len(f"layer {self.options['num_layers'] - 1}")
        lines = [f"{self.name}, {len(layers)} layers: {' '.join(map(str, tokens))}"]
        for i, (op, bits) in enumerate(layers):
            skips = [self._entry_name(k) for k in self.skip_sources(bits)]
            lines.append(f"  {f'layer {i}':<{width}} = {MACRO_OPS[op]}({self._entry_name(i)})"
                         + (f"  + skips from {', '.join(skips)}" if skips else ""))
            if i in self.pool_layers and i < len(layers) - 1:
                lines.append(f"  {'':<{width}}   -- every output so far halved (factorized reduction)")
        return "\n".join(lines)

    def figure(self, tokens):
        """The chain stem -> layer 0 -> ... left to right, each layer's op in its box, every skip
        connection as an arc above the chain into the layer that adds it, and a dashed line where
        the outputs are halved."""
        import math

        layers = self.layers(tokens)
        dx, y0 = 1.0, 0.45  # inches per layer; height of the chain's centre line

        def peak(span: int) -> float:  # how high an arc over `span` layers rises: long arcs higher
            return 0.35 + 0.3 * math.log2(span)

        spans = [i + 1 - k for i, (_, bits) in enumerate(layers) for k in self.skip_sources(bits)]
        height = y0 + 0.35 + (peak(max(spans)) if spans else 0.2) + 0.15
        fig, ax = drawing.inch_axes(max(dx * (len(layers) + 1) + 0.2, 7.0), height)
        x = [0.5 + dx * j for j in range(len(layers) + 1)]  # entry j: stem (0), layer j-1
        boxes = [drawing.box(ax, x[0], y0, "stem", "white", fontsize=8)]
        for i, (op, _) in enumerate(layers):
            boxes.append(drawing.box(ax, x[i + 1], y0, f"layer {i}\n{MACRO_OPS[op]}", OP_COLORS[MACRO_OPS[op]],
                                     fontsize=8))
            drawing.arrow(ax, boxes[i], boxes[i + 1])
        skip_color = "#3d85c6"
        for i, (_, bits) in enumerate(layers):
            for k in self.skip_sources(bits):
                span = i + 1 - k
                rad = -2 * peak(span) / (span * dx)  # arc3 rises |rad| * distance / 2 above the chord
                drawing.arrow(ax, boxes[k], boxes[i + 1], src_side=(0.5, 1), dst_side=(0.5, 1), color=skip_color,
                              lw=0.9, alpha=0.7, connectionstyle=f"arc3,rad={rad}")
        for p in self.pool_layers:
            if p < len(layers) - 1:
                ax.axvline((x[p + 1] + x[p + 2]) / 2, ymax=2 * y0 / height, color="#999999", ls=":", lw=1)
        drawing.caption(fig, f"{self.name}: {' '.join(map(str, tokens))}")
        used = sorted({op for op, _ in layers})
        drawing.legend(fig, [(MACRO_OPS[o], dict(fc=OP_COLORS[MACRO_OPS[o]])) for o in used]
                       + [("skip (added)", dict(color=skip_color)), ("halved", dict(color="#999999", ls=":"))])
        return fig
