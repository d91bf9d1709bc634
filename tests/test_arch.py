"""Arch and the search-space registry: parsing, formatting, validation, sampling, for every space."""
import json

import pytest
from hypothesis import given, settings, strategies as st

import enas
from enas import Arch, ArchError, zoo

SPACES = enas.list_spaces()


@pytest.mark.parametrize("name", SPACES)
@given(seed=st.integers(0, 2**31))
@settings(max_examples=25, deadline=None)
def test_round_trip(name, seed):
    space = enas.get_space(name)
    arch = space.sample(seed=seed)
    assert Arch.parse(space, str(arch)) == arch
    assert Arch.from_json(json.dumps(arch.to_json())) == arch
    assert hash(Arch.parse(space, str(arch))) == hash(arch)
    assert arch.tensor().tolist() == list(arch.tokens)


@pytest.mark.parametrize("name", SPACES)
def test_sampling_reaches_every_option(name):
    space = enas.get_space(name)
    seen = [set() for _ in range(space.num_tokens)]
    for seed in range(400):
        for pos, t in enumerate(space.sample(seed=seed).tokens):
            seen[pos].add(t)
    for d, o in zip(space.decisions, space.offsets):
        hi = 2 if d.kind == "subset" else d.num_options
        for k in range(d.width):
            assert seen[o + k] == set(range(hi)), d.name


@pytest.mark.parametrize("name", SPACES)
def test_bad_arcs_name_the_position(name):
    space = enas.get_space(name)
    good = str(space.sample(seed=1)).split()
    with pytest.raises(ArchError, match="expected"):
        Arch.parse(space, " ".join(good[:-1]))
    with pytest.raises(ArchError, match="position 0 is 'x'"):
        Arch.parse(space, " ".join(["x"] + good[1:]))
    with pytest.raises(ArchError, match=f"position {len(good) - 1}"):
        Arch.parse(space, " ".join(good[:-1] + ["99"]))


def test_official_ptb_cell():
    arch = zoo.get("enas_ptb")
    space = arch.space
    assert space.num_nodes == 12 and len(arch.tokens) == 23
    prev, act = space.cell(arch.tokens)
    assert prev == [-1, 0, 1, 2, 2, 2, 5, 1, 6, 8, 8, 8]
    assert act == [0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 1]
    assert space.loose_ends(arch.tokens) == [3, 4, 7, 9, 10, 11]


def test_enas_rnn_options():
    fixed = enas.get_space("enas_rnn", num_nodes=9, first_act="tanh")
    # the enas_lm README arc: 8 (prev, func) pairs after a fixed-tanh node 0
    arch = Arch.parse(fixed, "0 2 1 0 2 1 2 2 4 0 5 0 3 2 6 2")
    prev, act = fixed.cell(arch.tokens)
    assert prev[:3] == [-1, 0, 1] and act[0] == 0
    assert fixed.infer_options(16) == {"num_nodes": 9}
    assert enas.get_space("enas_rnn").infer_options(23) == {"num_nodes": 12}
    every = enas.get_space("enas_rnn", num_nodes=4, output="all")
    assert every.loose_ends(every.sample(seed=0).tokens) == [0, 1, 2, 3]
    with pytest.raises(ArchError, match="first_act"):
        enas.get_space("enas_rnn", first_act="relu")
    with pytest.raises(ArchError, match="unknown option"):
        enas.get_space("enas_rnn", nodes=3)
    with pytest.raises(ArchError, match="unknown search space"):
        enas.get_space("nope")


def test_space_size_and_equality():
    space = enas.get_space("enas_rnn", num_nodes=3)
    # 4 activations per node, node i picks among i predecessors: 4^3 * 1 * 2
    assert space.size() == 4 ** 3 * 2
    assert space == enas.get_space("enas_rnn", num_nodes=3)
    assert space != enas.get_space("enas_rnn", num_nodes=4)
