"""HTML report and figures: self-contained output, sections that match the run, lineage."""

from __future__ import annotations

import base64
import csv
import importlib.util
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from lfadskit import plot
from lfadskit.data import SpikeData
from lfadskit.formats import load, save
from lfadskit.metrics import rate_r2, velocity_r2
from lfadskit.report import SECTIONS, decode_behavior, read_table, write_report
from lfadskit.runs import RunError, write_json, write_run

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
N_TRIALS, N_TIME, N_NEURONS, N_FACTORS = 24, 20, 8, 3
HPARAMS = ("lr", "dropout", "kl_co_scale")


# ---------------------------------------------------------------- tiny run directories
def tiny_data(
    tmp_path: Path, truth: bool = True, behavior: bool = True, valid_behavior: bool = True
) -> SpikeData:
    """Poisson counts from smooth latent rates; saved and reloaded so meta has a source."""
    rng = np.random.default_rng(0)
    time = np.linspace(0, 2 * np.pi, N_TIME)
    conditions = np.arange(N_TRIALS) % 4
    latents = np.stack(
        [np.sin(time[None] + c) * np.ones((N_TRIALS, 1)) for c in range(N_FACTORS)], axis=2
    )
    latents = latents + 0.3 * conditions[:, None, None]
    rates = np.exp(latents @ rng.normal(0, 0.5, (N_FACTORS, N_NEURONS)) - 0.5)
    fields = {"conditions": conditions}
    if truth:
        fields["truth"] = rates
    if behavior:
        fields["behavior"] = latents[..., :2] * 10.0
    data = SpikeData(spikes=rng.poisson(rates), bin_size=0.01, name="tiny", **fields)
    if behavior and not valid_behavior:  # like NLB eval trials: behavior unobserved
        hidden = data.behavior.copy()
        hidden[data.valid_idx] = np.nan
        data = data.replace(behavior=hidden)
    return load(save(data, tmp_path / "data.h5"))


