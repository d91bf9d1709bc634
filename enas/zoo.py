"""Published architectures by name. The CLI accepts these names wherever it accepts an arc string."""
from __future__ import annotations

from .arch import Arch
from .errors import ArchError
from .spaces import get_space

# name -> (space, space options, arc string, source)
_ZOO: dict[str, tuple[str, dict, str, str]] = {
    # The PTB cell of the ENAS paper (Figure 6), arc of the official final script
    # (melodyguan/enas scripts/ptb_final.sh, --child_fixed_arc); 12 nodes.
    "enas_ptb": ("enas_rnn", {"num_nodes": 12}, "0 0 0 1 1 2 1 2 0 2 0 5 1 1 0 6 1 8 1 8 1 8 1",
                 "Pham et al. 2018, official ptb_final.sh"),
    # The CIFAR-10 micro cells of the ENAS paper (Figure 8): normal cell, then reduction cell, 5 blocks
    # each (melodyguan/enas scripts/cifar10_micro_final.sh, --child_fixed_arc).
    "enas_micro_cifar10": ("enas_micro", {"num_blocks": 5},
                           "0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1 "
                           "1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1",
                           "Pham et al. 2018, official cifar10_micro_final.sh"),
    # The 24-layer CIFAR-10 macro network of the ENAS paper (Figure 7): per layer the op, then one
    # skip bit per earlier entry (melodyguan/enas scripts/cifar10_macro_final.sh, --child_fixed_arc).
    "enas_macro_cifar10": ("enas_macro", {"num_layers": 24}, " ".join([
        "0",
        "3 0",
        "0 1 0",
        "2 0 0 1",
        "2 0 0 0 0",
        "3 1 1 0 1 0",
        "2 0 0 0 0 0 1",
        "2 0 1 1 0 1 1 1",
        "1 0 1 1 1 0 1 0 1",
        "0 0 0 0 0 0 0 0 0 0",
        "2 0 0 0 0 0 1 0 0 0 0",
        "0 1 0 0 1 1 0 0 0 0 1 1",
        "2 0 1 0 0 0 0 0 1 0 1 1 0",
        "1 0 0 1 0 0 0 1 1 1 0 1 0 1",
        "0 1 1 0 1 0 1 0 0 0 0 0 1 0 0",
        "2 0 0 1 0 0 0 0 0 0 0 1 0 1 0 1",
        "2 0 1 0 0 0 1 0 0 1 1 1 1 0 0 1 0",
        "2 0 0 0 0 1 0 1 0 1 0 0 1 0 1 0 0 1",
        "3 0 1 1 0 1 0 0 0 0 0 1 0 1 0 1 0 0 0",
        "3 0 1 1 0 0 0 0 0 0 0 0 0 1 1 0 0 0 0 1",
        "0 1 0 0 1 0 1 1 0 0 0 1 0 0 0 0 0 1 1 0 0",
        "3 0 1 0 1 1 0 0 1 0 1 1 0 1 1 0 1 0 0 1 0 0",
        "0 1 0 1 0 1 0 0 0 0 0 0 0 0 1 0 1 0 0 1 0 0 0",
        "0 1 1 0 0 0 1 1 1 0 1 0 0 0 1 0 1 0 0 1 1 0 0 0"]),
        "Pham et al. 2018, official cifar10_macro_final.sh"),
    # nas_rnn arcs: per node 0..14 (combination, activation), then the inject's (combination,
    # activation), then the cell indices (c_t node, inject node); combination 0 add, 1 elem_mult;
    # activation 0 identity, 1 tanh, 2 sigmoid, 3 relu (enas/spaces/nas_rnn.py).
    # The LSTM (Hochreiter & Schmidhuber 1997, with torch.nn.LSTM's equations) in the base-8 tree:
    # leaves i = sigmoid (0), g = tanh (1), f = sigmoid (2), o = sigmoid (4), the other leaves
    # identity sums held at zero (space option zero_leaves: the base-8 tree has no 4-leaf form), so
    # that the cell stays an LSTM when it is trained; node 8 = i*g,
    # node 9 = f, injected as f*c_{t-1}; node 12 = i*g + f*c_{t-1} is c_t and tanh(c_t) its output;
    # node 13 = o; the root h_t = tanh(c_t) * o. With a leaf bias, as torch.nn.LSTM has one.
    "lstm": ("nas_rnn", {"base": 8, "leaf_bias": True, "zero_leaves": (3, 5, 6, 7)},
             "0 2  0 1  0 2  0 0  0 2  0 0  0 0  0 0  "
             "1 0  0 0  0 0  0 0  0 1  0 0  1 0  1 0  12 9",
             "torch.nn.LSTM equations in the tree encoding of Zoph & Le 2017, sec. 3.2"),
    # The cell found on Penn Treebank (Zoph & Le 2017, sec. 4.2) as TensorFlow publishes it:
    # tf.contrib.rnn.NASCell.call. Leaves: sigmoid(+), relu(+), sigmoid(+), relu(*), tanh(+),
    # sigmoid(+), tanh(+), sigmoid(+); second layer tanh(*), tanh(+), tanh(*), sigmoid(+); c_{t-1}
    # injected into node 8 by tanh(+); node 12 = a8 * a9 is c_t (identity); node 13 = tanh(+); the
    # root h_t = tanh(a12 * a13). Without leaf biases, as NASCell's default (use_biases=False).
    "nascell": ("nas_rnn", {"base": 8},
                "0 2  0 3  0 2  1 3  0 1  0 2  0 1  0 2  "
                "1 1  0 1  1 1  0 2  1 0  0 1  1 1  0 1  12 8",
                "Zoph & Le 2017, the Penn Treebank cell; tf.contrib.rnn.NASCell"),
    # The CIFAR-10 cells of DARTS (Liu et al. 2019, Figures 4 and 5; official cnn/genotypes.py
    # DARTS_V1, first order, and DARTS_V2, second order, the paper's "DARTS"): normal cell, then
    # reduction cell, per node `index_1 op_1 index_2 op_2` in the genotype's order; ops 0 max_pool_3x3,
    # 1 avg_pool_3x3, 2 skip_connect, 3 sep_conv_3x3, 4 sep_conv_5x5, 5 dil_conv_3x3, 6 dil_conv_5x5.
    "darts_v1": ("darts_cnn", {"num_nodes": 4}, "1 3 0 3 0 2 1 3 0 2 1 3 0 3 2 2  0 0 1 0 2 2 0 0 0 0 2 2 2 2 0 1",
                 "Liu et al. 2019, official cnn/genotypes.py DARTS_V1"),
    "darts_v2": ("darts_cnn", {"num_nodes": 4}, "0 3 1 3 0 3 1 3 1 3 0 2 0 2 2 5  0 0 1 0 2 2 1 0 0 0 2 2 2 2 1 0",
                 "Liu et al. 2019, official cnn/genotypes.py DARTS_V2"),
    # PNASNet-5 (Liu et al. 2018, Figure 5), the cell of the released model (tensorflow/models
    # research/slim/nets/nasnet/pnasnet.py PNasNetNormalCell): per block `index_1 op_1 index_2 op_2`
    # in the released order; index 0 c_{k-2}, 1 c_{k-1}, 2 + j block j; ops 0 sep_conv_3x3,
    # 1 sep_conv_5x5, 2 sep_conv_7x7, 3 conv_7x1_1x7, 4 identity, 5 avg_pool_3x3, 6 max_pool_3x3,
    # 7 dil_conv_3x3.
    "pnasnet5": ("pnas", {"num_blocks": 5}, "0 1 0 6  1 2 1 6  1 1 1 0  4 0 1 6  0 0 1 4",
                 "Liu et al. 2018, tensorflow/models pnasnet.py PNasNetNormalCell"),
    # The Penn Treebank cell of DARTS (Liu et al. 2019, Figure 6; official rnn/genotypes.py DARTS_V2):
    # per node 1..8 `predecessor activation`; activations 0 tanh, 1 relu, 2 sigmoid, 3 identity.
    "darts_ptb": ("darts_rnn", {"num_nodes": 8}, "0 2 1 1 1 1 1 3 2 0 5 2 3 0 5 1",
                  "Liu et al. 2019, official rnn/genotypes.py DARTS_V2"),
}


def names() -> list[str]:
    return sorted(_ZOO)


def get(name: str) -> Arch:
    if name not in _ZOO:
        raise ArchError(f"unknown zoo architecture {name!r}; known: {', '.join(names())}")
    space, options, arc, _ = _ZOO[name]
    return Arch.parse(get_space(space, **options), arc)


def source(name: str) -> str:
    return _ZOO[name][3]
