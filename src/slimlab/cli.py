"""The `slimlab` command line. User errors print one line and exit 2; failed trials exit 1."""

from __future__ import annotations

import json
import signal
import sys
import warnings
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from slimlab import __version__
from slimlab.errors import DataFileError, SlimlabError

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


_pct_points = _pct


def _speedup(c: dict | None) -> str:
    from slimlab.analysis.headline import speedup_interval

    if not c or not c.get("speedup"):
        return ""
    interval, _ = speedup_interval(c)  # none from too few seeds or timings that disagree too much
    return f"{c['speedup']:.2f}x" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else " [no CI]")


def _num4(value) -> str:
    return "–" if value is None or value != value else f"{value:.4f}"


def print_summary(results: dict) -> None:
    comparisons = {(c["dataset"], c["variant"]): c for c in results["comparisons"]}
    metric_path = bool(results.get("metric_path"))
    metric = results["experiment"]["config"]["evaluate"].get("metric", "accuracy")

    def _pct(value):  # on the metric path, values are in the metric's own units
        return _num4(value) if metric_path else _pct_points(value)

    for dataset in dict.fromkeys(r["dataset"] for r in results["summary"]):
        table = Table(title=f"{results['experiment']['name']} · {dataset}", title_justify="left")
        for col in (
            "variant",
            "seeds",
            metric if metric_path else "acc %",
            "95% CI",
            "Δ (better > 0)" if metric_path else "Δ pts",
            "CI of Δ",
            "p (Holm)",
            "verdict",
            "p50 ms",
            "speedup [CI]",
            "nonzero",
        ):
            table.add_column(col, justify="left" if col in ("variant", "verdict") else "right")
        for r in (r for r in results["summary"] if r["dataset"] == dataset):
            c = comparisons.get((dataset, r["variant"]))
            shown = (r.get("metric") or {"mean": None, "ci": [None, None]}) if metric_path else r["accuracy"]
            lo, hi = shown["ci"]
            star = " *" if r["variant"] in results["pareto_by_dataset"].get(dataset, []) else ""
            table.add_row(
                r["variant"] + star,
                str(r["n_ok"]),
                _pct(shown["mean"]),
                f"[{_pct(lo)}, {_pct(hi)}]",
                _pct(c["delta"]) if c else "",
                f"[{_pct(c['ci'][0])}, {_pct(c['ci'][1])}]" if c else "",
                # The Holm-adjusted p that decided the verdict (stats.verdict), not the two-sided one.
                ("<0.001" if (c["p_decision"] or 1) < 1e-3 else f"{c['p_decision']:.3f}")
                if c and c.get("p_decision") is not None
                else "",
                c["verdict"]
                if c
                else (
                    "baseline"
                    if r["variant"] == results["experiment"]["config"]["evaluate"]["baseline"]
                    else "no verdict (failed)"
                ),
                f"{r['latency_p50_ms']:.4f}" if r["latency_p50_ms"] is not None else "–",
                _speedup(c),
                f"{r['nonzero_params'] / r['params']:.0%}" if r["params"] else "–",
            )
        console.print(table)
    console.print("* on the accuracy/latency Pareto front", style="dim")
    if metric_path:
        units = sorted({c.get("interval_unit", "seeds") for c in results["comparisons"]})
        console.print(f"intervals of the verdicts are over: {', '.join(units) or 'seeds'}", style="dim")
    if results.get("headline"):
        from slimlab.analysis.headline import headline_lines

        for line in headline_lines(results["headline"]):
            style = "bold red" if line.startswith("fail:") else ("yellow" if ":" in line[:6] else "bold")
            console.print(line, style=style, highlight=False, markup=False)
    for dataset, search in (results.get("search") or {}).items():
        accepted = next((c for c in search["candidates"] if c["variant"] == search["accepted"]), None)
        if not accepted:
            console.print(
                f"search ({dataset}): no candidate is non-inferior with confidence", highlight=False
            )
            continue
        vs_dense, vs_reference = accepted["speedup_vs_dense"], accepted["speedup_vs_reference"]
        # speedup_vs_dense pairs each candidate with dense on the same deploy backends (its fastest cell).
        dense = (
            "dense fp32 eager"
            if search.get("deploy_backends", ["eager"]) == ["eager"]
            else "dense on its fastest deployment"
        )
        reference = (
            f" and {vs_reference:.2f}x faster than {search['reference_backend']}" if vs_reference else ""
        )  # the reference backend may not have been measured
        console.print(
            f"search ({dataset}): accepted {accepted['variant']}: {vs_dense:.2f}x faster than {dense}"
            f"{reference} at batch {search['batch_size']}, non-inferior after Holm",
            highlight=False,
        )


