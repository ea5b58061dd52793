"""Many methods on many datasets: average ranks, the Friedman test, post-hoc tests and the
critical-difference diagram (Demšar 2006, as autorank does it).

The unit of replication is the dataset: each dataset contributes one score per method (the mean over its
seeds), the methods are ranked within each dataset (1 = best), and the Friedman test asks whether the
average ranks differ more than chance allows. Only then are pairs compared post hoc:
- Nemenyi: all pairs, by the critical difference CD = q_alpha * sqrt(k (k + 1) / (6 N)), where q_alpha is
  the studentized range quantile for k groups and infinite df over sqrt(2). scipy has the distribution
  (scipy.stats.studentized_range) but not the test, so the two formulas are written here.
- Wilcoxon-Holm: a Wilcoxon signed-rank test over datasets for each pair (scipy), Holm-adjusted
  (statsmodels). Benavoli et al. (2016) prefer it: the Nemenyi result for a pair depends on which other
  methods are in the comparison.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from slimlab.plotting import cd_diagram, png_base64
from slimlab.stats.verdict import holm


def average_ranks(scores: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """Mean rank of each method (column) over datasets (rows); rank 1 is the best, ties share ranks."""
    s = np.asarray(scores, dtype=float)
    ranks = stats.rankdata(-s if higher_is_better else s, axis=1)
    return ranks.mean(axis=0)


def friedman(scores: np.ndarray) -> dict:
    """The Friedman test (scipy.stats.friedmanchisquare) over datasets (rows) and methods (columns), and
    the Iman-Davenport F form that Demšar recommends as less conservative (one line, not in scipy)."""
    s = np.asarray(scores, dtype=float)
    n, k = s.shape
    if k < 3 or n < 2:
        return {"statistic": math.nan, "p_value": math.nan, "iman_davenport_p": math.nan}
    if np.all(s == s[:, :1]):  # every method ties on every dataset: scipy would divide by zero
        return {"statistic": 0.0, "p_value": 1.0, "iman_davenport_p": 1.0}
    chi2, p = stats.friedmanchisquare(*s.T)
    denom = n * (k - 1) - chi2
    f_id = (n - 1) * chi2 / denom if denom > 0 else math.inf
    p_id = float(stats.f.sf(f_id, k - 1, (k - 1) * (n - 1))) if math.isfinite(f_id) else 0.0
    return {"statistic": float(chi2), "p_value": float(p), "iman_davenport_p": p_id}


def nemenyi(avg_ranks: Sequence[float], n_datasets: int, alpha: float = 0.05) -> dict:
    """Critical difference and pairwise p-values of the Nemenyi test from the average ranks."""
    r = np.asarray(avg_ranks, dtype=float)
    k = r.size
    se = math.sqrt(k * (k + 1) / (6 * n_datasets))
    q_alpha = float(stats.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
    p = np.ones((k, k))
    for i, j in itertools.combinations(range(k), 2):
        q = abs(r[i] - r[j]) / se * math.sqrt(2)
        p[i, j] = p[j, i] = float(stats.studentized_range.sf(q, k, np.inf))
    return {"cd": q_alpha * se, "p_values": p}


def wilcoxon_holm(scores: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values of pairwise Wilcoxon signed-rank tests over datasets (k x k, diagonal 1)."""
    s = np.asarray(scores, dtype=float)
    k = s.shape[1]
    pairs = list(itertools.combinations(range(k), 2))
    raw = []
    for i, j in pairs:
        d = s[:, i] - s[:, j]
        raw.append(1.0 if np.all(d == 0) else float(stats.wilcoxon(s[:, i], s[:, j]).pvalue))
    out = np.ones((k, k))
    for (i, j), p in zip(pairs, holm(raw), strict=True):
        out[i, j] = out[j, i] = p
    return out


def cliques(order: Sequence[int], p_values: np.ndarray, alpha: float) -> list[list[int]]:
    """Maximal runs of methods, in rank order, with no significant difference between any two of them:
    the bars of a critical-difference diagram."""
    runs: list[list[int]] = []
    for start in range(len(order)):
        end = start
        while end + 1 < len(order) and all(
            p_values[order[i], order[end + 1]] > alpha for i in range(start, end + 1)
        ):
            end += 1
        run = list(order[start : end + 1])
        if len(run) > 1 and not any(set(run) <= set(r) for r in runs):
            runs.append(run)
    return runs


def rank_methods(
    scores: np.ndarray,
    methods: Sequence[str],
    alpha: float = 0.05,
    posthoc: str = "auto",
    higher_is_better: bool = True,
) -> dict:
    """Average ranks, Friedman, CD and a post-hoc test, as a JSON-able dict.

    posthoc: "nemenyi", "wilcoxon_holm", or "auto": Wilcoxon-Holm when there are enough datasets for the
    strongest pair to survive Holm (its smallest p, 2 / 2^N, times the number of pairs, below alpha), and
    Nemenyi otherwise, which would never find a difference. The post-hoc p-values are reported in every
    case; `significant_after_friedman` tells whether the omnibus test allows reading them."""
    s = np.asarray(scores, dtype=float)
    n, k = s.shape
    ranks = average_ranks(s, higher_is_better)
    fr = friedman(s)
    nem = nemenyi(ranks, n, alpha)
    if posthoc == "auto":
        pairs = k * (k - 1) // 2
        posthoc = "wilcoxon_holm" if 2 / 2**n * pairs < alpha else "nemenyi"
    if posthoc not in ("nemenyi", "wilcoxon_holm"):
        raise ValueError(f"posthoc must be nemenyi, wilcoxon_holm or auto; got {posthoc!r}")
    p = nem["p_values"] if posthoc == "nemenyi" else wilcoxon_holm(s)
    order = [int(i) for i in np.argsort(ranks, kind="stable")]
    return {
        "methods": list(methods),
        "n_datasets": n,
        "average_ranks": {m: float(r) for m, r in zip(methods, ranks, strict=True)},
        "order": [methods[i] for i in order],
        "friedman_statistic": fr["statistic"],
        "friedman_p": fr["p_value"],
        "iman_davenport_p": fr["iman_davenport_p"],
        "significant_after_friedman": bool(fr["p_value"] < alpha),
        "alpha": alpha,
        "cd": nem["cd"],
        "posthoc": posthoc,
        "posthoc_p": {
            f"{methods[i]} vs {methods[j]}": float(p[i, j]) for i, j in itertools.combinations(range(k), 2)
        },
        "cliques": [[methods[i] for i in run] for run in cliques(order, p, alpha)],
    }


def figure_to_base64_png(fig: Figure, dpi: int = 120) -> str:
    """A Figure as a base64 PNG string, for embedding in HTML (`<img src="data:image/png;base64,...">`)."""
    return png_base64(fig, dpi)


__all__ = ["cd_diagram", "figure_to_base64_png", "rank_methods"]
