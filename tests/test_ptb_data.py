"""PTB corpus: checksums, counts of the real files, the cache / download path, batching."""
import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from enas.errors import ConfigError, DataError
from enas.tasks import ptb

PTB_DIR = Path(__file__).resolve().parents[2] / "shared/data/ptb"
needs_ptb = pytest.mark.skipif(not (PTB_DIR / "ptb.train.txt").exists(), reason=f"PTB files not in {PTB_DIR}")


@pytest.fixture(autouse=True)
def no_user_cache(tmp_path, monkeypatch):
    # never read or fill the user's real cache, never reach the network
    monkeypatch.setenv("ENAS_CACHE", str(tmp_path / "user_cache"))
    monkeypatch.setenv("ENAS_PTB_URL", (tmp_path / "no_mirror").as_uri())


@pytest.fixture(scope="module")
def corpus():
    return ptb.load_ptb(PTB_DIR, download=False)


def copy_ptb(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ptb.FILES.values():
        shutil.copyfile(PTB_DIR / name, dest / name)
    return dest


@needs_ptb
def test_real_files_counts(corpus):
    # SOURCE.md: tokens = whitespace words + one <eos> per line
    assert corpus.train.shape == (929_589,)
    assert corpus.valid.shape == (73_760,)
    assert corpus.test.shape == (82_430,)
    assert len(corpus.vocab) == corpus.vocab_size == 10_000
    assert corpus.train.dtype == torch.long and corpus.train.device.type == "cpu"
    assert corpus.word2id["<eos>"] == corpus.vocab.index("<eos>")
    assert all(corpus.word2id[w] == i for i, w in enumerate(corpus.vocab))
    assert int(corpus.train.max()) == 9_999 and int(corpus.valid.max()) < 10_000
    # ids follow first appearance in train, as in word_language_model's Dictionary
    assert corpus.train[:1].item() == 0
    first_line = (PTB_DIR / "ptb.train.txt").read_text().split("\n")[0].split()
    assert corpus.decode(corpus.train[: len(first_line) + 1]) == " ".join(first_line + ["<eos>"])
    assert (corpus.valid == corpus.word2id["<unk>"]).sum().item() == 3_485


@needs_ptb
def test_truncated_file_is_named(tmp_path):
    d = copy_ptb(tmp_path / "data")
    data = (d / "ptb.train.txt").read_bytes()
    (d / "ptb.train.txt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"ptb\.train\.txt.*checksum does not match") as e:
        ptb.load_ptb(d, download=False)
    assert "\n" not in str(e.value)


@needs_ptb
def test_altered_file_is_named(tmp_path):
    d = copy_ptb(tmp_path / "data")
    data = bytearray((d / "ptb.valid.txt").read_bytes())
    data[1000] = ord("x") if data[1000] != ord("x") else ord("y")  # same length, one byte different
    (d / "ptb.valid.txt").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"ptb\.valid\.txt.*checksum does not match"):
        ptb.load_ptb(d, download=False)


@needs_ptb
def test_download_into_cache_then_reuse(tmp_path, monkeypatch):
    mirror = copy_ptb(tmp_path / "mirror")
    monkeypatch.setenv("ENAS_PTB_URL", mirror.as_uri())
    empty, cache = tmp_path / "empty", tmp_path / "cache"
    empty.mkdir()
    corpus = ptb.load_ptb(empty, cache_dir=cache)
    assert corpus.train.numel() == 929_589
    assert sorted(p.name for p in cache.iterdir()) == sorted(ptb.FILES.values())  # no temp files left
    for name, digest in ptb.SHA256.items():
        assert hashlib.sha256((cache / name).read_bytes()).hexdigest() == digest

    # second time: from the cache, with the mirror gone and downloads off
    shutil.rmtree(mirror)
    again = ptb.load_ptb(empty, cache_dir=cache, download=False)
    assert torch.equal(again.valid, corpus.valid)


@needs_ptb
def test_default_cache_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ENAS_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("ENAS_PTB_URL", copy_ptb(tmp_path / "mirror").as_uri())
    ptb.load_ptb(None)
    assert (tmp_path / "c" / "ptb" / "ptb.test.txt").is_file()


@needs_ptb
def test_download_with_wrong_checksum_keeps_nothing(tmp_path, monkeypatch):
    mirror = copy_ptb(tmp_path / "mirror")
    (mirror / "ptb.test.txt").write_bytes((mirror / "ptb.test.txt").read_bytes()[:-10])
    monkeypatch.setenv("ENAS_PTB_URL", mirror.as_uri())
    with pytest.raises(DataError, match=r"ptb\.test\.txt.*checksum does not match"):
        ptb.load_ptb(None, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "ptb.test.txt").exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".part")]