def _run(
    config_path: Path,
    out: Path | None,
    quick: bool,
    retry_failed: bool = False,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
) -> None:
    from slimlab.experiment.executors import make_executor

    try:
        runner = make_executor(executor, workers, address)
    except SlimlabError as e:
        raise _fail(str(e)) from None
    # Local workers start now, before this process imports torch and loads the config: they import in
    # parallel with it (and are let go at the end, or at once if the file is a study or a bad config).
    runner.start()
    runner.while_waiting = _import_report_modules
    try:
        from slimlab.studies import is_study

        if is_study(config_path):
            runner.close()
            _run_study(config_path, out, quick)
            return
        from slimlab.config import load_experiment
        from slimlab.experiment import run_experiment
        from slimlab.experiment.outdir import writable_dir
        from slimlab.experiment.progress import RichProgress

        config = load_experiment(config_path)
        if quick:
            config = config.quick()
        out = writable_dir(out or Path("runs") / config.name)
        trials = run_experiment(
            config, out, RichProgress(console), retry_failed=retry_failed, executor=runner
        )
    except SlimlabError as e:
        raise _fail(str(e)) from None
    except KeyboardInterrupt:
        raise _fail(
            f"interrupted; finished trials are kept in {out}; run the same command to continue", 130
        ) from None
    finally:
        runner.close()
    try:
        _write_and_summarize(out)
    except SlimlabError as e:
        raise _fail(f"{e} (the finished trials are kept in {out})") from None
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


def _run_study(config_path: Path, out: Path | None, quick: bool) -> None:
    """A study file (`kind = "study"`): its own runner, results.json and report (slimlab.studies)."""
    from slimlab.analysis.studies import analyze_study
    from slimlab.report.studies import write_study_outputs
    from slimlab.studies import load_study, run_study

    try:
        study = load_study(config_path)
        if quick:
            study = study.quick()
        out = out or Path("runs") / study.name
        with console.status(f"study {study.name}") as status:
            records = run_study(study, out, progress=lambda text: status.update(text))
        results = analyze_study(study, records)
        write_study_outputs(results, out)
    except SlimlabError as e:
        raise _fail(str(e)) from None
    except KeyboardInterrupt:
        raise _fail(
            f"interrupted; finished cells are kept in {out}; run the same command to continue", 130
        ) from None
    _print_claims(results, out)


def _print_claims(results: dict, out: Path) -> None:
    for claim in results["study"]["claims"]:
        held = {True: "[green]held[/]", False: "[red]not held[/]", None: "n/a"}[claim["held"]]
        console.print(f"{held}  {claim['claim']}", highlight=False)
        console.print(f"      {claim['detail']}", style="dim", highlight=False, markup=False)
    console.print(f"results: {out / 'results.json'}\nreport:  {out / 'report.html'}")


def _import_report_modules() -> None:
    import slimlab.analysis
    import slimlab.report  # noqa: F401


