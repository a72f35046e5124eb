"""`factory report`: PNG pictures of the agreement matrix and of win rates with their intervals, and
a Markdown page (report.md) linking them with the numbers as tables."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from factory.errors import FactoryError  # noqa: E402
from factory.store import Store  # noqa: E402


def _latest(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return frame.sort("created_at").group_by(keys, maintain_order=True).last()


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def agreement_picture(frame: pl.DataFrame, strategy: str, path: Path) -> None:
    """Heatmap of Cohen's kappa between every two raters (humans' majority label included)."""
    cells = frame.filter((pl.col("strategy") == strategy) & (pl.col("metric") == "cohen_kappa")
                         & (pl.col("reference") != "panel"))
    names = sorted(set(cells["evaluator"].to_list()) | set(cells["reference"].to_list()),
                   key=lambda n: (n != "human", n))
    matrix = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(matrix, 1.0)
    for row in cells.iter_rows(named=True):
        if row["value"] is not None:
            i, j = names.index(row["evaluator"]), names.index(row["reference"])
            matrix[i, j] = matrix[j, i] = row["value"]
    size = 2.5 + 0.9 * len(names)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu")
    labels = [_short(n) for n in names]
    axes.set_xticks(range(len(names)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), labels)
    for i, j in np.ndindex(matrix.shape):
        if not np.isnan(matrix[i, j]):
            axes.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8)
    axes.set_title(f"Cohen's kappa, {strategy} labels")
    figure.colorbar(image, ax=axes, shrink=0.8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def win_rate_picture(frame: pl.DataFrame, path: Path) -> None:
    """Raw and length-controlled win rate of A against B per evaluator, with bootstrap intervals."""
    rows = frame.to_dicts()
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.7 * len(rows)))
    for k, row in enumerate(rows):
        for offset, (key, low, high, colour, label) in enumerate((
                ("win_rate", "win_rate_ci_low", "win_rate_ci_high", "tab:blue", "raw"),
                ("lc_win_rate", "lc_ci_low", "lc_ci_high", "tab:orange", "length-controlled"))):
            value = row[key]
            if value is None:
                continue
            y = k + (offset - 0.5) * 0.3
            error = None
            if row[low] is not None and row[high] is not None:
                error = [[max(value - row[low], 0)], [max(row[high] - value, 0)]]
            axes.errorbar(value * 100, y, xerr=None if error is None else np.array(error) * 100, fmt="o",
                          color=colour, capsize=3, label=label if k == 0 else None)
    axes.axvline(50, color="grey", linestyle="--", linewidth=1)
    axes.set_yticks(range(len(rows)), [f"{_short(r['configuration_a'])} vs {_short(r['configuration_b'])}\n"
                                       f"({_short(r['evaluator'], 36)}, n={r['n']})" for r in rows], fontsize=8)
    axes.set_xlim(0, 100)
    axes.set_xlabel("win rate of A against B (%)")
    axes.invert_yaxis()
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _table(frame: pl.DataFrame, columns: list[str]) -> str:
    def cell(value: object) -> str:
        return "" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in frame.iter_rows(named=True)]
    return "\n".join(lines)


def write_report(store: Store, out: str | Path) -> list[Path]:
    """Write the PNGs and report.md into `out`; returns the files written."""
    out = Path(out)
    has_agreement, has_win_rates = store.has("agreement"), store.has("win_rates")
    if not (has_agreement or has_win_rates):
        raise FactoryError(f"nothing to report in {store.location}: no 'agreement' (factory calibrate) "
                           "and no 'win_rates' (stage win_rates) data set")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    page = ["# Evaluation report", "", f"Store: `{store.location}`", ""]
    if has_win_rates:
        rates = _latest(store.sql("SELECT * FROM win_rates WHERE error IS NULL"),
                        ["evaluator", "configuration_a", "configuration_b"])
        path = out / "win_rates.png"
        win_rate_picture(rates, path)
        written.append(path)
        page += ["## Win rates", "", "Raw: ties count half. Length-controlled: a logistic GLM with "
                 "tanh(length difference / std), predicted with the length term at zero.", "",
                 f"![win rates]({path.name})", "",
                 _table(rates, ["evaluator", "configuration_a", "configuration_b", "n", "wins", "losses", "ties",
                                "win_rate", "win_rate_ci_low", "win_rate_ci_high", "lc_win_rate", "lc_ci_low",
                                "lc_ci_high"]), ""]
    if has_agreement:
        agreement = store.sql("SELECT * FROM agreement WHERE run_id = (SELECT max(run_id) FROM agreement)")
        page += ["## Agreement", ""]
        for strategy in sorted(set(agreement["strategy"].to_list())):
            path = out / f"agreement_{strategy}.png"
            agreement_picture(agreement, strategy, path)
            written.append(path)
            ranked = agreement.filter((pl.col("strategy") == strategy) & pl.col("reference").is_in(["human", "panel"]))
            page += [f"### {strategy}", "", f"![agreement, {strategy}]({path.name})", "",
                     _table(ranked.sort(["metric", "rank"], nulls_last=True),
                            ["rank", "evaluator", "reference", "metric", "value", "ci_low", "ci_high",
                             "percent_agreement", "n_items", "n_raters"]), ""]
    report = out / "report.md"
    report.write_text("\n".join(page))
    written.append(report)
    return written
