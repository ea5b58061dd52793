"""Click logs for the DLRM: a synthetic log generated offline with a planted click model, and a user's own
log read from a CSV or parquet file with dense and sparse columns.

The synthetic log. Every table row has a latent score and a latent vector, drawn once per "world" (fixed
by `data.split_seed`, so train and test come from the same world). A sample has `num_dense` standard-normal
dense features and, per table, a bag of 1..`bag_size` ids drawn from a Zipf(`zipf`) popularity over the
table's rows (the popular rows are scattered over the id range by a fixed permutation, as hashed ids are in
real logs). The click logit is a bias + a linear term in the dense features + the bag-mean latent scores
+ the pairwise dot products of the bag-mean latent vectors of the tables (the structure DLRM's dot
interaction can represent), and the label is Bernoulli(sigmoid(logit)). The bias is set so that the mean
click rate is `click_rate`. The true click probabilities are kept (`Dataset.meta["bayes"]`): the AUC and
normalized entropy they reach on the test split are the ceiling any model can reach.

Every sample is one float32 row `[dense | ids]` (ids as exact floats, -1 = padding), the layout of
`slimlab.models.dlrm.PackedDLRM`; `split_inputs` recovers (dense, sparse int64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from slimlab.data.dataset import Dataset, Split
from slimlab.data.splits import stratified_split
from slimlab.errors import DataFileError

DEFAULT_NUM_SAMPLES = 20_000
PAD = -1


class ClickLogOptions(BaseModel):
    """`[data.clicks]`: the shape of the synthetic log, or the columns of a user's log."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    num_dense: int = Field(default=13, ge=1, description="dense features (synthetic log)")
    tables: list[int] | None = Field(
        default=None,
        description="rows per table; synthetic default [2000] x 8; for a file, default max id + 1 per column",
    )
    bag_size: int = Field(default=4, ge=1, description="most ids per lookup; shorter bags are padded")
    zipf: float = Field(default=1.1, gt=0, description="Zipf exponent of id popularity (synthetic log)")
    click_rate: float = Field(default=0.25, gt=0, lt=1, description="mean click rate (synthetic log)")
    latent_dim: int = Field(default=4, ge=1, description="latent vector size of the planted model")
    dense_columns: list[str] = Field(default_factory=list, description="a file's dense feature columns")
    sparse_columns: list[str] = Field(
        default_factory=list, description="a file's sparse columns: an id, or ids joined by `separator`"
    )
    separator: str = Field(default="|", min_length=1)

    def table_rows(self) -> list[int]:
        return list(self.tables) if self.tables else [2000] * 8


@dataclass(frozen=True)
class ClickLog:
    dense: np.ndarray  # float32 (n, num_dense)
    sparse: np.ndarray  # int64 (n, tables, bag_size), PAD = -1
    y: np.ndarray  # int64 (n,) 0/1
    p: np.ndarray | None = None  # the planted click probability, synthetic logs only

    def packed(self) -> np.ndarray:
        return pack(self.dense, self.sparse)


def pack(dense: np.ndarray, sparse: np.ndarray) -> np.ndarray:
    """The packed float32 rows `[dense | ids]` of `slimlab.models.dlrm.PackedDLRM`."""
    return np.concatenate([dense, sparse.reshape(len(sparse), -1)], axis=1).astype(np.float32)