def _write_and_summarize(run_dir: Path) -> None:
    from slimlab.analysis import analyze
    from slimlab.experiment import load_run
    from slimlab.experiment.outdir import describe_write_error
    from slimlab.report import write_outputs

    config, env, trials = load_run(run_dir)
    if config is None:
        raise _fail(f"{run_dir}: the store holds no experiment yet")
    analysis = analyze(config, trials, env)
    try:
        results_path, report_path = write_outputs(analysis, run_dir)
    except OSError as e:
        raise SlimlabError(describe_write_error(run_dir, e)) from None
    print_summary(analysis.results)
    console.print(f"results: {results_path}\nreport:  {report_path}")
    if config.tracking.mlflow:
        from slimlab.experiment.tracking import log_to_mlflow

        logged = log_to_mlflow(
            config.tracking.model_dump(), config.name, trials, run_dir, [results_path, report_path]
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
    out: Annotated[Path | None, typer.Option(help="run directory; default runs/demo")] = None,
    quick: Annotated[bool, typer.Option(help=QUICK_HELP)] = False,
) -> None:
    """Run the bundled demo (examples/demo.toml): the accuracy-aware search on the MNIST-1D reference CNN
    beside unstructured pruning at 50% and 90%, 5 seeds; it ends with the recommendation in one sentence."""
    import time

    start = time.perf_counter()
    with resources.as_file(resources.files("slimlab") / "examples" / "demo.toml") as path:
        _run(path, out, quick)
    # The answer is the last thing printed: the recommendation (or why there is none), read back from the
    # results.json just written, so that it is the report's headline word for word.
    results_path = (out or Path("runs") / "demo") / "results.json"
    headline = json.loads(results_path.read_text(encoding="utf-8")).get("headline") or {}
    console.print(f"demo: {time.perf_counter() - start:.0f} s", style="dim", highlight=False)
    for d in headline.get("datasets", []):
        if d.get("sentence"):
            console.print(f"\n{d['sentence']}", style="bold", highlight=False, markup=False, soft_wrap=True)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a run directory written by `slimlab run`")]) -> None:
    """Rebuild results.json and report.html from a run directory's store (an experiment's or a study's)."""
    from slimlab.studies import is_study_dir

    try:
        if is_study_dir(run_dir):
            _rebuild_study(run_dir)
        else:
            _write_and_summarize(run_dir)
    except SlimlabError as e:
        raise _fail(str(e)) from None


def _rebuild_study(run_dir: Path) -> None:
    """A study's report from its finished cells; nothing is trained."""
    from slimlab.analysis.studies import analyze_study
    from slimlab.report.studies import write_study_outputs
    from slimlab.studies import replay_study

    study, records, asked = replay_study(run_dir)
    results = analyze_study(study, records)
    write_study_outputs(results, run_dir)
    if study.study.seeds < asked:
        console.print(
            f"{study.study.seeds} of {asked} seeds have finished; the report covers those "
            "(run the study's `slimlab run` command again to finish it)",
            style="yellow",
        )
    _print_claims(results, run_dir)