def test_missing_files_without_source(tmp_path, monkeypatch):
    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    monkeypatch.setenv("ENAS_PTB_URL", empty.as_uri())
    with pytest.raises(DataError) as e:
        ptb.load_ptb(tmp_path / "data", cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert "\n" not in msg
    for name in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"):
        assert name in msg
    assert str(tmp_path / "data") in msg and str(tmp_path / "cache") in msg


def test_missing_files_download_off(tmp_path):
    with pytest.raises(DataError, match="download disabled"):
        ptb.load_ptb(tmp_path, cache_dir=tmp_path / "cache", download=False)


def tiny_corpus(tmp_path, monkeypatch, texts):
    """Files with arbitrary content, accepted by pointing the checksums at them."""
    for split, text in texts.items():
        (tmp_path / ptb.FILES[split]).write_text(text)
        monkeypatch.setitem(ptb.SHA256, ptb.FILES[split], hashlib.sha256(text.encode()).hexdigest())
    return tmp_path


def test_tokenisation_rules(tmp_path, monkeypatch):
    d = tiny_corpus(tmp_path, monkeypatch, {"train": " a b \n c  a\n\n b", "valid": "c\r\n", "test": "a"})
    c = ptb.load_ptb(d, download=False)
    assert c.vocab == ["a", "b", "<eos>", "c"]
    # every line (also the empty one and the last one without newline) ends with <eos>
    assert c.train.tolist() == [0, 1, 2, 3, 0, 2, 2, 1, 2]
    assert c.valid.tolist() == [3, 2] and c.test.tolist() == [0, 2]


def test_word_missing_from_train(tmp_path, monkeypatch):
    d = tiny_corpus(tmp_path, monkeypatch, {"train": "a b\n", "valid": "a zebra\n", "test": "b\n"})
    with pytest.raises(DataError, match=r"ptb\.valid\.txt.*'zebra'"):
        ptb.load_ptb(d, download=False)


def test_batchify_and_get_batch():
    data = torch.arange(27)
    src = ptb.batchify(data, 4)  # 27 // 4 = 6 rows, 3 tokens dropped
    assert src.shape == (6, 4) and src.is_contiguous()
    assert src[:, 1].tolist() == [6, 7, 8, 9, 10, 11]  # column b is the b-th contiguous stream
    x, y = ptb.get_batch(src, 0, 3)
    assert x.shape == y.shape == (3, 4)
    assert torch.equal(y, x + 1)  # next token in each stream
    x, y = ptb.get_batch(src, 3, 3)  # last batch is shorter: only 5 - 3 = 2 targets left
    assert x.shape == (2, 4) and torch.equal(y, src[4:6])
    with pytest.raises(ConfigError):
        ptb.batchify(data, 0)


@needs_ptb
def test_batches_of_real_data(corpus):
    src = ptb.batchify(corpus.valid, 10)
    assert src.shape == (73_760 // 10, 10)
    x, y = ptb.get_batch(src, 35, 35)
    assert torch.equal(x[1:], y[:-1])  # y is x shifted by one step
    assert torch.equal(y, src[36:71])
