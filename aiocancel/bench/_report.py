"""The bench's result rows and their two renderings: the terminal table and
the Markdown table for the README."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence


@dataclass
class Row:
    """One line of the table.

    `value` is a median in `unit` (None: not measured, `note` says why);
    `ratio` compares it with the row named in `versus`, measured side by side
    (median of per-round ratios, `spread` their interquartile range); `target`
    is the ratio the issue asks for (met when ratio <= target)."""

    key: str
    section: str
    case: str
    value: float | None
    unit: str
    detail: str = ""
    ratio: float | None = None
    versus: str = ""
    spread: tuple[float, float] | None = None
    target: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        if self.target is None or self.ratio is None or math.isnan(self.ratio):
            return None
        return self.ratio <= self.target

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["met"] = self.met
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Row":
        fields = {k: v for k, v in data.items() if k != "met"}
        if fields.get("spread") is not None:
            fields["spread"] = tuple(fields["spread"])
        return cls(**fields)


def _num(value: float) -> str:
    if value != value:
        return "nan"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cells(row: Row) -> list[str]:
    value = "n/a" if row.value is None else f"{_num(row.value)} {row.unit}"
    ratio = ""
    if row.ratio is not None:
        ratio = f"{row.ratio:.2f}x {row.versus}"
        if row.spread is not None:
            ratio += f" [{row.spread[0]:.2f}-{row.spread[1]:.2f}]"
    target = ""
    if row.target is not None:
        verdict = {True: "met", False: "MISSED", None: ""}[row.met]
        target = f"<= {row.target:g}x {verdict}".rstrip()
    detail = "; ".join(x for x in (row.detail, row.note) if x)
    return [row.case, value, ratio, target, detail]


HEADERS = ["case", "median", "ratio [IQR]", "target", "detail"]


def render_text(rows: Sequence[Row], titles: dict[str, str]) -> str:
    """A fixed-width table, one block per section, for the terminal."""
    cells = [_cells(r) for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells])
              for i, h in enumerate(HEADERS[:-1])]
    def line(parts: list[str]) -> str:
        return "  ".join([p.ljust(w) for p, w in zip(parts, widths)] + [parts[-1]]).rstrip()
    out = ["    " + line(HEADERS)]
    section = None
    for row, c in zip(rows, cells):
        if row.section != section:
            section = row.section
            out.append(f"{section}  {titles.get(section, '')}")
        out.append("    " + line(c))
    return "\n".join(out)


def render_markdown(rows: Sequence[Row], titles: dict[str, str]) -> str:
    """The same table in Markdown (README "Performance" section)."""
    out = ["| | " + " | ".join(HEADERS) + " |", "|---" * (len(HEADERS) + 1) + "|"]
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            out.append(f"| **{section}** | *{titles.get(section, '')}* |" + " |" * (len(HEADERS) - 1))
        out.append("| | " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |")
    return "\n".join(out)