@app.command()
def compare(
    scores: Annotated[
        Path, typer.Argument(help="a CSV (method, dataset, seed or fold, score[, correct]) or a results.json")
    ],
    baseline: Annotated[str | None, typer.Option(help="the method every other is compared with")] = None,
    out: Annotated[Path, typer.Option(help="where results.json, report.html and cd_diagram.png go")] = Path(
        "runs/compare"
    ),
    margin: Annotated[
        float, typer.Option(help="non-inferiority and equivalence margin, in score units")
    ] = 0.01,
    alpha: Annotated[float, typer.Option()] = 0.05,
    test: Annotated[
        str, typer.Option(help="auto | paired_t | wilcoxon | permutation | nadeau_bengio | mcnemar_exact")
    ] = "auto",
    design: Annotated[str, typer.Option(help="auto | seeds | folds | per_sample")] = "auto",
    lower_is_better: Annotated[bool, typer.Option(help="the score is an error or a loss")] = False,
) -> None:
    """Statistics on any table of scores: paired tests with Holm correction, non-inferiority verdicts,
    a ranking with a critical-difference diagram, and the pitfall checks."""
    import base64

    from slimlab.experiment.outdir import writable_dir
    from slimlab.report.compare_report import cd_png, render_compare_report
    from slimlab.report.writer import write_json_and_html
    from slimlab.stats import compare_scores, rows_from_trials

    try:
        writable_dir(out)
        table: Path | list[dict] = scores
        if scores.suffix == ".json":
            if not scores.is_file():
                raise DataFileError(f"{scores}: not found")
            try:
                loaded = json.loads(scores.read_text(encoding="utf-8"))
                table = rows_from_trials(loaded["trials"])
                baseline = baseline or loaded["experiment"]["config"]["evaluate"]["baseline"]
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
                raise DataFileError(
                    f"{scores}: not a slimlab results.json ({type(e).__name__}: {e})"
                ) from None
        result = compare_scores(
            table,
            baseline,
            margin=margin,
            alpha=alpha,
            test=test,
            design=design,
            higher_is_better=not lower_is_better,
        )
    except SlimlabError as e:
        raise _fail(str(e)) from None
    ranking = result["ranking"]
    if ranking.get("order"):
        console.print(
            "ranking (average rank, lower is better): "
            + ", ".join(f"{m} {ranking['average_ranks'][m]:.2f}" for m in ranking["order"]),
            highlight=False,
        )
    # With two methods (the commonest case) the Friedman test is undefined: its p-value is None.
    if ranking.get("friedman_p") is not None:
        console.print(
            f"Friedman p = {ranking['friedman_p']:.4g}"
            + (f", critical difference {ranking['cd']:.2f}" if ranking.get("cd") is not None else ""),
            highlight=False,
        )
    if ranking.get("note"):
        console.print(f"ranking: {ranking['note']}", highlight=False, markup=False)
    table_out = Table(title=f"compared with {result['baseline']}", title_justify="left")
    for col in ("dataset", "method", "n", "delta", "CI", "test", "p (Holm)", "verdict"):
        table_out.add_column(col)
    for c in result["comparisons"]:
        lo, hi = c["ci"]
        table_out.add_row(
            c["dataset"],
            c["variant"],
            str(c["n"]),
            f"{c['delta']:+.4f}",
            f"[{lo:+.4f}, {hi:+.4f}]" if lo is not None else "–",
            c["test"],
            "–" if c.get("p_decision") is None else f"{c['p_decision']:.4f}",  # the p that decided
            c["verdict"],
        )
    console.print(table_out)
    for c in result["pitfalls"]:
        if c["status"] != "pass":
            console.print(
                f"{c['status']}: §{c['item']} {c['check']}: {c['detail']}", highlight=False, markup=False
            )
    out.mkdir(parents=True, exist_ok=True)
    png = cd_png(result)
    if png:
        (out / "cd_diagram.png").write_bytes(base64.b64decode(png))
        console.print(f"critical-difference diagram: {out / 'cd_diagram.png'}")
    results_path, report_path = write_json_and_html(
        {"slimlab_version": __version__, **result}, render_compare_report(result, scores.name), out
    )
    console.print(f"results: {results_path}\nreport:  {report_path}")


@app.command(name="ls")
def list_trials(
    run_dir: Annotated[Path, typer.Argument(help="a run directory written by `slimlab run`")],
) -> None:
    """List the trials in a run directory's store with their status."""
    from slimlab.experiment import Store

    try:
        with Store.open_existing(run_dir, read_only=True) as store:
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


def main() -> None:
    """The `slimlab` command: the typer app, and a cheaper exit. At exit CPython's last garbage
    collections walk every object that torch and the other imports created (0.7 s a command here, paid
    again by every worker); freezing them first skips that walk. Nothing slimlab writes depends on a
    collector's finalizer: the store and every file are closed by their own `with` blocks."""
    import gc

    try:
        app()
    finally:
        gc.freeze()


# ----- slimlab bench -------------------------------------------------------------------------------------


