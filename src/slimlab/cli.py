"""The `slimlab` command line. User errors print one line and exit 2; failed trials exit 1."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from slimlab.errors import SlimlabError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Make models smaller, faster and cheaper, and show that they are no worse.",
)
# Off a terminal (CI logs, pipes) rich assumes 80 columns, which folds the results table; use a wide one.
console = Console(width=None if sys.stdout.isatty() else 150)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _pct(v: float | None) -> str:
    return "–" if v is None or v != v else f"{100 * v:.1f}"


def print_summary(results: dict) -> None:
    comparisons = {(c["dataset"], c["variant"]): c for c in results["comparisons"]}
    for dataset in dict.fromkeys(r["dataset"] for r in results["summary"]):
        table = Table(title=f"{results['experiment']['name']} · {dataset}", title_justify="left")
        for col in (
            "variant",
            "seeds",
            "acc %",
            "95% CI",
            "Δ pts",
            "CI of Δ",
            "p (Holm)",
            "verdict",
            "p50 ms",
            "speedup",
            "nonzero",
        ):
            table.add_column(col, justify="left" if col in ("variant", "verdict") else "right")
        for r in (r for r in results["summary"] if r["dataset"] == dataset):
            c = comparisons.get((dataset, r["variant"]))
            lo, hi = r["accuracy"]["ci"]
            star = " *" if r["variant"] in results["pareto_by_dataset"].get(dataset, []) else ""
            table.add_row(
                r["variant"] + star,
                str(r["n_ok"]),
                _pct(r["accuracy"]["mean"]),
                f"[{_pct(lo)}, {_pct(hi)}]",
                _pct(c["delta"]) if c else "",
                f"[{_pct(c['ci'][0])}, {_pct(c['ci'][1])}]" if c else "",
                ("<0.001" if (c["p_adjusted"] or 1) < 1e-3 else f"{c['p_adjusted']:.3f}")
                if c and c["p_adjusted"] is not None
                else "",
                c["verdict"] if c else "baseline",
                f"{r['latency_p50_ms']:.4f}" if r["latency_p50_ms"] is not None else "–",
                f"{c['speedup']:.2f}x" if c and c["speedup"] else "",
                f"{r['nonzero_params'] / r['params']:.0%}" if r["params"] else "–",
            )
        console.print(table)
    console.print("* on the accuracy/latency Pareto front", style="dim")


def _run(
    config_path: Path,
    out: Path | None,
    quick: bool,
    retry_failed: bool = False,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
) -> None:
    from slimlab.config import load_experiment
    from slimlab.experiment import run_experiment
    from slimlab.experiment.executors import make_executor
    from slimlab.experiment.progress import RichProgress

    try:
        runner = make_executor(executor, workers, address)
        config = load_experiment(config_path)
        if quick:
            config = config.quick()
        out = out or Path("runs") / config.name
        trials = run_experiment(
            config, out, RichProgress(console), retry_failed=retry_failed, executor=runner
        )
    except SlimlabError as e:
        raise _fail(str(e)) from None
    except KeyboardInterrupt:
        raise _fail(
            f"interrupted; finished trials are kept in {out}; run the same command to continue", 130
        ) from None
    _write_and_summarize(out)
    failed = [t for t in trials if t["status"] != "ok"]
    if failed:
        for t in failed:
            err_console.print(
                f"failed: {t['variant']} seed {t['seed']} on {t['dataset']}: {t['error']}",
                highlight=False,
                markup=False,
            )
        raise _fail(
            f"{len(failed)} of {len(trials)} trials failed; the rest are in the report "
            "(rerun with --retry-failed to retry only those)",
            1,
        )


def _write_and_summarize(run_dir: Path) -> None:
    from slimlab.experiment import load_run
    from slimlab.report import build_results, write_outputs

    config, env, trials = load_run(run_dir)
    if not config:
        raise _fail(f"{run_dir}: the store holds no experiment yet")
    results = build_results(config, trials, env)
    results_path, report_path = write_outputs(results, run_dir)
    print_summary(results)
    console.print(f"results: {results_path}\nreport:  {report_path}")
    if config.get("tracking", {}).get("mlflow"):
        from slimlab.experiment.tracking import log_to_mlflow

        logged = log_to_mlflow(
            config["tracking"], config["name"], trials, run_dir, [results_path, report_path]
        )
        console.print(f"mlflow:  {logged} new trial runs logged")


QUICK_HELP = "smoke test: 2 seeds, 3 epochs, 1000 samples, short benchmarks"


@app.command()
def run(
    experiment: Annotated[Path, typer.Argument(help="experiment file (TOML)")],
    out: Annotated[Path | None, typer.Option(help="run directory; default runs/NAME")] = None,
    quick: Annotated[bool, typer.Option(help=QUICK_HELP)] = False,
    retry_failed: Annotated[bool, typer.Option(help="rerun the trials that failed before")] = False,
    executor: Annotated[str, typer.Option(help="local | ray")] = "local",
    workers: Annotated[int, typer.Option(help="parallel workers (processes, or Ray tasks at once)")] = 1,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address, e.g. auto or ray://host:10001")
    ] = None,
) -> None:
    """Run or resume an experiment grid (variants × seeds × datasets); write results.json and report.html.

    Finished trials in the run directory's store are reused, so rerunning after an interruption continues
    where it stopped."""
    _run(experiment, out, quick, retry_failed, executor, workers, address)


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option(help="run directory; default runs/quickstart")] = None,
    quick: Annotated[bool, typer.Option(help=QUICK_HELP)] = False,
) -> None:
    """Run the bundled quickstart: a 1D CNN on MNIST-1D, dense vs pruned vs int8, 5 seeds."""
    with resources.as_file(resources.files("slimlab") / "examples" / "quickstart.toml") as path:
        _run(path, out, quick)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a run directory written by `slimlab run`")]) -> None:
    """Rebuild results.json and report.html from a run directory's store."""
    try:
        _write_and_summarize(run_dir)
    except SlimlabError as e:
        raise _fail(str(e)) from None


@app.command(name="ls")
def list_trials(
    run_dir: Annotated[Path, typer.Argument(help="a run directory written by `slimlab run`")],
) -> None:
    """List the trials in a run directory's store with their status."""
    from slimlab.experiment import Store

    try:
        with Store.open_existing(run_dir) as store:
            trials = store.trials(predictions=False)
    except SlimlabError as e:
        raise _fail(str(e)) from None
    table = Table(title=f"{run_dir}: {len(trials)} trials", title_justify="left")
    for col in ("id", "dataset", "seed", "variant", "status", "attempts", "accuracy", "error"):
        table.add_column(col)
    for t in trials:
        accuracy = t.get("metrics", {}).get("accuracy")
        table.add_row(
            t["id"],
            t["dataset"],
            str(t["seed"]),
            t["variant"],
            t["status"],
            str(t["attempts"]),
            _pct(accuracy) if accuracy is not None else "",
            t.get("error") or "",
        )
    console.print(table)


def main() -> None:  # pragma: no cover
    sys.exit(app())
