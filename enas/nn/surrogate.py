"""PNAS's surrogate: a cheap model that predicts a cell's validation accuracy from its description, so
that the search trains only the expansions it ranks highest (Liu et al. 2018, sec. 3.3 and 5.2).

A cell of b blocks is read as b steps of four tokens (input_1, op_1, input_2, op_2). Inputs share one
embedding table and ops another; a block is the concatenation of its four embeddings [4D]. Two
predictors, as the paper compares them:
- `lstm`: an LSTM over the blocks, its last hidden state through a linear layer and a sigmoid (D = 100
  and 100 hidden units, the sizes the paper gives); cells of different block counts share a batch
  (packed sequences);
- `mlp`: the blocks' vectors averaged over the blocks, then an MLP of two hidden layers of 100 units
  (the hidden sizes are not in the paper; these are ours), a sigmoid output.

`Ensemble` trains `members` predictors (5 in the paper), each on a different 4/5 of the cells (5
folds: member k never sees fold k), with L1 loss and Adam, and predicts their mean. How long and at
what rate a predictor trains are ours: 50 passes in batches of 100 at lr 0.003, which on the synthetic
target of tests/test_surrogate.py (200 training cells) ranks held-out LSTM predictions at Spearman
0.94, where lr 0.01 overfits (0.88). Training is seeded, so one history of cells gives one ranking.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence

KINDS = ("lstm", "mlp")


def encode(cells: list[tuple[int, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cells (token tuples of 4b numbers, b may differ) -> (tokens [n, B_max, 4] padded with 0,
    blocks [n])."""
    blocks = torch.tensor([len(c) // 4 for c in cells])
    tokens = torch.zeros(len(cells), int(blocks.max()), 4, dtype=torch.long)
    for k, c in enumerate(cells):
        tokens[k, :len(c) // 4] = torch.tensor(c, dtype=torch.long).view(-1, 4)
    return tokens, blocks


class Predictor(nn.Module):
    """One predictor: (tokens [n, B, 4], blocks [n]) -> predicted accuracy [n] in (0, 1)."""

    def __init__(self, kind: str, num_inputs: int, num_ops: int, embed: int = 100, hidden: int = 100):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"predictor must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.inputs = nn.Embedding(num_inputs, embed)
        self.ops = nn.Embedding(num_ops, embed)
        if kind == "lstm":
            self.lstm = nn.LSTM(4 * embed, hidden, batch_first=True)
            self.out = nn.Linear(hidden, 1)
        else:
            self.out = nn.Sequential(nn.Linear(4 * embed, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 1))

    def forward(self, tokens: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
        i1, o1, i2, o2 = tokens.unbind(-1)  # each [n, B]
        x = torch.cat([self.inputs(i1), self.ops(o1), self.inputs(i2), self.ops(o2)], dim=-1)  # [n, B, 4D]
        if self.kind == "lstm":
            packed = pack_padded_sequence(x, blocks.cpu(), batch_first=True, enforce_sorted=False)
            _, (h, _) = self.lstm(packed)  # h [1, n, hidden]: each cell's state after its last block
            return torch.sigmoid(self.out(h[-1])).squeeze(-1)
        mask = (torch.arange(x.shape[1]) < blocks[:, None]).to(x.dtype)  # [n, B]
        mean = (x * mask[..., None]).sum(1) / blocks[:, None].to(x.dtype)  # [n, 4D]
        return torch.sigmoid(self.out(mean)).squeeze(-1)


class Ensemble:
    """`members` predictors, each fitted on 4/5 of the cells; predicts their mean."""

    def __init__(self, kind: str, num_inputs: int, num_ops: int, members: int = 5, epochs: int = 50,
                 lr: float = 0.003, batch: int = 100, seed: int = 0):
        self.kind, self.num_inputs, self.num_ops = kind, num_inputs, num_ops
        self.members, self.epochs, self.lr, self.batch, self.seed = members, epochs, lr, batch, seed
        self.models: list[Predictor] = []

    def fit(self, cells: list[tuple[int, ...]], accuracy: list[float]) -> "Ensemble":
        """Fit every member anew on the cells it is given (its folds of `cells`)."""
        tokens, blocks = encode(cells)
        target = torch.tensor(accuracy, dtype=torch.float32)
        gen = torch.Generator().manual_seed(self.seed)
        fold = torch.randperm(len(cells), generator=gen) % self.members  # [n]: the fold of each cell
        self.models = []
        for k in range(self.members):
            torch.manual_seed(self.seed * 1_000 + k)  # initial weights
            model = Predictor(self.kind, self.num_inputs, self.num_ops)
            keep = (fold != k) if self.members > 1 and len(cells) >= self.members else torch.ones(len(cells), dtype=bool)
            self._train(model, tokens[keep], blocks[keep], target[keep], gen)
            self.models.append(model.eval())
        return self

    def _train(self, model: Predictor, tokens, blocks, target, gen: torch.Generator) -> None:
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        for _ in range(self.epochs):
            for rows in torch.randperm(len(target), generator=gen).split(self.batch):
                loss = (model(tokens[rows], blocks[rows]) - target[rows]).abs().mean()  # L1
                opt.zero_grad()
                loss.backward()
                opt.step()

    @torch.no_grad()
    def predict(self, cells: list[tuple[int, ...]], chunk: int = 8192) -> torch.Tensor:
        """The members' mean prediction for each cell [n] (in chunks: a level can have 10^5 expansions)."""
        out = []
        for start in range(0, len(cells), chunk):
            tokens, blocks = encode(cells[start:start + chunk])
            out.append(torch.stack([m(tokens, blocks) for m in self.models]).mean(0))
        return torch.cat(out) if out else torch.zeros(0)


__all__ = ["Ensemble", "Predictor", "encode", "KINDS"]