def _csv(value: str, what: str, cast=str) -> list:
    try:
        items = [cast(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise SlimlabError(f"`{what}` must be a comma-separated list; got {value!r}") from None
    if not items:
        raise SlimlabError(f"`{what}` is empty")
    return items


def _load_bench_dataset(name: str):
    from slimlab.config import DataConfig
    from slimlab.data.registry import load_dataset

    try:
        return load_dataset(DataConfig(name=name), seed=0)
    except ValueError as e:  # pydantic's error for an unknown dataset name
        raise SlimlabError(f"--dataset: {str(e).splitlines()[-1].strip()}") from None


def _saved_trial(run_dir: Path, trial: str, accuracy: bool):
    """A trial's saved model (`[bench] save_models = true`) and, with --accuracy, its validation split.
    TRIAL is a trial id or VARIANT/SEED (VARIANT/SEED/DATASET when the run has several datasets)."""
    from slimlab.bench.loading import load_onnx
    from slimlab.data import load_dataset
    from slimlab.experiment.saved import find_saved_trial

    found = find_saved_trial(run_dir, trial)
    loaded = load_onnx(run_dir / found["model_file"])
    validation = None
    if accuracy:
        from slimlab.experiment import load_run

        config, _, _ = load_run(run_dir)
        data_config = next(d for d in config.data if d.label == found["dataset"])
        data = load_dataset(data_config, found["seed"])
        validation = (data.val.x, data.val.y)
    return loaded, validation


def _bench_input(model: str, dataset: str, input_shape: str | None, arch: str | None, accuracy: bool):
    """(the model, the validation split or None). MODEL is a file (by its suffix) or a reference model
    name; the dataset gives a reference model's input shape, and with --accuracy the split to score on."""
    from slimlab.bench.loading import from_reference, load_model_file
    from slimlab.models import MODELS

    path = Path(model)
    if path.is_dir():
        from slimlab.experiment.store import STORE_FILE

        if (path / STORE_FILE).is_file():
            raise SlimlabError(
                f"{path}: is a run directory; pass --trial VARIANT/SEED to benchmark one of its saved models"
            )
        raise DataFileError(
            f"{path}: is a folder; expected a model file (.onnx, .pt2, .pt with --arch) or a reference "
            "model name"
        )
    shape: tuple[int, ...] | None = None
    if input_shape:
        shape = tuple(_csv(input_shape, "--input-shape", int))
    data = None
    if accuracy or shape is None or path.suffix.lower() not in ("", ".onnx", ".pt2"):
        data = _load_bench_dataset(dataset)
    validation = (data.val.x, data.val.y) if accuracy and data is not None else None
    classes = data.num_classes if data is not None else 10  # without a dataset it only sizes a random model
    shape = shape or (data.input_shape if data is not None else None)
    if path.suffix:
        return load_model_file(path, arch=arch, input_shape=shape, num_classes=classes), validation
    if model not in MODELS:
        from slimlab.errors import UnknownNameError

        raise UnknownNameError("model", model, MODELS.names(), where="MODEL (or a .onnx/.pt2/.pt file)")
    return from_reference(model, shape, classes), validation


def print_bench(records: list[dict]) -> None:
    table = Table(title="slimlab bench", title_justify="left")
    cols = ["backend", "scenario", "batch", "p50 ms", "p99 ms", "spread", "per s", "% peak", "size", "note"]
    with_accuracy = any(r.get("accuracy") is not None for r in records)
    if with_accuracy:
        cols.insert(-1, "acc %")
    for col in cols:
        table.add_column(col, justify="left" if col in ("backend", "scenario", "note") else "right")

    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v:.4f}"

    for r in records:
        if r["status"] != "ok":
            where = [r.get("scenario") or "", "" if r.get("batch_size") is None else str(r["batch_size"])]
            table.add_row(r["backend"], *where, *[""] * (len(cols) - 4), f"skipped: {r['reason']}")
            continue
        lat, share = r["latency_ms"], (r.get("roofline") or {}).get("peak_share")
        note = ""
        if r["scenario"] == "server":
            s = r["server"]
            if s["best_rate_per_s"] is None:
                note = (
                    f"no rate keeps p99 ≤ {s['latency_budget_ms']} ms (measured service times are too slow)"
                )
            else:
                lo, hi = s["rate_bracket_per_s"]
                note = f"p99 ≤ {s['latency_budget_ms']} ms; limit in [{lo:.0f}, {hi:.0f}]/s"
        elif r.get("best"):
            note = "best offline"
        if r.get("accuracy_flagged"):
            note += f" accuracy drop {r['accuracy_drop']:.3f}!"
        cells = [
            r["backend"],
            r["scenario"],
            str(r["batch_size"]),
            ms(lat.get("p50")),
            ms(lat.get("p99")),
            f"{100 * lat['repeat_spread']:.0f}%" if lat.get("repeat_spread") is not None else "",
            f"{r['throughput_per_s']:.0f}",
            f"{100 * share:.2f}" if share else "–",
            f"{r['size_bytes'] / 1024:.0f} KiB" if r.get("size_bytes") else "–",
        ]
        if with_accuracy:
            cells.append(_pct(r.get("accuracy")))
        table.add_row(*cells, note)
    console.print(table)


@app.command()
def bench(
    model: Annotated[
        str,
        typer.Argument(help="a reference model name (mlp, cnn1d), a .onnx/.pt2/.pt file, or a run directory"),
    ],
    trial: Annotated[
        str | None, typer.Option(help="with a run directory: the trial, as VARIANT/SEED or its id")
    ] = None,
    backend: Annotated[str, typer.Option(help="comma-separated backends")] = "eager,compile,onnxruntime",
    batch_sizes: Annotated[str, typer.Option(help="comma-separated offline sweep")] = "1,64",
    scenario: Annotated[
        str, typer.Option(help="comma-separated: single-stream, offline, server")
    ] = "single-stream,offline,server",
    latency_budget_ms: Annotated[float, typer.Option(help="server: the p99 latency bound")] = 10.0,
    max_queue_delay_ms: Annotated[float, typer.Option(help="server: how long a batch may wait")] = 1.0,
    max_seconds: Annotated[float | None, typer.Option(help="time budget of the sweep and the search")] = None,
    loadgen_scale: Annotated[
        float, typer.Option(help="fraction of MLPerf LoadGen's minimums (1 = full)")
    ] = 0.0,
    dataset: Annotated[str, typer.Option(help="gives a reference model's input shape")] = "mnist1d",
    input_shape: Annotated[str | None, typer.Option(help="one sample's shape, e.g. 40 or 1,40")] = None,
    arch: Annotated[str | None, typer.Option(help="architecture of a .pt state-dict file")] = None,
    threads: Annotated[int | None, typer.Option(help="torch and ORT threads")] = None,
    dollars_per_hour: Annotated[float | None, typer.Option(help="machine price, for cost per 1M")] = None,
    calibrate: Annotated[bool, typer.Option(help="measure (or reuse) the GEMM peak for % of peak")] = True,
    recalibrate: Annotated[
        bool, typer.Option(help="measure the GEMM peak again, replacing the cache")
    ] = False,
    accuracy: Annotated[
        bool, typer.Option(help="score each backend on the dataset's validation split; flag drops")
    ] = False,
    accuracy_margin: Annotated[float, typer.Option(help="flag a backend whose accuracy drops more")] = 0.01,
    quick: Annotated[bool, typer.Option(help="smoke test: very short measurements")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the records as JSON")] = False,
    data: Annotated[
        str | None, typer.Option(help="a .npz of real example inputs (x, x:NAME, or one array per input)")
    ] = None,
    quantize: Annotated[
        str | None, typer.Option(help="quantize first: static_int8 (needs --calibration) or dynamic_int8")
    ] = None,
    calibration: Annotated[
        str | None, typer.Option(help="a .npz of calibration inputs for static_int8")
    ] = None,
    op_types: Annotated[
        str | None, typer.Option(help="static_int8: quantize only these ONNX op types, e.g. MatMul")
    ] = None,
) -> None:
    """Benchmark a model on each backend and MLPerf-style scenario; one record per result. Exits 1 when a
    measurement failed or none could be made (each batch size a model cannot run is a skipped record)."""
    from pydantic import ValidationError

    from slimlab.bench import BenchConfig, gemm_peak, run_benchmark
    from slimlab.bench.engine import pinned_threads

    try:
        try:
            config = BenchConfig(
                backends=_csv(backend, "--backend"),
                batch_sizes=_csv(batch_sizes, "--batch-sizes", int),
                scenarios=_csv(scenario, "--scenario"),
                latency_budget_ms=latency_budget_ms,
                max_queue_delay_ms=max_queue_delay_ms,
                max_seconds=max_seconds,
                loadgen_scale=loadgen_scale,
                threads=threads,
                dollars_per_hour=dollars_per_hour,
                accuracy_margin=accuracy_margin,
                latency_batch_size=1,
            )
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise SlimlabError(f"`{where}`: {err['msg']}") from None
        if trial:
            loaded, validation = _saved_trial(Path(model), trial, accuracy)
        elif Path(model).suffix.lower() == ".onnx" and (data or quantize):
            loaded, validation = _foreign_onnx(Path(model), data, quantize, calibration, op_types), None
        else:
            loaded, validation = _bench_input(model, dataset, input_shape, arch, accuracy)
    except SlimlabError as e:
        raise _fail(str(e)) from None
    if quick:
        config = config.quick()
    say = (lambda _m: None) if as_json else (lambda m: err_console.print(m, style="dim", highlight=False))
    with pinned_threads(config.threads):  # the peak is measured with the threads the model runs with
        peak = None
        if calibrate:
            small = {"size": 512, "min_time_s": 0.05} if quick else {}
            peak = gemm_peak("cuda" if torch_cuda() else "cpu", refresh=recalibrate, **small)
        records = run_benchmark(loaded, config, peak=peak, validation=validation, progress=say)
    if as_json:
        print(json.dumps(records, indent=1, default=str))
    else:
        print_bench(records)
    if any(r.get("failed") for r in records) or not any(r["status"] == "ok" for r in records):
        raise typer.Exit(1)


def _foreign_onnx(path: Path, data: str | None, quantize: str | None, calibration: str | None, op_types):
    """An ONNX file slimlab did not write, with real example inputs, optionally quantized first (ONNX
    Runtime's static QDQ quantization calibrated on --calibration, or its dynamic int8)."""
    import tempfile

    from slimlab.bench.inputs import inputs_from_npz
    from slimlab.bench.loading import load_onnx

    examples = inputs_from_npz(data) if data else None
    if quantize is None:
        return load_onnx(path, examples)
    if quantize not in ("static_int8", "dynamic_int8"):
        raise SlimlabError(f"--quantize: expected static_int8 or dynamic_int8; got {quantize!r}")
    from slimlab.models.loading import load_onnx_module

    module = load_onnx_module(path)
    out = Path(tempfile.mkdtemp(prefix="slimlab-q-")) / f"{path.stem}.{quantize}.onnx"
    if quantize == "static_int8":
        if not calibration:
            raise SlimlabError(
                "--quantize static_int8 needs --calibration FILE.npz (real inputs to calibrate on)"
            )
        calib = inputs_from_npz(calibration)
        examples = examples if examples is not None else calib
        try:
            quantized = _static_int8_onnx(module, calib, _csv(op_types, "--op-types") if op_types else None)
        except SlimlabError:
            raise
        except Exception as e:  # the user's graph or inputs ONNX Runtime's quantizer cannot take: one line
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            raise DataFileError(
                f"{path}: static int8 quantization failed: {type(e).__name__}: {first}"
            ) from None
        out.write_bytes(quantized.onnx_model.numpy().tobytes())
    else:
        from slimlab.bench.backends import OnnxRuntimeBackend

        OnnxRuntimeBackend._quantize(path, out)
    loaded = load_onnx(out, examples)
    loaded.name, loaded.meta["quantized_from"] = f"{path.stem}-{quantize}", str(path)
    return loaded


def _static_int8_onnx(module, calib, op_types):
    import numpy as np

    from slimlab.data import Dataset, Split
    from slimlab.data.batches import n_rows
    from slimlab.treatments import StaticInt8, TreatmentContext, apply

    split = Split(calib, np.zeros(n_rows(calib), dtype=np.int64))
    context = TreatmentContext(data=Dataset("calibration", split, split, split, 0))
    config = StaticInt8(calibration_samples=n_rows(calib), op_types=op_types)
    return apply(module, config, context)


def torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@app.command()
def serve(
    model: Annotated[
        str,
        typer.Argument(
            help="a .onnx/.pt2 file, a .pt/.safetensors state dict (+ --arch or --factory), "
            "a run directory (+ --trial), or a reference model name (random weights)"
        ),
    ],
    trial: Annotated[
        str | None, typer.Option(help="with a run directory: VARIANT/SEED or a trial id")
    ] = None,
    host: Annotated[
        str, typer.Option(help="address to bind; other than 127.0.0.1 exposes the model")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    max_batch_size: Annotated[int, typer.Option(min=1, help="most examples per model call")] = 64,
    max_wait_ms: Annotated[float, typer.Option(min=0, help="how long a batch waits to fill")] = 2.0,
    max_body_bytes: Annotated[int, typer.Option(min=1024, help="larger request bodies get 413")] = 8 * 2**20,
    arch: Annotated[
        str | None, typer.Option(help="reference architecture of a state dict (e.g. dlrm)")
    ] = None,
    factory: Annotated[str | None, typer.Option(help="your own architecture, as module:function")] = None,
    params: Annotated[str | None, typer.Option(help="the architecture's parameters, as JSON")] = None,
    input_shape: Annotated[str | None, typer.Option(help="one example's shape, e.g. 40 or 1,40")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="torch threads")] = None,
    executor: Annotated[
        str, typer.Option(help="local (uvicorn, one process) or ray (a Ray Serve deployment)")
    ] = "local",
    replicas: Annotated[int, typer.Option(min=1, help="with --executor ray: model replicas")] = 1,
    address: Annotated[
        str | None,
        typer.Option(help="with --executor ray: a cluster to join (default: RAY_ADDRESS, else local)"),
    ] = None,
) -> None:
    """Serve a model over HTTP with dynamic batching: GET /health, POST /predict, GET /metrics."""
    try:
        from slimlab.serve import load_servable
    except ImportError as e:  # the serve extra is not installed
        raise _fail(
            f"serving needs FastAPI, uvicorn and prometheus-client: pip install 'slimlab[serve]' ({e})"
        ) from None
    if executor not in ("local", "ray"):
        raise _fail(f"--executor must be 'local' or 'ray'; got {executor!r}")
    if executor == "ray":
        try:
            with warnings.catch_warnings():  # Ray Serve's own pydantic-v1 idioms warn on import
                warnings.simplefilter("ignore", DeprecationWarning)
                import ray.serve  # noqa: F401
        except ImportError as e:
            raise _fail(f"--executor ray needs Ray Serve: pip install 'ray[serve]' ({e})") from None
    try:
        parsed = json.loads(params) if params else None
        if parsed is not None and not isinstance(parsed, dict):
            raise SlimlabError("--params must be a JSON object")
        shape = tuple(_csv(input_shape, "--input-shape", int)) if input_shape else None
        if threads:
            import torch

            torch.set_num_threads(threads)
        spec = {
            "model": str(Path(model).resolve()) if Path(model).exists() else model,
            "trial": trial,
            "arch": arch,
            "factory": factory,
            "params": parsed,
            "input_shape": shape,
        }
        servable = load_servable(**spec)  # also with Ray: a bad model fails here, before Ray starts
    except json.JSONDecodeError as e:
        raise _fail(f"--params is not JSON: {e}") from None
    except SlimlabError as e:
        raise _fail(str(e)) from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(
            f"warning: binding {host}: the model is reachable from other machines", style="yellow"
        )
    options = {"max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms, "max_body_bytes": max_body_bytes}
    err_console.print(
        f"serving {servable.name} on http://{host}:{port} ({executor}); Ctrl-C stops", style="dim"
    )
    if executor == "ray":
        from slimlab.serve import ray_serve

        ray_serve.start(host, port, address=address)
        signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM stops Serve as Ctrl-C does: no orphan actors
        app = ray_serve.application(spec, replicas=replicas, threads=threads, **options)
        try:
            ray_serve.deploy(app, blocking=True)
        except KeyboardInterrupt:
            pass
        finally:
            ray_serve.stop()
        return
    from slimlab.serve.server import serve_forever

    serve_forever(servable, host=host, port=port, **options)
