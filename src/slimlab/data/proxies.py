"""Warnings for features that may stand in for a group (proxies), so that leaving the group column out of
the features is not mistaken for leaving the group out of the model.

Two checks, both heuristics, both documented in each warning:

1. Names. A feature whose column name suggests surname, location, language or occupation (the proxies that
   Sambasivan et al., FAccT 2021, name for caste, religion and region in India), or that names a sensitive
   attribute outright.
2. Association. Theil's uncertainty coefficient U(group | feature) = I(group; feature) / H(group): the
   share of the group's entropy that the feature explains, from 0 (independent) to 1 (the feature
   determines the group). Numeric features are cut into (at most) 10 quantile bins first. Mutual
   information is biased upward for features with many levels on few rows, so a high U on a small data
   set is a prompt to look, not a finding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import entropy
from sklearn.metrics import mutual_info_score

DEFAULT_THRESHOLD = 0.1  # U above this: the feature explains at least a tenth of the group's entropy
NUMERIC_BINS = 10

# (pattern on the lower-cased column name, what it may stand for)
NAME_PATTERNS: list[tuple[str, str]] = [
    (
        r"surname|last.?name|family.?name|first.?name|(^|_)name($|_)",
        "surname or name (caste, religion, ethnicity)",
    ),
    (
        r"zip|post.?code|pin.?code|address|city|district|village|county|state|region|location|country"
        r"|latitude|longitude|(^|_)(lat|lon|lng)($|_)|geo|neighbou?rhood|urban|rural",
        "location (caste, religion, ethnicity, income)",
    ),
    (r"language|tongue|dialect|script|locale", "language (region, caste, ethnicity)"),
    (r"occupation|job|profession|employer|work.?class|trade", "occupation (caste, class, gender)"),
    (
        r"caste|religio|tribe|ethnic|race|gender|(^|_)sex($|_)|disab|marital|relationship|age($|_)",
        "a sensitive attribute or a close relative of one",
    ),
]


def name_hint(column: str) -> str | None:
    lowered = column.lower().replace("-", "_").replace(" ", "_")
    for pattern, meaning in NAME_PATTERNS:
        if re.search(pattern, lowered):
            return meaning
    return None


def _codes(values: pd.Series) -> np.ndarray:
    """Discrete codes for a feature: quantile bins for numbers, the value itself otherwise; missing is a
    level of its own."""
    if pd.api.types.is_numeric_dtype(values) and values.nunique(dropna=True) > NUMERIC_BINS:
        binned = pd.qcut(values, NUMERIC_BINS, labels=False, duplicates="drop")
        return binned.fillna(-1).astype(int).to_numpy()
    return values.astype(str).where(values.notna(), "<missing>").to_numpy()


def uncertainty_coefficient(group: np.ndarray, feature_codes: np.ndarray) -> float:
    """U(group | feature) = I(group; feature) / H(group), in [0, 1]; 0 when the group has one level."""
    _, counts = np.unique(group, return_counts=True)
    h = entropy(counts)
    if h <= 0:
        return 0.0
    return float(min(1.0, mutual_info_score(group, feature_codes) / h))


def proxy_warnings(
    frame: pd.DataFrame,
    features: Sequence[str],
    groups: Mapping[str, np.ndarray],
    threshold: float = DEFAULT_THRESHOLD,
) -> list[dict]:
    """One entry per feature that looks like a proxy: {feature, group, association, reason}. Sorted by
    association, strongest first. Intersections are skipped (their parts are checked)."""
    out = []
    base_groups = {g: v for g, v in groups.items() if "×" not in g}
    for feature in features:
        codes = _codes(frame[feature])
        strongest = max(
            ((uncertainty_coefficient(labels, codes), g) for g, labels in base_groups.items()),
            default=(0.0, None),
        )
        hint = name_hint(feature)
        if strongest[0] >= threshold or hint:
            reasons = []
            if strongest[0] >= threshold:
                reasons.append(f"explains {strongest[0]:.0%} of the entropy of group {strongest[1]!r}")
            if hint:
                reasons.append(f"its name suggests {hint}")
            out.append(
                {
                    "feature": feature,
                    "group": strongest[1],
                    "association": round(strongest[0], 4),
                    "reason": "; ".join(reasons),
                }
            )
    return sorted(out, key=lambda w: -w["association"])
