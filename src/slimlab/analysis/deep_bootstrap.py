"""The Deep Bootstrap study's analysis: curves with CIs over seeds, the bootstrap gap (Real − Ideal, paired
by seed) at each step, the table at the Real World's convergence, and the paper's claims checked. Input:
the study's config and its cell records (`slimlab.studies.deep_bootstrap.run`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from slimlab.analysis.curves import DIFFERENCE, POSITIVE, PROPORTION, curve_summary, summarize

if TYPE_CHECKING:
    from slimlab.studies.deep_bootstrap import DeepBootstrapConfig


def _converged_index(train_error: list[float], threshold: float) -> int | None:
    return next((i for i, e in enumerate(train_error) if e <= threshold), None)


def analyze(config: DeepBootstrapConfig, records: list[dict]) -> dict:
    """Curves with CIs over seeds, the gap (Real − Ideal, paired by seed) at each step, the table of the
    gap where the Real World reaches ~zero train error, and the paper's claims checked."""
    cells = {(r["arch"], r["augment"], r["world"], r["seed"]): r for r in records}
    seeds = list(range(config.seeds))
    settings = []
    for arch in config.architectures:
        for augment in config.augment:
            real = [cells[(arch, augment, "real", s)] for s in seeds]
            ideal = [cells[(arch, augment, "ideal", s)] for s in seeds]
            steps = real[0]["step"]
            entry: dict = {"arch": arch, "augment": augment, "steps": steps, "curves": {}, "gap": {}}
            for world, runs in (("real", real), ("ideal", ideal)):
                entry["curves"][world] = {
                    metric: curve_summary([r[metric] for r in runs])
                    for metric in ("test_error", "test_soft_error", "train_error", "train_soft_error")
                }
            for metric in ("test_error", "test_soft_error"):
                diffs = [np.subtract(r[metric], i[metric]).tolist() for r, i in zip(real, ideal, strict=True)]
                entry["gap"][metric] = curve_summary(diffs, DIFFERENCE)
            # At the Real World's convergence (per seed: its first evaluation at ≤ zero_error train error).
            at = {
                k: []
                for k in ("step", "real_error", "ideal_error", "gap", "real_soft", "ideal_soft", "soft_gap")
            }
            before = []  # the largest |soft gap| at steps before convergence, per seed
            for r, i in zip(real, ideal, strict=True):
                k = _converged_index(r["train_error"], config.zero_error)
                # strictly before convergence (the whole run if it never converges)
                last = len(r["step"]) if k is None else k
                pairs = zip(r["test_soft_error"][:last], i["test_soft_error"][:last], strict=True)
                before.append(max((abs(a - b) for a, b in pairs), default=float("nan")))
                if k is None:
                    continue
                at["step"].append(r["step"][k])
                at["real_error"].append(r["test_error"][k])
                at["ideal_error"].append(i["test_error"][k])
                at["gap"].append(r["test_error"][k] - i["test_error"][k])
                at["real_soft"].append(r["test_soft_error"][k])
                at["ideal_soft"].append(i["test_soft_error"][k])
                at["soft_gap"].append(r["test_soft_error"][k] - i["test_soft_error"][k])
            entry["converged"] = {
                "seeds_converged": len(at["step"]),
                "seeds": len(seeds),
                **{
                    k: summarize(v, POSITIVE if k == "step" else DIFFERENCE if "gap" in k else PROPORTION)
                    for k, v in at.items()
                },
                "max_soft_gap_before": summarize(before, PROPORTION),
            }
            entry["final"] = {
                "real_test_error": summarize([r["test_error"][-1] for r in real]),
                "ideal_test_error": summarize([i["test_error"][-1] for i in ideal]),
                "real_train_error": summarize([r["train_error"][-1] for r in real]),
                "gap": summarize(
                    [r["test_error"][-1] - i["test_error"][-1] for r, i in zip(real, ideal, strict=True)],
                    DIFFERENCE,
                ),
                "soft_gap": summarize(
                    [
                        r["test_soft_error"][-1] - i["test_soft_error"][-1]
                        for r, i in zip(real, ideal, strict=True)
                    ],
                    DIFFERENCE,
                ),
                "seconds": summarize([r["seconds"] for r in real + ideal], POSITIVE),
            }
            settings.append(entry)
    return {"type": "deep_bootstrap", "settings": settings, "claims": _claims(config, settings)}


def _claims(config: DeepBootstrapConfig, settings: list[dict]) -> list[dict]:
    claims = []
    gaps = [s["converged"]["max_soft_gap_before"]["mean"] for s in settings]
    worst = max((g for g in gaps if g == g), default=float("nan"))
    claims.append(
        {
            "claim": "the soft test errors of the two worlds stay within about 1–3 points until the Real "
            "World fits its training set",
            "held": bool(worst <= 0.03) if worst == worst else None,
            "detail": "largest |soft gap| before convergence, mean over seeds, per setting: "
            + ", ".join(
                f"{s['arch']}{'+aug' if s['augment'] else ''} {100 * g:.1f} pts"
                for s, g in zip(settings, gaps, strict=True)
            ),
        }
    )
    plain = [s for s in settings if not s["augment"]] or settings
    if len(plain) >= 2:
        real_order = sorted(plain, key=lambda s: s["final"]["real_test_error"]["mean"])
        # Optimization speed in the Ideal World: its test error after the same number of steps (the last),
        # where it is still optimizing (a fresh sample every step), and early on for the record.
        ideal_order = sorted(plain, key=lambda s: s["final"]["ideal_test_error"]["mean"])
        early = len(plain[0]["steps"]) // 2  # log-spaced: about the square root of the step budget

        def names(order: list[dict]) -> str:
            return " < ".join(s["arch"] for s in order)

        def errs(order: list[dict], value) -> str:
            return ", ".join(f"{s['arch']} {100 * value(s):.1f}%" for s in order)

        claims.append(
            {
                "claim": "architectures that generalize better in the Real World optimize faster in the "
                "Ideal World",
                "held": [s["arch"] for s in real_order] == [s["arch"] for s in ideal_order],
                "detail": f"Real World final test error: {names(real_order)} ("
                + errs(real_order, lambda s: s["final"]["real_test_error"]["mean"])
                + f"); Ideal World test error at the last step: {names(ideal_order)} ("
                + errs(ideal_order, lambda s: s["final"]["ideal_test_error"]["mean"])
                + f"); at step {plain[0]['steps'][early]}: "
                + errs(plain, lambda s: s["curves"]["ideal"]["test_error"]["mean"][early]),
            }
        )
    if set(config.augment) == {False, True}:
        rows = []
        helped_real = helped_ideal = True
        for arch in config.architectures:
            on = next(s for s in settings if s["arch"] == arch and s["augment"])
            off = next(s for s in settings if s["arch"] == arch and not s["augment"])
            real_d = on["final"]["real_test_error"]["mean"] - off["final"]["real_test_error"]["mean"]
            ideal_d = on["final"]["ideal_test_error"]["mean"] - off["final"]["ideal_test_error"]["mean"]
            helped_real &= real_d < 0
            helped_ideal &= ideal_d < 0
            rows.append(f"{arch}: Real World {100 * real_d:+.1f} pts, Ideal World {100 * ideal_d:+.1f} pts")
        claims.append(
            {
                "claim": "augmentation helps the Real World by speeding up Ideal World optimization "
                "(it lowers the test error of both worlds)",
                "held": bool(helped_real and helped_ideal),
                "detail": "final test error with augmentation minus without: " + "; ".join(rows),
            }
        )
    return claims
