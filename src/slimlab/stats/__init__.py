"""Statistics on any table of scores: intervals, paired tests chosen by the design of the data, corrections,
decisions at a margin, power, rankings over datasets, and `compare_scores`, which does all of it.

The names load on first use (PEP 562): scipy.stats, statsmodels and matplotlib cost seconds to import, and
a process that only needs one check (a `--workers` worker, say) should not pay for all of them."""

from importlib import import_module
from typing import TYPE_CHECKING

_WHERE = {
    "ChosenTest": "choose",
    "choose_test": "choose",
    "min_pairs": "choose",
    "run_test": "choose",
    "compare_scores": "compare",
    "load_scores": "compare",
    "rows_from_trials": "compare",
    "equivalence_from_ci": "decisions",
    "tost_paired": "decisions",
    "bootstrap_ci": "intervals",
    "mean_ci": "intervals",
    "wilson_ci": "intervals",
    "PairedComparison": "paired",
    "holm": "verdict",
    "paired_comparison": "paired",
    "verdict_from_ci": "verdict",
    "holm_verdicts": "verdict",
    "PairedTestResult": "paired_tests",
    "mcnemar_exact": "paired_tests",
    "nadeau_bengio": "paired_tests",
    "paired_permutation": "paired_tests",
    "paired_t": "paired_tests",
    "wilcoxon_signed_rank": "paired_tests",
    "power_info": "power",
    "seeds_needed": "power",
    "cd_diagram": "ranking",
    "figure_to_base64_png": "ranking",
    "rank_methods": "ranking",
}


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(f"slimlab.stats.{_WHERE[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'slimlab.stats' has no attribute {name!r}")


if TYPE_CHECKING:
    from slimlab.stats.choose import ChosenTest, choose_test, min_pairs, run_test
    from slimlab.stats.compare import compare_scores, load_scores, rows_from_trials
    from slimlab.stats.decisions import equivalence_from_ci, tost_paired
    from slimlab.stats.intervals import bootstrap_ci, mean_ci, wilson_ci
    from slimlab.stats.paired import PairedComparison, paired_comparison
    from slimlab.stats.paired_tests import (
        PairedTestResult,
        mcnemar_exact,
        nadeau_bengio,
        paired_permutation,
        paired_t,
        wilcoxon_signed_rank,
    )
    from slimlab.stats.power import power_info, seeds_needed
    from slimlab.stats.ranking import cd_diagram, figure_to_base64_png, rank_methods
    from slimlab.stats.verdict import holm, holm_verdicts, verdict_from_ci

__all__ = [
    "ChosenTest",
    "PairedComparison",
    "PairedTestResult",
    "bootstrap_ci",
    "cd_diagram",
    "choose_test",
    "compare_scores",
    "equivalence_from_ci",
    "figure_to_base64_png",
    "holm",
    "holm_verdicts",
    "load_scores",
    "mcnemar_exact",
    "mean_ci",
    "min_pairs",
    "nadeau_bengio",
    "paired_comparison",
    "paired_permutation",
    "paired_t",
    "power_info",
    "rank_methods",
    "rows_from_trials",
    "run_test",
    "seeds_needed",
    "tost_paired",
    "verdict_from_ci",
    "wilcoxon_signed_rank",
    "wilson_ci",
]
