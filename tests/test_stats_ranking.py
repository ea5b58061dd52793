"""Ranks, Friedman, Nemenyi, Wilcoxon-Holm and the critical-difference diagram."""

import base64
import itertools

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import stats
from statsmodels.stats.multitest import multipletests

from slimlab.stats import cd_diagram, figure_to_base64_png, rank_methods
from slimlab.stats.ranking import average_ranks, cliques, friedman, nemenyi, wilcoxon_holm


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    scores = rng.normal(0.8, 0.05, (10, 1)) + rng.normal(0, 0.01, (10, 4))
    scores[:, 0] += 0.02
    return scores


def test_average_ranks_with_ties_and_direction():
    scores = np.array([[0.9, 0.8, 0.8], [0.7, 0.9, 0.6]])
    assert average_ranks(scores).tolist() == pytest.approx([1.5, 1.75, 2.75])
    assert average_ranks(scores, higher_is_better=False).tolist() == pytest.approx([2.5, 2.25, 1.25])


def test_friedman_is_scipy_and_iman_davenport_follows(table):
    res = friedman(table)
    ref = stats.friedmanchisquare(*table.T)
    assert (res["statistic"], res["p_value"]) == pytest.approx((ref.statistic, ref.pvalue))
    n, k = table.shape
    f = (n - 1) * ref.statistic / (n * (k - 1) - ref.statistic)
    assert res["iman_davenport_p"] == pytest.approx(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))
    assert friedman(np.ones((4, 3)))["p_value"] == 1.0


def test_nemenyi_critical_difference_matches_demsar_table():
    # Demšar (2006), Table 5: q_0.05 = 2.569 for k = 4, so CD = 2.569 * sqrt(4 * 5 / (6 * 10)).
    res = nemenyi([1.0, 2.0, 3.0, 4.0], n_datasets=10)
    assert res["cd"] == pytest.approx(2.569 * np.sqrt(20 / 60), abs=1e-3)
    # A pair exactly one CD apart sits at p = alpha.
    at_cd = nemenyi([1.0, 1.0 + res["cd"], 2.0, 2.0], n_datasets=10)["p_values"][0, 1]
    assert at_cd == pytest.approx(0.05, abs=1e-4)


def test_wilcoxon_holm_is_scipy_then_statsmodels(table):
    p = wilcoxon_holm(table)
    pairs = list(itertools.combinations(range(4), 2))
    raw = [stats.wilcoxon(table[:, i], table[:, j]).pvalue for i, j in pairs]
    adjusted = multipletests(raw, method="holm")[1]
    assert [p[i, j] for i, j in pairs] == pytest.approx(list(adjusted))


def test_cliques_join_methods_that_do_not_differ():
    p = np.array([[1, 0.5, 0.01], [0.5, 1, 0.3], [0.01, 0.3, 1]])
    assert cliques([0, 1, 2], p, 0.05) == [[0, 1], [1, 2]]
    assert cliques([0, 1, 2], np.ones((3, 3)), 0.05) == [[0, 1, 2]]


def test_rank_methods_and_the_cd_diagram(table):
    out = rank_methods(table, ["dense", "a", "b", "c"], posthoc="nemenyi")
    assert out["order"][0] == "dense" and out["posthoc"] == "nemenyi"
    assert out["friedman_p"] == pytest.approx(stats.friedmanchisquare(*table.T).pvalue)
    assert set(out["posthoc_p"]) == {f"{a} vs {b}" for a, b in itertools.combinations(out["methods"], 2)}
    # Auto picks Wilcoxon-Holm only when its strongest pair can survive Holm: 2/2^N * 6 pairs < 0.05.
    assert rank_methods(table, list("wxyz"))["posthoc"] == "wilcoxon_holm"  # N = 10
    assert rank_methods(table[:7], list("wxyz"))["posthoc"] == "nemenyi"  # 2/128 * 6 = 0.094
    fig = cd_diagram(out)
    assert isinstance(fig, Figure)
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert any(t.startswith("dense (") for t in texts) and any(t.startswith("CD = ") for t in texts)
    png = base64.b64decode(figure_to_base64_png(fig))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="posthoc"):
        rank_methods(table, list("wxyz"), posthoc="tukey")
