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
