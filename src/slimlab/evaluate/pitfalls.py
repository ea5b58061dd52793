"""Pitfall checks: the ways researchers fool themselves (Lones, arXiv 2108.02497), checked on the data.

Each check returns one record `{check, item, status, detail}`: `item` is the guide's section number, `status`
is pass, warn or fail, and `detail` is one line that says what was found. Some records carry the numbers
behind the verdict under `values`. `run_checks` runs every check that applies to a dataset and its trials;
`slimlab.stats.compare` adds the checks on a table of scores.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from slimlab.data.dataset import Dataset, Split
from slimlab.stats.checks import Status, baseline_variant_check, record, seeds_check

SELECTION_PURPOSES = ("early_stopping", "model_selection", "tuning", "treatment_search")


# --- leakage -----------------------------------------------------------------------------------------


def _rows(x) -> np.ndarray:
    """One flat row per sample; a model with several inputs (a tuple or dict of arrays) has them side by
    side, as float64 so that int64 ids and float features share one row."""
    from slimlab.data.batches import leaves, n_rows

    parts = leaves(x)
    if len(parts) == 1:
        return np.ascontiguousarray(np.asarray(parts[0]).reshape(n_rows(x), -1))
    n = n_rows(x)
    return np.ascontiguousarray(
        np.concatenate([np.asarray(a, dtype=np.float64).reshape(n, -1) for a in parts], 1)
    )


def exact_duplicates(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Indices of `query` rows that also occur, byte for byte, in `reference` (hashed rows, so it is
    linear in the data)."""
    ref, q = _rows(reference), _rows(query)
    if ref.dtype != q.dtype:
        q = q.astype(ref.dtype)
    seen = {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in ref}
    return np.array(
        [i for i, row in enumerate(q) if hashlib.blake2b(row.tobytes(), digest_size=16).digest() in seen],
        dtype=int,
    )