def fake_outputs(data: SpikeData, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = data.truth if data.truth is not None else np.ones(data.recon_shape)
    shape3 = (data.n_trials, data.n_timesteps)
    return {
        "rates": base * rng.uniform(0.8, 1.2, base.shape),
        "factors": rng.normal(size=(*shape3, N_FACTORS)).cumsum(axis=1),
        "inputs": rng.normal(size=(*shape3, 2)),
        "ic_mean": rng.normal(size=(data.n_trials, 4)),
        "ic_std": rng.uniform(0.1, 1, size=(data.n_trials, 4)),
    }


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def fake_history(n_epochs: int = 15, n_members: int = 2) -> list[dict]:
    return [
        {
            "epoch": e,
            "member": m,
            "loss": 2.0 / (e + 1) + m,
            "nll": 1.0 / (e + 1),
            "valid_nll": 1.2 / (e + 1),
            "kl_ic": 0.1,
            "kl_co": 0.05,
            "lr": 1e-3 * 0.9**e,
            "status": "running",
        }
        for e in range(n_epochs)
        for m in range(n_members)
    ]


def fake_generations(n_generations: int = 4, n_members: int = 4) -> list[dict]:
    """Each generation after the first, members 2 and 3 copy members 0 and 1 and explore.

    As lfadskit.search writes it: ``parent`` is the member itself when it copied nobody.
    """
    rng = np.random.default_rng(2)
    values = {m: {"lr": 1e-3 * (m + 1), "dropout": 0.1 * m, "kl_co_scale": 1e-5} for m in range(4)}
    rows = []
    for g in range(n_generations):
        parents = {2: 0, 3: 1} if g > 0 else {}
        new = {m: dict(values[m]) for m in range(n_members)}
        for child, parent in parents.items():
            new[child] = {k: v * rng.uniform(0.8, 1.25) for k, v in values[parent].items()}
        values = new
        for m in range(n_members):
            rows.append(
                {
                    "generation": g,
                    "member": m,
                    "parent": parents.get(m, m),
                    **values[m],
                    "metric": 1.0 - 0.1 * g + 0.01 * m,
                    "status": "running",
                }
            )
    return rows


def fake_results(n_configs: int = 12) -> list[dict]:
    """A random search table: one row per configuration, the last one failed."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(n_configs):
        lr = float(10 ** rng.uniform(-5, -2.5))
        rows.append(
            {
                "config": i,
                "lr": lr,
                "dropout": float(rng.uniform(0, 0.6)),
                "cd_rate": 0.5,
                "metric": 1.0 + (np.log10(lr) + 3.5) ** 2,
            }
        )
    rows[-1]["metric"] = float("nan")
    ranked = sorted(
        range(n_configs), key=lambda i: (np.isnan(rows[i]["metric"]), rows[i]["metric"])
    )
    for position, i in enumerate(ranked):
        rows[i]["rank"] = position + 1
    return rows


def make_run(tmp_path: Path, search: str | None = None, **data_kwargs) -> Path:
    data = tiny_data(tmp_path, **data_kwargs)
    run_dir = tmp_path / "run"
    write_run(
        run_dir,
        data=data,
        model="lfads",
        params={"gen_dim": 16, "max_epochs": 15, "note": "<b>bold</b>"},
        outputs=fake_outputs(data),
        metrics={"train": {"nll": 0.5, "bps": 0.1}, "valid": {"nll": 0.6, "bps": 0.05}},
    )
    write_csv(run_dir / "history.csv", fake_history())
    if search == "pbt":
        write_csv(run_dir / "search" / "generations.csv", fake_generations())
    elif search == "random":
        write_csv(run_dir / "search" / "results.csv", fake_results())
    return run_dir


def section_ids(text: str) -> list[str]:
    return re.findall(r"<section id='(\w+)'>", text)


def assert_self_contained(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>")
    for bad in ('src="http', "src='http", "<link", "<script", "url(", "@import", "<iframe"):
        assert bad not in text.lower(), bad
    for match in re.finditer(r'<img [^>]*src="([^"]*)"', text):
        assert match.group(1).startswith("data:image/png;base64,")
        png = base64.b64decode(match.group(1).split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- the report
@pytest.fixture(scope="module")
def fit_run(tmp_path_factory):
    """A fit run with truth, behavior and conditions, and its report (built once)."""
    run_dir = make_run(tmp_path_factory.mktemp("fit"))
    before = {p.name for p in run_dir.rglob("*")}
    path = write_report(run_dir)
    return run_dir, before, path


def test_fit_report_is_one_self_contained_file_with_every_section(fit_run):
    run_dir, before, path = fit_run
    assert path == run_dir / "report.html"
    assert {p.name for p in run_dir.rglob("*")} == before | {"report.html"}  # nothing else
    text = path.read_text()
    assert_self_contained(text)
    assert section_ids(text) == [
        "config",
        "metrics",
        "training",
        "rates",
        "latents",
        "behavior",
        "outputs",
    ]
    for key in ("metrics", "training", "rates", "latents", "behavior", "outputs"):
        assert f"<h2>{SECTIONS[key]}</h2>" in text
    # training 1, rates 2 (traces + scatter), latents 1, behavior 1, inputs 1, ic_mean 1
    assert text.count("<img ") == 7
    assert "<details>" in text and "gen_dim" in text
    assert "&lt;b&gt;bold&lt;/b&gt;" in text and "<b>" not in text  # text is escaped
    assert "24 trials" in text  # the data summary in the header
    assert "Hyperparameter search" not in text


def test_metrics_table_shows_both_splits(fit_run):
    text = fit_run[2].read_text()
    table = text.split("<section id='metrics'>")[1].split("</section>")[0]
    assert "<th>train</th><th>valid</th>" in table
    row = re.search(r"<tr><td>nll</td>(.*?)</tr>", table).group(1)
    assert re.findall(r'<td class="num">([^<]*)</td>', row) == ["0.5000", "0.6000"]


def test_search_report_adds_trajectories_metric_and_final_table(tmp_path):
    run_dir = make_run(tmp_path, search="pbt", truth=False, behavior=False)
    text = write_report(run_dir).read_text()
    assert_self_contained(text)
    assert "search" in section_ids(text)
    search = text.split("<section id='search'>")[1].split("</section>")[0]
    assert search.count("<img ") == 2
    # Best of the final generation, found independently from the rows written.
    rows = [r for r in fake_generations() if r["generation"] == 3]
    best = min(rows, key=lambda r: r["metric"])
    first_row = re.search(r"<th>member</th>.*?</tr><tr><td>([^<]*)</td>", search).group(1)
    assert first_row == str(best["member"])
    assert text.count("<img ") == 6  # + training, latents, inputs, ic_mean


def test_random_search_report_ranks_configurations(tmp_path):
    run_dir = make_run(tmp_path, search="random", truth=False, behavior=False)
    text = write_report(run_dir).read_text()
    search = text.split("<section id='search'>")[1].split("</section>")[0]
    assert search.count("<img ") == 1
    header = re.search(r"<tr>(<th>.*?)</tr>", search).group(1)
    assert re.findall(r"<th>([^<]*)</th>", header) == ["rank", "metric", "lr", "dropout"]
    ranks = re.findall(r"<tr><td[^>]*>(\d+)</td>", search)
    assert ranks == [str(r) for r in range(1, 11)]  # best first, the ten best


def test_sections_need_their_data(tmp_path):
    run_dir = make_run(tmp_path, truth=False, behavior=False)
    text = write_report(run_dir).read_text()
    assert "rates" not in section_ids(text) and "behavior" not in section_ids(text)
    assert SECTIONS["rates"] not in text and SECTIONS["behavior"] not in text
    assert "no ground-truth rates" in text and "no behavior" in text
    assert "latents" in section_ids(text)


def test_behavior_is_shown_on_held_back_train_trials_when_valid_trials_lack_it(tmp_path):
    run_dir = make_run(tmp_path, truth=False, valid_behavior=False)
    text = write_report(run_dir).read_text()
    assert "behavior" in section_ids(text)
    # 19 train trials with behavior: round(0.2 * 19) = 4 held back, 15 to fit.
    assert "fit on 15 train trials, shown on 4 held-back train trials" in text


def test_missing_optional_files_leave_notes(tmp_path):
    run_dir = make_run(tmp_path)
    (run_dir / "history.csv").unlink()
    (tmp_path / "data.h5").unlink()
    text = write_report(run_dir).read_text()
    assert "history.csv is missing" in text
    assert "is not there any more" in text
    assert section_ids(text) == ["config", "metrics", "latents", "outputs"]
    (run_dir / "outputs.h5").unlink()
    (run_dir / "metrics.json").unlink()
    text = write_report(run_dir).read_text()
    assert "outputs.h5 is missing" in text and "metrics.json is missing" in text
    assert "<img " not in text


def test_non_run_directory_is_a_clear_error(tmp_path):
    with pytest.raises(RunError, match="not a run directory"):
        write_report(tmp_path)
    with pytest.raises(RunError, match="no such run directory"):
        write_report(tmp_path / "absent")
    assert not (tmp_path / "report.html").exists()


def test_report_is_written_atomically(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    write_json(run_dir / "metrics.json", {"train": {"nll": 1.0}, "valid": {"nll": 1.1}})
    (run_dir / "report.html").write_text("old report")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_report(run_dir)
    assert (run_dir / "report.html").read_text() == "old report"
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".report.html")]


# ---------------------------------------------------------------- pieces
def test_read_table_parses_numbers_blanks_booleans_and_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("generation,member,parent,failed,note\n0,1,,False,a\n1,1,0,True,b\n")
    table = read_table(path)
    np.testing.assert_array_equal(table["parent"], [np.nan, 0.0])
    np.testing.assert_array_equal(table["failed"], [0.0, 1.0])
    assert table["note"].tolist() == ["a", "b"]
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(RunError, match="no header"):
        read_table(tmp_path / "empty.csv")


def test_decode_behavior_matches_velocity_r2(tmp_path):
    rng = np.random.default_rng(3)
    rates = rng.poisson(2.0, size=(30, 12, 5)).astype(float)
    behavior = rates @ rng.normal(size=(5, 2)) + rng.normal(0, 2.0, (30, 12, 2))
    behavior[3] = np.nan  # an unobserved trial
    fit, shown = np.arange(20), np.arange(20, 30)
    decoded, r2 = decode_behavior(rates, behavior, fit, shown)
    assert decoded.shape == (10, 12, 2)
    assert r2 == pytest.approx(
        velocity_r2(rates[fit], behavior[fit], rates[shown], behavior[shown])
    )


def lines_by_style(ax, style):
    return [line for line in ax.lines if line.get_linestyle() == style]


def test_hparam_trajectories_draw_each_copy_and_log_axes():
    table = read_rows(fake_generations())
    fig = plot.hparam_trajectories(table, list(HPARAMS))
    axes = {ax.get_title(): ax for ax in fig.axes}
    assert set(axes) == set(HPARAMS)
    assert axes["lr"].get_yscale() == "log" and axes["dropout"].get_yscale() == "linear"
    copies = [
        (g, m, p)
        for g, m, p in zip(table["generation"], table["member"], table["parent"], strict=True)
        if p != m
    ]
    assert len(copies) == 6  # members 2 and 3 in generations 1, 2, 3
    lr = axes["lr"]
    dashed = lines_by_style(lr, "--")
    assert len(dashed) == len(copies)
    for line, (g, m, p) in zip(dashed, copies, strict=True):
        parent_row = (table["generation"] == g - 1) & (table["member"] == p)
        child_row = (table["generation"] == g) & (table["member"] == m)
        np.testing.assert_allclose(line.get_xdata(), [g - 1, g])
        np.testing.assert_allclose(
            line.get_ydata(), [table["lr"][parent_row][0], table["lr"][child_row][0]]
        )
    # Own segments: 4 members x 3 steps, minus the 6 steps replaced by copies.
    assert len(lines_by_style(lr, "-")) == 4 * 3 - 6


def read_rows(rows: list[dict]) -> dict[str, np.ndarray]:
    """Columns of rows, numbers as floats (an independent reader for the plot tests)."""
    return {
        key: np.array([r[key] for r in rows], dtype=float if key != "status" else str)
        for key in rows[0]
    }


def test_metric_by_generation_best_and_median_lines():
    table = read_rows(fake_generations())
    table["metric"][table["generation"] == 2] = [0.5, 0.9, 0.7, 0.6]
    table["status"][0] = "failed"  # member 0, generation 0: left out
    ax = plot.metric_by_generation(table).axes[0]
    lines = {line.get_label(): line for line in ax.lines}
    ok = table["status"] != "failed"
    expected_best = [min(table["metric"][(table["generation"] == g) & ok]) for g in range(4)]
    np.testing.assert_allclose(lines["best"].get_ydata(), expected_best)
    np.testing.assert_allclose(lines["median"].get_ydata()[2], 0.65)
    assert len(lines["failed"].get_xdata()) == 1


def test_training_curves_group_nll_and_split_members():
    fig = plot.training_curves(read_table_rows(fake_history()))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss", "Reconstruction NLL", "KL penalties", "lr"]
    assert len(fig.axes[1].lines) == 2 * 2  # nll and valid_nll for two members
    assert fig.axes[3].get_yscale() == "linear"  # 0.9**14 spans less than two decades


def read_table_rows(rows: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def test_training_curves_skip_constant_hyperparameters():
    rows = [
        {"epoch": e, "loss": 1.0 / (e + 1), "dropout": 0.3, "cd_rate": 0.5 if e < 3 else 0.4}
        for e in range(6)
    ]
    titles = [ax.get_title() for ax in plot.training_curves(read_table_rows(rows)).axes]
    assert titles == ["loss", "cd_rate"]


def test_pca_project_matches_sklearn():
    from sklearn.decomposition import PCA

    x = np.random.default_rng(4).normal(size=(6, 30, 5)) * [4, 2, 1, 0.5, 0.1]
    projected, explained = plot.pca_project(x, 3)
    reference = PCA(3).fit(x.reshape(-1, 5))
    np.testing.assert_allclose(explained, reference.explained_variance_ratio_, rtol=1e-8)
    # Components are defined up to sign.
    ref = reference.transform(x.reshape(-1, 5))
    np.testing.assert_allclose(np.abs(projected.reshape(-1, 3)), np.abs(ref), atol=1e-8)


def test_rates_scatter_reports_rate_r2():
    rng = np.random.default_rng(5)
    truth = rng.uniform(0.1, 2.0, (5, 10, 4))
    rates = truth + rng.normal(0, 0.2, truth.shape).clip(-0.09)
    title = plot.rates_scatter(rates, truth, max_points=50).axes[0].get_title()
    assert title == f"Inferred vs true rates (R² = {rate_r2(truth, rates):.3f})"


def test_latent_trajectories_color_by_condition():
    factors = np.random.default_rng(6).normal(size=(6, 10, 4))
    fig = plot.latent_trajectories(factors, conditions=np.array([0, 1, 0, 1, 2, 2]))
    ax = fig.axes[0]
    traces = [line for line in ax.lines if len(line.get_xdata()) == 10]
    colors = [line.get_color() for line in traces]
    assert colors[0] == colors[2] and colors[0] != colors[1] and colors[4] == colors[5]
    assert len(plot.latent_trajectories(factors[..., :2]).axes) == 1  # no 3-D panel


# ---------------------------------------------------------------- browser screenshot
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_screenshot_of_report_is_not_blank(fit_run, tmp_path):
    from matplotlib.image import imread

    spec = importlib.util.spec_from_file_location(
        "screenshot_report", BENCHMARKS / "screenshot_report.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run_dir = fit_run[0]  # its report.html exists: the script screenshots it as it is
    png = tmp_path / "shot.png"
    assert module.main([str(run_dir), str(png), "--height", "1600"]) == 0
    image = imread(png)
    assert image.shape[:2] == (1600, 1280)
    assert image[..., :3].var() > 0.001
