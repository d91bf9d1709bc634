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

from .base import SearchSpace, register, whole_option
from .decisions import Choice, Subset

# Official op order (general_child.py `_enas_layer`: branch_0 .. branch_5).
MACRO_OPS = ("conv3x3", "sep3x3", "conv5x5", "sep5x5", "avgpool3x3", "maxpool3x3")
MAX_LAYERS = 64  # official search 12, final 24


@register
class EnasMacroSpace(SearchSpace):
    name = "enas_macro"
    tasks = ("cifar10", "fashion_mnist")
    models = "enas.nn.macro"
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
