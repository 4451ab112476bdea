"""``--plot``: P3's latency distributions and P4's growth with N, drawn
with matplotlib (optional extra: pip install 'aiocancel[plot]')."""
from __future__ import annotations

from typing import Sequence

from ._report import Row


def draw(rows: Sequence[Row], path: str) -> None:
    """Write a PNG with one panel per section that has data."""
    import matplotlib
    matplotlib.use("Agg")          # files only: no display needed
    import matplotlib.pyplot as plt

    p3 = [r for r in rows if r.section == "P3" and r.extra.get("samples_us")]
    p4 = [r for r in rows if r.section == "P4" and "n" in r.extra]
    panels = [p for p in (p3, p4) if p]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(7 * max(1, len(panels)), 5),
                             squeeze=False)
    ax_iter = iter(axes[0])
    if p3:
        ax = next(ax_iter)
        colors: dict[str, str] = {}
        for row in p3:
            data = sorted(row.extra["samples_us"])
            ys = [(i + 1) / len(data) for i in range(len(data))]
            who = row.case.rsplit(":", 1)[0]      # cancel and natural: one colour
            colors.setdefault(who, f"C{len(colors)}")
            ax.step(data, ys, where="post", label=row.case, color=colors[who],
                    linestyle="-" if row.case.endswith("cancel") else "--")
        ax.set_xscale("log")
        ax.set_xlabel("latency (us), log scale")
        ax.set_ylabel("fraction of tries")
        ax.set_title("P3: task.cancel() (or os.write) -> task resumes")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    if p4:
        ax = next(ax_iter)
        series: dict[str, list[tuple[int, float]]] = {}
        for row in p4:
            name = row.case.split(",")[0].split(" (")[0]
            if "STILL BLOCKED" in row.detail:
                name += " (tasks released, threads stay blocked)"
            series.setdefault(name, []).append((row.extra["n"], row.value or 0.0))
        for name, points in series.items():
            points.sort()
            ax.plot([n for n, _ in points], [v for _, v in points], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N tasks cancelled at once")
        ax.set_ylabel("ms until every task resumed")
        ax.set_title("P4: cancel storm")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