def split_inputs(x: np.ndarray, num_dense: int, tables: int, bag_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(dense float32, sparse int64) from packed rows."""
    dense = np.ascontiguousarray(x[:, :num_dense], dtype=np.float32)
    sparse = np.rint(x[:, num_dense:]).astype(np.int64).reshape(len(x), tables, bag_size)
    return dense, sparse


def generate_click_log(options: ClickLogOptions, n: int, world_seed: int, sample_seed: int) -> ClickLog:
    """`n` samples from the planted click model of world `world_seed`."""
    world = np.random.default_rng([world_seed, 0xC11C])
    rows = options.table_rows()
    k = options.latent_dim
    dense_w = world.normal(0, 1 / np.sqrt(options.num_dense), options.num_dense)
    scores = [world.normal(0, 1.0, r) for r in rows]
    vectors = [world.normal(0, 1 / np.sqrt(k), (r, k)) for r in rows]
    perms = [int(world.integers(2**31)) for _ in rows]

    rng = np.random.default_rng([world_seed, sample_seed, 0x5A3])
    dense = rng.standard_normal((n, options.num_dense)).astype(np.float32)
    sparse = np.full((n, len(rows), options.bag_size), PAD, dtype=np.int64)
    lengths = rng.integers(1, options.bag_size + 1, size=(n, len(rows)))
    mask = np.arange(options.bag_size)[None, None, :] < lengths[:, :, None]
    pooled_score = np.zeros(n)
    pooled_vec = np.zeros((n, len(rows), k))
    for t, r in enumerate(rows):
        # Popularity ranks are the sample's; which row holds which rank is the world's.
        ids = _world_permutation(perms[t], r)[_zipf_ranks(rng, r, (n, options.bag_size), options.zipf)]
        sparse[:, t] = np.where(mask[:, t], ids, PAD)
        m = mask[:, t]
        pooled_score += (scores[t][ids] * m).sum(1) / lengths[:, t]
        pooled_vec[:, t] = (vectors[t][ids] * m[..., None]).sum(1) / lengths[:, t, None]
    gram = np.einsum("ntk,nuk->ntu", pooled_vec, pooled_vec)
    upper = np.triu_indices(len(rows), 1)
    pair = gram[:, upper[0], upper[1]].sum(1)
    logit = dense @ dense_w + 0.5 * pooled_score + pair
    logit = (logit - logit.mean()) / (logit.std() + 1e-9) * 1.5  # a learnable, not deterministic, signal
    logit += _bias_for_rate(logit, options.click_rate)
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < p).astype(np.int64)
    return ClickLog(dense, sparse, y, p)


def _world_permutation(seed: int, rows: int) -> np.ndarray:
    """Which row holds each popularity rank (hashed ids scatter popular rows over the id range)."""
    return np.random.default_rng(seed).permutation(rows)


def _zipf_ranks(rng: np.random.Generator, rows: int, size: tuple[int, ...], exponent: float) -> np.ndarray:
    """Popularity ranks 0..rows-1 drawn with P(rank r) proportional to (r + 1) ** -exponent."""
    p = np.arange(1, rows + 1, dtype=np.float64) ** -exponent
    return rng.choice(rows, size=size, p=p / p.sum())


def _bias_for_rate(logit: np.ndarray, rate: float) -> float:
    lo, hi = -20.0, 20.0
    for _ in range(60):  # bisection: the mean of sigmoid(logit + b) rises with b
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(logit + mid)))) < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# --- datasets ----------------------------------------------------------------------------------------------


def _options(options) -> ClickLogOptions:
    value = getattr(options, "clicks", None)
    return value if isinstance(value, ClickLogOptions) else ClickLogOptions.model_validate(value or {})


def synthetic_clicks(options, seed: int) -> Dataset:
    """The registered dataset `"clicks"`: a synthetic log, test split fixed by `data.split_seed`."""
    from slimlab.data.registry import with_validation

    spec = _options(options)
    n = options.num_samples or DEFAULT_NUM_SAMPLES
    n_test = max(2, round(n * (options.test_fraction or 0.2)))
    log = generate_click_log(spec, n + n_test, world_seed=options.split_seed, sample_seed=0)
    x = log.packed()
    train, test = Split(x[:n], log.y[:n]), Split(x[n:], log.y[n:])
    meta = {
        "source": "slimlab.data.clicks.generate_click_log (planted click model)",
        "num_dense": spec.num_dense,
        "table_rows": spec.table_rows(),
        "bag_size": spec.bag_size,
        "zipf": spec.zipf,
        "click_rate_train": float(log.y[:n].mean()),
        "bayes": _bayes(log.y[n:], log.p[n:]),
    }
    return with_validation("clicks", train, test, options.val_fraction, seed, 2, meta)


def _bayes(y: np.ndarray, p: np.ndarray) -> dict:
    """AUC, log loss and normalized entropy of the true probabilities (the formulas of
    slimlab.evaluate.binary, which data may not import)."""
    from sklearn.metrics import log_loss, roc_auc_score

    p = np.clip(p, 1e-7, 1 - 1e-7)
    rate = float(y.mean())
    entropy = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate)) if 0 < rate < 1 else 0.0
    loss = float(log_loss(y, p, labels=[0, 1]))
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
    return {"auroc": auc, "log_loss": loss, "normalized_entropy": loss / entropy if entropy else float("nan")}


def read_click_log(path: str, target: str, spec: ClickLogOptions) -> tuple[ClickLog, list[int]]:
    """A user's click log: `target` (0/1), `spec.dense_columns` (numbers) and `spec.sparse_columns` (an id
    or ids joined by `spec.separator`; empty = no ids). Returns the log and the rows of each table."""
    from slimlab.data.user_file import read_table

    frame = read_table(path)
    if not spec.sparse_columns:
        raise DataFileError(f"{path}: a click log needs `data.clicks.sparse_columns` (the id columns)")
    for column in [target, *spec.dense_columns, *spec.sparse_columns]:
        if column not in frame.columns:
            raise DataFileError(f"{path}: column {column!r} not found; columns: {', '.join(frame.columns)}")
    labels = frame[target]
    if labels.isna().any() or not set(labels.unique()) <= {0, 1}:
        raise DataFileError(f"{path}: target column {target!r} must hold 0/1 clicks with no missing values")
    dense = np.zeros((len(frame), len(spec.dense_columns)), dtype=np.float32)
    for j, column in enumerate(spec.dense_columns):
        try:
            values = frame[column].astype(np.float32).to_numpy()
        except (TypeError, ValueError):
            raise DataFileError(f"{path}: dense column {column!r} must hold numbers") from None
        if np.isnan(values).any():
            raise DataFileError(f"{path}: dense column {column!r} has missing values; fill or drop them")
        dense[:, j] = values
    sparse = np.full((len(frame), len(spec.sparse_columns), spec.bag_size), PAD, dtype=np.int64)
    for t, column in enumerate(spec.sparse_columns):
        for i, cell in enumerate(frame[column].tolist()):
            ids = _parse_bag(cell, spec.separator, path, column, i)
            if len(ids) > spec.bag_size:
                raise DataFileError(
                    f"{path}: row {i + 2}, column {column!r} has {len(ids)} ids; "
                    f"data.clicks.bag_size is {spec.bag_size}"
                )
            sparse[i, t, : len(ids)] = ids
    observed = [int(sparse[:, t].max()) + 1 for t in range(len(spec.sparse_columns))]
    rows = list(spec.tables) if spec.tables else [max(1, r) for r in observed]
    if len(rows) != len(spec.sparse_columns):
        raise DataFileError(
            f"{path}: data.clicks.tables has {len(rows)} sizes for {len(spec.sparse_columns)} sparse columns"
        )
    for column, seen, size in zip(spec.sparse_columns, observed, rows, strict=True):
        if seen > size:
            raise DataFileError(
                f"{path}: column {column!r} has id {seen - 1}, beyond its table of {size} rows"
            )
    return ClickLog(dense, sparse, labels.astype(np.int64).to_numpy()), rows


def _parse_bag(cell, separator: str, path: str, column: str, row: int) -> list[int]:
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return []
    if isinstance(cell, (int, np.integer)) or (isinstance(cell, float) and cell.is_integer()):
        ids = [int(cell)]
    else:
        text = str(cell).strip()
        try:
            ids = [int(part) for part in text.split(separator) if part.strip()] if text else []
        except ValueError:
            raise DataFileError(
                f"{path}: row {row + 2}, column {column!r}: {text!r} is not an id list "
                f"(integers joined by {separator!r})"
            ) from None
    if any(i < 0 for i in ids):
        raise DataFileError(f"{path}: row {row + 2}, column {column!r} has a negative id")
    return ids


def click_log_file(options, seed: int) -> Dataset:
    """The registered dataset `"click_log"`: data.path (+ data.test_path, else a stratified test_fraction
    chosen by split_seed). Dense columns are standardised with the training split's statistics."""
    from slimlab.data.registry import with_validation

    spec = _options(options)
    path, target = getattr(options, "path", None), getattr(options, "target", None)
    if not path or not target:
        raise DataFileError("dataset 'click_log' needs `data.path` (the file) and `data.target` (the label)")
    log, rows = read_click_log(path, target, spec)
    test_path = getattr(options, "test_path", None)
    if test_path:
        test_log, _test_rows = read_click_log(test_path, target, spec.model_copy(update={"tables": rows}))
        train_log = log
    else:
        keep, held = stratified_split(log.y, options.test_fraction or 0.2, options.split_seed)
        train_log, test_log = _take(log, keep), _take(log, held)
    if options.num_samples and options.num_samples < len(train_log.y):
        keep, _ = stratified_split(
            train_log.y, 1 - options.num_samples / len(train_log.y), options.split_seed
        )
        train_log = _take(train_log, keep)
    mean = train_log.dense.mean(axis=0) if train_log.dense.size else 0.0
    std = train_log.dense.std(axis=0) + 1e-6 if train_log.dense.size else 1.0

    def split(part: ClickLog) -> Split:
        return Split(pack((part.dense - mean) / std, part.sparse), part.y)

    meta = {
        "source": str(path),
        "num_dense": len(spec.dense_columns),
        "table_rows": rows,
        "bag_size": spec.bag_size,
        "standardised_on": "train",
    }
    return with_validation(
        "click_log", split(train_log), split(test_log), options.val_fraction, seed, 2, meta
    )


def _take(log: ClickLog, index: np.ndarray) -> ClickLog:
    return ClickLog(
        log.dense[index], log.sparse[index], log.y[index], None if log.p is None else log.p[index]
    )