def near_duplicates(
    reference: np.ndarray, query: np.ndarray, threshold: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of `query` rows whose nearest `reference` row is closer than `threshold`, and every
    query row's nearest-neighbour distance (sklearn NearestNeighbors, Euclidean).

    Distances are relative to the typical spacing of the reference data: the median distance from a
    reference sample to its nearest other reference sample (on up to 5,000 of them). So 0.1 means "ten
    times closer than training samples usually are to each other", whatever the scale and width of the
    inputs. Per-feature standardisation would not do: near-constant features (a pixel that is almost
    always 0) would dominate the distance. Exact duplicates have distance 0 and are included."""
    from sklearn.neighbors import NearestNeighbors

    ref, q = _rows(reference).astype(float), _rows(query).astype(float)
    index = NearestNeighbors(n_neighbors=1).fit(ref)
    sample = ref
    if len(ref) > 5000:
        sample = ref[np.random.default_rng(seed).choice(len(ref), 5000, replace=False)]
    spacing = float(np.median(index.kneighbors(sample, n_neighbors=2)[0][:, 1])) if len(ref) > 1 else 0.0
    dist = index.kneighbors(q)[0][:, 0] / (spacing if spacing > 0 else 1.0)
    return np.flatnonzero(dist < threshold), dist


def chance_duplicate_rate(reference: np.ndarray, size: int, seed: int = 0) -> float:
    """The share of rows of a random held-out part of `reference` (as many rows as the query, at most a
    tenth) whose features also occur in the rest: the duplicate rate an honest random split of this data
    would show. Tabular data with coarse features has many distinct records with identical features
    (UCI Adult: about a quarter of the test rows share every feature with some training row, because
    age, education, occupation and the rest take few values once the survey weight fnlwgt is dropped);
    that is the population, not leakage."""
    ref = _rows(reference)
    if len(ref) < 4:
        return 0.0
    # A small held-out part, so that the rest is nearly as large as the whole reference: the chance of a
    # match grows with the size of the reference searched.
    held = max(2, min(size, len(ref) // 10))
    order = np.random.default_rng(seed).permutation(len(ref))
    return float(exact_duplicates(ref[order[held:]], ref[order[:held]]).size / held)


def leakage_checks(
    reference: Split, query: Split, pair: str = "train/test", threshold: float = 0.1
) -> list[dict]:
    """Exact duplicates (Lones 3.1) and near-duplicates (4.1, warn) of `query` samples in `reference`.

    Exact duplicates fail the check only beyond what chance gives on this data: the rate is compared with
    the rate between two random parts of `reference` itself (`chance_duplicate_rate`) by a one-sided
    binomial test. Continuous features (MNIST-1D) have a chance rate of 0, so any duplicate fails; coarse
    tabular features (Adult) duplicate by chance, and only an excess over that is leakage."""
    from scipy.stats import binomtest

    exact = exact_duplicates(reference.x, query.x)
    n = len(query)
    ref_name, query_name = pair.split("/")
    chance = chance_duplicate_rate(reference.x, n) if exact.size else 0.0
    excess_p = (
        float(binomtest(int(exact.size), n, chance, alternative="greater").pvalue)
        if exact.size and 0 < chance < 1
        else (0.0 if exact.size else 1.0)
    )
    leaked = bool(exact.size) and (chance == 0 or (excess_p < 0.01 and exact.size / n > 1.5 * chance))
    found = f"{exact.size} of {n} {query_name} samples also occur in {ref_name}"
    if not exact.size:
        detail = found
    elif leaked:
        detail = found + (
            f", more than the {100 * chance:.1f}% a random part of {ref_name} shares with its rest "
            f"(binomial p = {excess_p:.2g}); remove them or split by source"
            if chance
            else "; remove them or split by source"
        )
    else:
        detail = found + (
            f" ({100 * exact.size / n:.1f}%), about the {100 * chance:.1f}% that a random part of {ref_name} "
            f"shares with the rest of {ref_name}: distinct records with identical features (coarse tabular "
            "features), as an honest random split of this data gives, not copies"
        )
    out = [
        record(
            f"leakage: exact duplicates {pair}",
            "3.1",
            "fail" if leaked else "pass",
            detail,
            count=int(exact.size),
            chance_rate=chance,
            excess_p=excess_p,
            indices=exact[:20].tolist(),
        )
    ]
    near, dist = near_duplicates(reference.x, query.x, threshold)
    only_near = np.setdiff1d(near, exact)
    out.append(
        record(
            f"leakage: near-duplicates {pair}",
            "4.1",
            "warn" if only_near.size else "pass",
            f"{only_near.size} of {n} {pair.split('/')[1]} samples lie within {threshold:g} of the typical "
            f"spacing of {pair.split('/')[0]} samples from a {pair.split('/')[0]} sample, beyond the exact "
            f"duplicates; median relative distance {float(np.median(dist)):.3g}",
            count=int(only_near.size),
            threshold=threshold,
            median_distance=float(np.median(dist)),
        )
    )
    return out


def preprocessing_check(dataset: Dataset) -> dict:
    """Preprocessing statistics (standardisation) must be fitted on the training split only (Lones 3.1).
    Loaders record where they fitted them in `meta["standardised_on"]`."""
    fitted_on = dataset.meta.get("standardised_on")
    if fitted_on is None:
        return record(
            "leakage: preprocessing fitted on train",
            "3.1",
            "pass",
            "slimlab fitted no preprocessing statistics for this dataset (none recorded in its meta)",
        )
    status: Status = "pass" if fitted_on == "train" else "fail"
    return record(
        "leakage: preprocessing fitted on train",
        "3.1",
        status,
        f"standardisation fitted on {fitted_on}"
        + ("" if status == "pass" else "; fit it on the training split only"),
    )


# --- test-set discipline -----------------------------------------------------------------------------


@dataclass
class TestSetLog:
    """A record of every opening of the test split, with its purpose and the decision it informs.

    The test split is for the final evaluation of each decision, once (Lones 3.1, 4.3). Early stopping,
    model selection and treatment search belong on validation data. Open the test split through
    `open(...)` and `check()` flags a selection purpose, and a second opening for the same decision."""

    __test__ = False  # not a pytest test class, despite its name
    openings: list[dict] = field(default_factory=list)

    def open(self, split: Split, purpose: str, decision: str) -> Split:
        """Log the opening and hand the split back. `decision` names what this evaluation decides, e.g.
        "prune90 vs dense, seed 3"."""
        self.openings.append({"purpose": purpose, "decision": decision, "n": len(split)})
        return split

    def check(self) -> dict:
        selection = [o for o in self.openings if o["purpose"] in SELECTION_PURPOSES]
        repeats = sorted(d for d, c in Counter(o["decision"] for o in self.openings).items() if c > 1)
        if selection:
            return record(
                "test-set discipline",
                "3.1",
                "fail",
                f"the test split was opened for {selection[0]['purpose']} ({selection[0]['decision']}); "
                "use validation data for selection",
                openings=len(self.openings),
            )
        if repeats:
            return record(
                "test-set discipline",
                "4.3",
                "fail",
                f"the test split was opened more than once for the same decision: {', '.join(repeats[:3])}",
                openings=len(self.openings),
            )
        return record(
            "test-set discipline",
            "4.3",
            "pass",
            f"{len(self.openings)} openings of the test split, each for its own final evaluation",
            openings=len(self.openings),
        )


# --- enough runs for the test --------------------------------------------------------------------------


def imputation_check(dataset: Dataset) -> dict | None:
    """Missing feature values that the loader filled in (Lones 3.1 asks what preprocessing did): a warning
    that names the columns, the row counts and the fill, or None when the loader imputed nothing."""
    imputed = dataset.meta.get("imputed")
    if not imputed:
        return None
    columns = imputed.get("columns", {})
    if not columns:
        return record("missing values imputed", "3.1", "pass", "no feature value was missing")
    parts = [
        f"{c} ({v['train_rows']} train, {v['test_rows']} test rows; {v['filled_with']})"
        for c, v in columns.items()
    ]
    return record(
        "missing values imputed",
        "3.1",
        "warn",
        f"{imputed['train_rows']} train and {imputed['test_rows']} test rows had missing feature values, "
        f"filled in from the training rows only: {'; '.join(parts)}",
        columns=list(columns),
        train_rows=imputed["train_rows"],
        test_rows=imputed["test_rows"],
    )


# --- metrics under class imbalance ---------------------------------------------------------------------


def imbalance_check(
    y_true: Sequence[int],
    y_pred: Sequence[int] | None = None,
    metrics_reported: Iterable[str] = ("accuracy",),
    ratio: float = 1.5,
) -> dict:
    """Class imbalance (Lones 4.6): when the largest class outnumbers the smallest by more than `ratio`,
    accuracy rewards the majority class. Then report balanced accuracy, macro-F1 and MCC (sklearn.metrics)
    beside it; warn when accuracy is the only quality metric reported."""
    from sklearn.metrics import balanced_accuracy_score, f1_score, matthews_corrcoef

    y = np.asarray(y_true)
    counts = Counter(y.tolist())
    largest, smallest = max(counts.values()), min(counts.values())
    imbalance = largest / smallest
    values: dict = {"class_counts": {str(k): v for k, v in sorted(counts.items())}, "imbalance": imbalance}
    if y_pred is not None:
        p = np.asarray(y_pred)
        values |= {
            "accuracy": float(np.mean(p == y)),
            "balanced_accuracy": float(balanced_accuracy_score(y, p)),
            "macro_f1": float(f1_score(y, p, average="macro", zero_division=0)),
            "mcc": float(matthews_corrcoef(y, p)),
        }
    if imbalance <= ratio:
        return record(
            "metrics under class imbalance",
            "4.6",
            "pass",
            f"classes are balanced (largest/smallest = {imbalance:.2f})",
            **values,
        )
    robust = {"balanced_accuracy", "macro_f1", "f1", "mcc"}
    accuracy_only = not (set(metrics_reported) & robust)
    shown = ", ".join(
        f"{k} {values[k]:.3f}" for k in ("accuracy", "balanced_accuracy", "macro_f1", "mcc") if k in values
    )
    return record(
        "metrics under class imbalance",
        "4.6",
        "warn" if accuracy_only else "pass",
        f"classes are imbalanced (largest/smallest = {imbalance:.2f})"
        + ("; accuracy alone is reported" if accuracy_only else "; robust metrics are reported")
        + (f": {shown}" if shown else ""),
        **values,
    )


# --- baselines -----------------------------------------------------------------------------------------


def simple_baselines(dataset: Dataset, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-sample correctness on the test split of a majority-class model (sklearn DummyClassifier) and a
    standardised logistic regression, both fitted on the training split only (Lones 5.2)."""
    from sklearn.dummy import DummyClassifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    x_train, x_test = _rows(dataset.train.x), _rows(dataset.test.x)
    majority = DummyClassifier(strategy="most_frequent").fit(x_train, dataset.train.y)
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    # One BLAS thread: on a small, busy machine, multi-threaded lbfgs steps on tiny matrices can be
    # 100x slower than one thread (threadpoolctl comes with scikit-learn).
    with warnings.catch_warnings(), threadpool_limits(1):
        # A baseline that has not fully converged is still a fair floor to clear.
        warnings.simplefilter("ignore", ConvergenceWarning)
        logistic.fit(x_train, dataset.train.y)
    return {
        "majority": majority.predict(x_test) == dataset.test.y,
        "logistic_regression": logistic.predict(x_test) == dataset.test.y,
    }


def baseline_check(
    dataset: Dataset,
    model_accuracy: float | None = None,
    model_correct: Sequence[bool] | None = None,
    alpha: float = 0.05,
    margin: float = 0.01,
    seed: int = 0,
) -> dict:
    """Does the model clearly beat a majority-class and a logistic-regression baseline on the same split?

    With the model's per-sample correctness the answer is McNemar's exact test against each baseline
    (clearly = better at p < alpha); with only an accuracy, it must beat them by more than `margin`. Fail
    when the model does not beat the majority class, warn when it does not clearly beat either baseline."""
    from slimlab.stats.paired_tests import mcnemar_exact

    if model_correct is None and model_accuracy is None:
        raise ValueError("baseline_check needs model_accuracy or model_correct")
    baselines = simple_baselines(dataset, seed)
    acc = float(np.mean(model_correct)) if model_correct is not None else float(model_accuracy)
    values: dict = {"model_accuracy": acc}
    clear: dict[str, bool] = {}
    for name, correct in baselines.items():
        values[f"{name}_accuracy"] = float(correct.mean())
        if model_correct is not None:
            res = mcnemar_exact(model_correct, correct, alpha)
            values[f"{name}_p"] = res.p_value
            clear[name] = res.delta > 0 and res.p_value < alpha
        else:
            clear[name] = acc > correct.mean() + margin
    how = f"McNemar p < {alpha:g}" if model_correct is not None else f"by more than {margin:g}"
    summary = ", ".join(f"{name} {values[f'{name}_accuracy']:.3f}" for name in baselines)
    if acc <= values["majority_accuracy"]:
        status: Status = "fail"
        verdict = "the model does not beat the majority class"
    elif not all(clear.values()):
        status = "warn"
        below = [n for n, ok in clear.items() if not ok and acc <= values[f"{n}_accuracy"]]
        unclear = [n for n, ok in clear.items() if not ok and n not in below]
        parts = [f"is not better than {', '.join(below)}"] if below else []
        parts += [f"does not clearly ({how}) beat {', '.join(unclear)}"] if unclear else []
        verdict = "the model " + " and ".join(parts)
    else:
        status, verdict = "pass", f"the model clearly ({how}) beats both baselines"
    return record("simple baselines", "5.2", status, f"{verdict}: model {acc:.3f}, {summary}", **values)


# --- all together --------------------------------------------------------------------------------------


def run_checks(
    dataset: Dataset,
    trials: Sequence[dict] = (),
    baseline: str | None = None,
    *,
    test: str = "paired_t",
    alpha: float = 0.05,
    test_log: TestSetLog | None = None,
    near_threshold: float = 0.1,
    run_baselines: bool = True,
    seed: int = 0,
    table_checks: bool = True,
) -> list[dict]:
    """Every check that applies to `dataset` and its trial records (results.json's `trials`: variant, seed,
    dataset, status, metrics, and optionally per-sample `predictions` on the test split). Trials of other
    datasets are ignored; call it once per dataset. With `table_checks=False` the baseline-variant and
    enough-seeds checks are left to `slimlab.stats.compare_scores`, which makes them on the comparisons
    (the experiment's analysis does that, so that each check runs once)."""
    out = leakage_checks(dataset.train, dataset.test, "train/test", near_threshold)
    if len(dataset.val):
        out += leakage_checks(dataset.val, dataset.test, "val/test", near_threshold)
    out.append(preprocessing_check(dataset))
    imputation = imputation_check(dataset)
    if imputation is not None:
        out.append(imputation)
    if test_log is not None:
        out.append(test_log.check())
    # Only this dataset's trials: predictions of another dataset do not match these labels.
    ok = [
        t for t in trials if t.get("status", "ok") == "ok" and t.get("dataset", dataset.name) == dataset.name
    ]
    if not ok:
        return out
    variants = list(dict.fromkeys(t["variant"] for t in ok))
    if table_checks:
        out.append(baseline_variant_check(variants, baseline))
        seeds = Counter((t.get("dataset", dataset.name), t["variant"]) for t in ok)
        fewest = min(seeds, key=seeds.__getitem__)
        out.append(seeds_check(test, seeds[fewest], alpha, what=f"{fewest[0]}/{fewest[1]}"))
    reference = [t for t in ok if t["variant"] == baseline] or ok
    metrics_reported = [k for k in reference[0].get("metrics", {}) if k != "val_accuracy"]
    first_predictions = next(
        (t.get("predictions") for t in reference if t.get("predictions") is not None), None
    )
    out.append(imbalance_check(dataset.test.y, first_predictions, metrics_reported))
    has_accuracy = all(t.get("metrics", {}).get("accuracy") is not None for t in reference)
    if run_baselines and has_accuracy and dataset.num_classes > 0:
        correct = None
        if first_predictions is not None and len(first_predictions) == len(dataset.test):
            correct = np.asarray(first_predictions) == dataset.test.y
        accuracy = float(np.mean([t["metrics"]["accuracy"] for t in reference]))
        out.append(baseline_check(dataset, accuracy if correct is None else None, correct, alpha, seed=seed))
    return out
