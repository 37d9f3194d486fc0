"""Plain-text tables for the terminal (no dependency)."""

from __future__ import annotations


def format_table(headers: list[str], rows: list[list[str]], max_width: int = 60) -> str:
    """``rows`` under ``headers`` as aligned plain text, cells clipped at ``max_width``."""
    def clip(cell: str) -> str:
        cell = str(cell)
        return cell if len(cell) <= max_width else cell[: max_width - 1] + "…"

    rows = [[clip(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join([line, rule, *body])
