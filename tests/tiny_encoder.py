"""A tiny randomly initialised BERT encoder saved as a Hugging Face model directory, and token-id data for
it: a pretrained label-free model (two inputs, int64 token ids and an attention mask) that loads offline in
a second, for tests of what MiniLM runs through. The weights are seeded, so every test sees one model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

VOCAB = 120
# A data factory for `[data] factory = "tiny_tokens:tokens"`, written next to an experiment file.
DATA_MODULE = """
import numpy as np


def tokens(n: int = 160, seq_len: int = 16, vocab: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, seq_len + 1, size=n)
    mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(5, vocab, size=(n, seq_len)).astype(np.int64) * mask
    ids[:, 0] = 1  # a [CLS]-like first token
    y = np.zeros(n, dtype=np.int64)  # no labels: the metric is fidelity to the dense encoder

    def half(part):
        index = np.arange(n)[part::2]
        return {"input_ids": ids[index], "attention_mask": mask[index]}, y[index]

    return {"train": half(0), "test": half(1), "num_classes": 0}
"""


def tiny_bert_dir(path: Path, seed: int = 0) -> Path:
    """A 2-layer BERT (hidden 32, 2 heads) with seeded random weights, saved offline into `path`."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    transformers.BertModel(config, add_pooling_layer=False).save_pretrained(path)
    return path


def token_batch(n: int, seq_len: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """`n` rows of token ids and their attention mask (as the tokenizer of a real encoder gives them)."""
    namespace: dict = {}
    exec(compile(DATA_MODULE, "tiny_tokens", "exec"), namespace)  # the same generator as the data file
    x, _ = namespace["tokens"](n=2 * n, seq_len=seq_len, seed=seed)["train"]
    return x
