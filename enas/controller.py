"""The ENAS controller: an LSTM policy over the decisions of any search space.

The controller reads `space.decisions` and runs one LSTM step per decision (Pham et al. 2018,
section 2; official ENAS src/ptb/ptb_enas_controller.py, src/cifar10/general_controller.py,
src/cifar10/micro_controller.py). What it does at a step depends only on the decision's kind:

- `Choice` (an op, an activation): logits = softmax layer of the decision's group on the LSTM
  output; the next input is the chosen option's embedding (one table per group, shared by every
  decision of the group, as the official `w_emb` / `w_soft`).
- `Predecessor` (pick one earlier node): pointer attention over the anchors,
  logit_k = v^T tanh(W1 a_k + W2 h); the next input is the chosen anchor's state.
- `Subset` (skip connections): the same attention gives one score x_k per anchor and each bit is
  an independent two-way choice with logits [-x_k, x_k] (official general_controller.py: P = sigmoid(2
  x_k)), or with `subset_logits="nas"` [0, x_k], the sigmoid of Zoph & Le 2017 sec. 3.3 (P(j -> i) =
  sigmoid(v^T tanh(W_prev h_j + W_curr h_i))); the next input is sum(chosen anchors) / (1 + count)
  (official general_controller.py). The skip penalty is KL(Bern(sigmoid(x_k)) || Bern(skip_target))
  on the shaped score, as official `skip_prob = tf.sigmoid(logit)`.

Decision order. Within a node (the decisions up to and including one marked `anchor=True`) the
controller makes the `Predecessor` decisions first: a micro block is decided index_1, index_2, op_1,
op_2 (official micro_controller.py `_body`), while its tokens keep the arc order index_1 op_1
index_2 op_2. Nodes whose predecessor comes first already (enas_rnn) or that have none (enas_macro)
are unaffected; `indices_first=False` steps in token order.

Anchors. A node's anchor is the controller state that later `Predecessor` and `Subset` decisions
attend to and, when they choose the node, read as the next input. Each official controller takes it
at another step; `anchors` says which:
- "after": the LSTM output of the step that reads the node's anchor decision; that step also makes
  the next decision (official general_controller.py: the step after each op is the layer's anchor
  and decides its skips).
- "own_step": the same output, from a step of its own; the next node then starts from the start
  input (official micro_controller.py: one step after op_2, then `inputs = self.g_emb`).
- "before": the output of the step that begins the node, the one reading the previous node's anchor
  decision; the first node begins with a step of its own fed the start input (official
  ptb_enas_controller.py `all_h`: each layer's first step, which chooses the predecessor before the
  function is chosen).
Anchors that exist before any decision (`space.initial_anchors`, e.g. the two cell inputs of a micro
cell) come from as many warm-up steps fed the start input: their keys W1 h are learned, but choosing
one feeds zeros (official micro_controller.py writes zeros as anchors 0 and 1; enas_lm
controller.py starts `all_h` with zeros). A new cell (`space.anchor_resets`) drops the anchors and
warms up again, carrying the LSTM state (official micro_controller.py `_build_sampler(prev_c, prev_h)`).

Logit shaping, in the official order: logits / temperature, then tanh_constant * tanh(logits),
each off when None or 0; ops (Choice decisions of group "op") use tanh_constant / op_tanh_reduce.
Op biases (official micro_controller.py): `op_bias_init` gives the op softmax a learned bias (`b_soft`)
added before the shaping, in every cell; `op_bias` is a fixed bias (`b_soft_no_learn`) added after
the shaping, in the first cell only (the official sampler passes `use_bias=True` for the normal cell).

Everything is batched: `sample(n)` runs the LSTM once over the decision sequence with batch n,
and `log_prob(archs)` runs the very same code with the tokens given (teacher forcing). Neither
synchronises with the host; only `to_archs` / `Sample.archs` read tokens back.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .arch import Arch
from .config import ControllerConfig
from .errors import ArchError, ConfigError
from .spaces.base import SearchSpace
from .spaces.decisions import Choice, Predecessor, Subset

ANCHORS = ("after", "own_step", "before")  # where a node's anchor is taken (module docstring)
SUBSET_LOGITS = ("enas", "nas")             # a skip bit's logits: [-x, x] or [0, x] (module docstring)
# PTB only: index logits get -penalty * (i - j)^2 after shaping, a prior for recent predecessors
# (official ENAS src/ptb/ptb_enas_controller.py and google-research enas_lm src/controller.py: / 6).
PTB_INDEX_DISTANCE_PENALTY = 1.0 / 6.0


class Sample(NamedTuple):
    """A batch of n architectures and what the policy says about them; all tensors on the device."""

    tokens: torch.Tensor     # [n, L] long: the flat token lists (Subset bits in order)
    log_prob: torch.Tensor   # [n]: log pi(tokens), summed over decisions
    entropy: torch.Tensor    # [n]: entropy of every decision's distribution, summed
    skip_kl: torch.Tensor    # [n]: KL(Bern(sigmoid(x)) || Bern(skip_target)), 0 without Subset decisions
    skip_rate: torch.Tensor  # [n]: fraction of Subset bits set, 0 without Subset decisions

    def archs(self, space: SearchSpace) -> list[Arch]:
        """The architectures as `Arch` values (reads the tokens back to the host)."""
        return [Arch(space, tuple(row)) for row in self.tokens.tolist()]


def _off(value: float | None) -> bool:
    # None and 0 both mean "off" (the config files write 0).
    return value is None or value == 0


class Controller(nn.Module):
    """LSTM policy over `space.decisions`: `sample(n)`, `log_prob(archs)`, `to_archs(tokens)`."""

    def __init__(self, space: SearchSpace, hidden_size: int = 100, num_layers: int = 1,
                 temperature: float | None = None, tanh_constant: float | None = None,
                 op_tanh_reduce: float = 1.0, init_range: float = 0.1, skip_target: float = 0.4,
                 op_bias: Sequence[float] | None = None, *,
                 op_bias_init: Sequence[float] | None = None,
                 index_distance_penalty: float | None = None,
                 scale_index_input: bool = False, anchors: str = "after", indices_first: bool = True,
                 subset_logits: str = "enas"):
        """
        hidden_size, num_layers: the LSTM (official ENAS: 100 x 1 for PTB, 64 x 1 for CIFAR-10;
            Zoph & Le 2017: 35 x 2).
        temperature, tanh_constant: logit shaping (None or 0 = off).
        op_tanh_reduce: ops use tanh_constant / op_tanh_reduce (official micro search: 2.5).
        init_range: every parameter ~ U(-init_range, init_range) (official 0.1).
        skip_target: the skip probability the Subset KL pulls towards (official macro: 0.4).
        op_bias: fixed bias added to the first cell's op logits after shaping (a space's
            `controller_options`, e.g. the micro space's official `b_soft_no_learn`).
        op_bias_init: gives the op softmax a learned bias with this initial value (likewise, `b_soft`).
        index_distance_penalty: Predecessor logits -= penalty * distance^2 (PTB_INDEX_DISTANCE_PENALTY).
        scale_index_input: feed the chosen anchor / (0.1 + distance) after a Predecessor (official PTB).
        anchors: which step's state stands for a node, one of ANCHORS (module docstring).
        subset_logits: a skip bit's logits, one of SUBSET_LOGITS (module docstring).
        indices_first: make a node's Predecessor decisions before its others (official micro order).
        """
        super().__init__()
        if not 0.0 < skip_target < 1.0:
            raise ConfigError(f"controller: skip_target must be in (0, 1), got {skip_target}")
        if op_tanh_reduce <= 0:
            raise ConfigError(f"controller: op_tanh_reduce must be positive, got {op_tanh_reduce}")
        if anchors not in ANCHORS:
            raise ConfigError(f"controller: anchors must be one of {', '.join(ANCHORS)}, got {anchors!r}")
        if subset_logits not in SUBSET_LOGITS:
            raise ConfigError(f"controller: subset_logits must be one of {', '.join(SUBSET_LOGITS)}, "
                              f"got {subset_logits!r}")
        if num_layers < 1:
            raise ConfigError(f"controller: num_layers must be at least 1, got {num_layers}")
        self.space = self._built_for = space
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.temperature, self.tanh_constant = temperature, tanh_constant
        self.op_tanh_reduce, self.init_range, self.skip_target = op_tanh_reduce, init_range, skip_target
        self.index_distance_penalty, self.scale_index_input = index_distance_penalty, scale_index_input
        self.anchors, self.indices_first, self.subset_logits = anchors, indices_first, subset_logits
        # Warm-up steps at the start of every cell: its inputs, and with "before" the first node's step.
        self._warmups = space.initial_anchors + (anchors == "before")
        self._cells = self._plan()

        decisions = space.decisions
        H = hidden_size
        self.g_emb = nn.Parameter(torch.empty(1, H))  # learned start input (official `g_emb`)
        self.lstm = nn.ModuleList(nn.LSTMCell(H, H) for _ in range(num_layers))
        # One embedding table and one softmax layer per Choice group, sized for its widest decision.
        widths: dict[str, int] = {}
        for d in decisions:
            if isinstance(d, Choice):
                widths[d.group] = max(widths.get(d.group, 0), d.num_options)
        self.emb = nn.ModuleDict({g: nn.Embedding(w, H) for g, w in widths.items()})
        self.soft = nn.ModuleDict({g: nn.Linear(H, w, bias=(g == "op" and op_bias_init is not None))
                                   for g, w in widths.items()})
        # Pointer attention shared by every Predecessor and Subset decision (official w_attn_1/2, v).
        self.attn_key = nn.Linear(H, H, bias=False)    # W1, applied once per anchor
        self.attn_query = nn.Linear(H, H, bias=False)  # W2
        self.attn_v = nn.Linear(H, 1, bias=False)      # v

        if op_bias_init is not None:
            self._check_op_vector("op_bias_init", op_bias_init)
        self._op_bias_init = None if op_bias_init is None else tuple(float(b) for b in op_bias_init)
        self.reset_parameters()
        if op_bias is not None:
            self._check_op_vector("op_bias", op_bias)
            self.register_buffer("op_bias", torch.tensor(op_bias, dtype=torch.get_default_dtype()))
        else:
            self.op_bias = None

    def _check_op_vector(self, what: str, values: Sequence[float]) -> None:
        ops = {d.num_options for d in self.space.decisions if isinstance(d, Choice) and d.group == "op"}
        if ops != {len(values)}:
            raise ConfigError(f"controller: {what} has {len(values)} values but the op decisions of "
                              f"{self.space.name} have {sorted(ops) or 'no'} options")

    def _plan(self) -> list[list[tuple[int, bool]]]:
        """Per cell, its steps in the order the decisions are made: (decision index, whether the step's
        output becomes an anchor before deciding). Counts the anchors on the way, so that a space whose
        decisions point at nodes that do not exist yet fails here, not mid-search."""
        space, decisions = self.space, self.space.decisions
        bounds = [0, *space.anchor_resets, len(decisions)]
        cells = []
        for lo, hi in zip(bounds, bounds[1:]):
            nodes, node = [], []
            for t in range(lo, hi):
                node.append(t)
                if decisions[t].anchor or t == hi - 1:
                    nodes.append(node)
                    node = []
            if self.indices_first:  # a stable sort: Predecessors first, the rest in token order
                nodes = [sorted(nd, key=lambda t: not isinstance(decisions[t], Predecessor)) for nd in nodes]
            steps, count, after_anchor = [], self._warmups, False
            for t in (t for nd in nodes for t in nd):
                d = decisions[t]
                new_anchor = after_anchor and self.anchors != "own_step"
                count += new_anchor
                if isinstance(d, (Predecessor, Subset)) and d.num_options > count:
                    raise ConfigError(f"controller: {space.name} decision {d.name} refers to "
                                      f"{d.num_options} anchors but only {count} exist at that point")
                steps.append((t, new_anchor))
                after_anchor = d.anchor
                count += d.anchor and self.anchors == "own_step"
            cells.append(steps)
        return cells

    def reset_parameters(self) -> None:
        # Official ENAS: tf.random_uniform_initializer(-0.1, 0.1) for every controller variable.
        for p in self.parameters():
            nn.init.uniform_(p, -self.init_range, self.init_range)
        if self._op_bias_init is not None:
            with torch.no_grad():
                self.soft["op"].bias.copy_(torch.tensor(self._op_bias_init))

    # --- public API ------------------------------------------------------------------------------
    def set_space(self, space: SearchSpace) -> None:
        """Decide the decisions of `space` from now on: a space whose decisions begin those of the space
        the controller was built for, a shallower network of it (the depth schedule of full NAS, Zoph &
        Le 2017 sec. 4.1, grows the networks this way). Every parameter belongs to a decision group or
        to the attention, not to a position, so the same parameters decide every prefix."""
        built = self._built_for
        if type(space) is not type(built) or space.decisions != built.decisions[:len(space.decisions)]:
            raise ConfigError(f"controller of {built!r}: {space!r} does not begin with its decisions")
        self.space = space
        self._cells = self._plan()

    def sample(self, n: int = 1, greedy: bool = False, generator: torch.Generator | None = None) -> Sample:
        """Draw n architectures in one batched pass (greedy=True: the most likely decision at each step)."""
        return self._run(n, tokens=None, greedy=greedy, generator=generator)

    def log_prob(self, archs: Sequence[Arch] | torch.Tensor) -> Sample:
        """The policy's log-probability, entropy and skip statistics of given architectures."""
        tokens = self._given(archs)
        return self._run(tokens.shape[0], tokens=tokens)

    def hidden_states(self, archs: Sequence[Arch] | torch.Tensor) -> torch.Tensor:
        """The top LSTM output at every decision step of given architectures (teacher forced), [n, D + 1, H].

        Column j < D is the output of the step that makes decision `decision_order[j]` (the order the
        controller decides in, which `indices_first` may differ from the token order); it has read every
        earlier decision. The last column is the state after the last decision has been read: one more
        step fed its input (with anchors="own_step" the node's own step, which reads it already). It
        depends on every token, so it serves as the architecture's embedding. The pass is the one of
        `sample` and `log_prob`, so column j equals the state the controller sampled decision j from.
        """
        tokens = self._given(archs)
        trace: list[torch.Tensor] = []
        self._run(tokens.shape[0], tokens=tokens, trace=trace)
        return torch.stack(trace, dim=1)

    @property
    def decision_order(self) -> tuple[int, ...]:
        """Indices into `space.decisions` in the order the controller makes them (columns of hidden_states)."""
        return tuple(t for cell in self._cells for t, _ in cell)

    def _given(self, archs: Sequence[Arch] | torch.Tensor) -> torch.Tensor:
        """Architectures as validated token rows [n, L] on the controller's device."""
        if isinstance(archs, torch.Tensor):
            tokens = archs.unsqueeze(0) if archs.dim() == 1 else archs
        else:
            archs = list(archs)
            for a in archs:
                if not isinstance(a, Arch) or a.space != self.space:
                    raise ArchError(f"controller of {self.space.name}: got {a!r}, "
                                    "not an architecture of this space")
            tokens = torch.tensor([a.tokens for a in archs], dtype=torch.long).reshape(len(archs), -1)
        if tokens.dim() != 2 or tokens.shape[1] != self.space.num_tokens:
            raise ArchError(f"{self.space.name}: expected tokens of shape [n, {self.space.num_tokens}], "
                            f"got {list(tokens.shape)}")
        return tokens.to(device=self.g_emb.device, dtype=torch.long)

    def forward(self, n: int = 1, greedy: bool = False) -> Sample:
        return self.sample(n, greedy=greedy)

    def to_archs(self, tokens: torch.Tensor) -> list[Arch]:
        """Token rows [n, L] as `Arch` values (reads the tokens back to the host)."""
        return [Arch(self.space, tuple(row)) for row in tokens.tolist()]

    def extra_repr(self) -> str:
        return (f"space={self.space.name}, temperature={self.temperature}, "
                f"tanh_constant={self.tanh_constant}, "
                f"op_tanh_reduce={self.op_tanh_reduce}, skip_target={self.skip_target}, "
                f"anchors={self.anchors!r}, indices_first={self.indices_first}, "
                f"subset_logits={self.subset_logits!r}")

    # --- the one pass shared by sample and log_prob -----------------------------------------------
    def _shape(self, logits: torch.Tensor, is_op: bool) -> torch.Tensor:
        # Official order: divide by the temperature, then squash with tanh.
        if not _off(self.temperature):
            logits = logits / self.temperature
        if not _off(self.tanh_constant):
            c = self.tanh_constant / self.op_tanh_reduce if is_op else self.tanh_constant
            logits = c * torch.tanh(logits)
        return logits

    def _step(self, x: torch.Tensor, state: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """One step of the LSTM stack; x [n, H]; updates `state` in place, returns the top h [n, H]."""
        for layer, cell in enumerate(self.lstm):
            h, c = cell(x, state[layer])
            state[layer] = (h, c)
            x = h
        return x

    def _categorical(self, logits: torch.Tensor, given: torch.Tensor | None, greedy: bool,
                     generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One choice per row of logits [n, k]: (the given one, the argmax or a sample [n], its log-probability
        [n], the distribution's entropy [n])."""
        logp = F.log_softmax(logits, dim=-1)
        if given is None and greedy:
            given = logits.argmax(-1)
        elif given is None:
            # Gumbel-max: exact categorical sampling without the host checks of torch.multinomial.
            noise = torch.empty_like(logits).exponential_(generator=generator).log()
            given = (logits.detach() - noise).argmax(-1)
        return given, logp.gather(1, given[:, None]).squeeze(1), -(logp.exp() * logp).sum(-1)

    def _run(self, n: int, tokens: torch.Tensor | None = None, greedy: bool = False,
             generator: torch.Generator | None = None, trace: list[torch.Tensor] | None = None) -> Sample:
        """The pass of sample and log_prob; `trace`, when given, collects the top h [n, H] of every
        decision step and then the state after the last decision (hidden_states)."""
        space, H = self.space, self.hidden_size
        ref = self.g_emb
        zeros = ref.new_zeros(n)
        state = [(ref.new_zeros(n, H), ref.new_zeros(n, H)) for _ in self.lstm]
        start = self.g_emb.expand(n, H)
        anchors: list[torch.Tensor] = []      # what choosing anchor k feeds, each [n, H]
        anchor_keys: list[torch.Tensor] = []  # W1 h_k, computed once per anchor, each [n, H]

        def add_anchor(h: torch.Tensor, value: torch.Tensor) -> None:
            anchors.append(value)
            anchor_keys.append(self.attn_key(h))

        out = torch.zeros(n, space.num_tokens, dtype=torch.long, device=ref.device)
        log_prob, entropy = zeros, zeros
        skip_kl, skip_bits, num_bits, num_subsets = zeros, zeros, 0, 0
        log_target = math.log(self.skip_target)
        log_target_off = math.log1p(-self.skip_target)
        for c, cell in enumerate(self._cells):
            anchors.clear()
            anchor_keys.clear()
            for k in range(self._warmups):
                h = self._step(start, state)
                add_anchor(h, torch.zeros_like(h) if k < space.initial_anchors else h)
            x = start
            for t, new_anchor in cell:
                d, pos = space.decisions[t], space.offsets[t]
                h = self._step(x, state)  # [n, H]
                if trace is not None:
                    trace.append(h)
                if new_anchor:
                    add_anchor(h, h)
                given = tokens[:, pos] if tokens is not None else None
                if isinstance(d, Choice):
                    is_op = d.group == "op"
                    logits = self._shape(self.soft[d.group](h)[:, :d.num_options], is_op)
                    if is_op and self.op_bias is not None and c == 0:
                        logits = logits + self.op_bias
                    choice, lp, ent = self._categorical(logits, given, greedy, generator)
                    log_prob, entropy = log_prob + lp, entropy + ent
                    out[:, pos] = choice
                    x = self.emb[d.group](choice)
                elif d.num_options == 0:  # an empty subset (the first layer's skips): nothing to decide
                    x = start  # official general_controller.py feeds g_emb after layer 0
                else:
                    m = d.num_options
                    keys = torch.stack(anchor_keys[:m], dim=1)  # [n, m, H]
                    query = self.attn_query(h)[:, None, :]      # [n, 1, H]
                    scores = self.attn_v(torch.tanh(keys + query)).squeeze(-1)  # [n, m]
                    values = torch.stack(anchors[:m], dim=1)    # [n, m, H]
                    if isinstance(d, Predecessor):
                        logits = self._shape(scores, is_op=False)
                        if not _off(self.index_distance_penalty):
                            distance = torch.arange(m, 0, -1, device=h.device, dtype=h.dtype)  # to anchor k: m - k
                            logits = logits - self.index_distance_penalty * distance ** 2
                        choice, lp, ent = self._categorical(logits, given, greedy, generator)
                        log_prob, entropy = log_prob + lp, entropy + ent
                        out[:, pos] = choice
                        x = values.gather(1, choice[:, None, None].expand(n, 1, H)).squeeze(1)
                        if self.scale_index_input:
                            x = x / (0.1 + (m - choice).to(h.dtype))[:, None]  # distance to the chosen anchor
                    else:
                        # Subset: each anchor's bit is a two-way choice, logits [-x_k, x_k] (official
                        # macro) or [0, x_k] (Zoph & Le).
                        x_k = self._shape(scores, is_op=False)              # [n, m]
                        sides = torch.stack([-x_k, x_k], dim=-1)           # [n, m, 2]
                        logits = sides if self.subset_logits == "enas" else \
                            torch.stack([torch.zeros_like(x_k), x_k], dim=-1)
                        logp = F.log_softmax(logits, dim=-1)
                        if tokens is not None:
                            bits = tokens[:, pos:pos + m]
                        elif greedy:
                            bits = logits.argmax(-1)
                        else:
                            u = torch.rand(n, m, device=h.device, dtype=h.dtype, generator=generator)
                            bits = (u < logp[..., 1].detach().exp()).long()
                        log_prob = log_prob + logp.gather(2, bits[..., None]).squeeze(-1).sum(-1)
                        entropy = entropy - (logp.exp() * logp).sum((-1, -2))
                        # Skip penalty KL(Bern(q_k) || Bern(skip_target)) with q = sigmoid of the shaped
                        # logits (official general_controller.py `skip_prob = tf.sigmoid(logit)`), summed
                        # over anchors and averaged over Subset decisions (reduce_mean of per-layer sums).
                        log_q = F.logsigmoid(sides)  # [n, m, 2]: log(1 - q), log q
                        q = log_q.exp()
                        kl = q[..., 1] * (log_q[..., 1] - log_target) + q[..., 0] * (log_q[..., 0] - log_target_off)
                        skip_kl = skip_kl + kl.sum(-1)
                        num_subsets += 1
                        chosen = bits.to(h.dtype)  # [n, m]
                        count = chosen.sum(-1)
                        skip_bits, num_bits = skip_bits + count, num_bits + m
                        out[:, pos:pos + m] = bits
                        x = (chosen[:, :, None] * values).sum(1) / (1.0 + count)[:, None]
                if d.anchor and self.anchors == "own_step":
                    h = self._step(x, state)  # reads the node's last decision: the node's anchor
                    add_anchor(h, h)
                    x = start

        if trace is not None:  # the state that has read the last decision
            last_read = self.anchors == "own_step" and space.decisions[self._cells[-1][-1][0]].anchor
            trace.append(h if last_read else self._step(x, state))
        if num_subsets:
            skip_kl = skip_kl / num_subsets
            skip_bits = skip_bits / num_bits
        return Sample(out, log_prob, entropy, skip_kl, skip_bits)


# Controller keywords of a space's `controller_options` that ControllerConfig.op_bias switches on and off.
OP_BIAS_KEYS = ("op_bias", "op_bias_init")


def make_controller(space: SearchSpace, c: ControllerConfig, device: torch.device
                    ) -> tuple[Controller, torch.optim.Optimizer]:
    """The LSTM policy and its Adam optimiser from a ControllerConfig (betas (adam_beta1, 0.999), eps
    adam_eps: OFF utils.get_train_ops has beta1 = 0 and eps 1e-3 for the controller). The space's
    `controller_options` are passed on, its op biases (e.g. the micro space's official ones) only
    when `c.op_bias` switches them on."""
    space_options = {k: v for k, v in space.controller_options.items() if c.op_bias or k not in OP_BIAS_KEYS}
    controller = Controller(space, hidden_size=c.hidden_size, num_layers=c.num_layers,
                            temperature=c.temperature or None, tanh_constant=c.tanh_constant or None,
                            init_range=c.init_range, op_tanh_reduce=c.op_tanh_reduce, **space_options,
                            skip_target=c.skip_target, index_distance_penalty=c.index_distance_penalty or None,
                            scale_index_input=c.scale_index_input, anchors=c.anchors,
                            indices_first=c.indices_first, subset_logits=c.subset_logits).to(device)
    optimizer = torch.optim.Adam(controller.parameters(), lr=c.lr, betas=(c.adam_beta1, 0.999), eps=c.adam_eps)
    return controller, optimizer


__all__ = ["Controller", "Sample", "ANCHORS", "SUBSET_LOGITS", "PTB_INDEX_DISTANCE_PENALTY", "OP_BIAS_KEYS",
           "make_controller"]
