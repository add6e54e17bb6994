"""Report building blocks for every stage: markdown tables, and matplotlib figures rendered
headless to PNG bytes for metadata and files."""

from __future__ import annotations

import base64
import io


def new_figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, dpi=90, **kwargs)


def png_bytes(fig) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def markdown_table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) if rows else "_none_"


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def png_markdown(png: bytes, alt: str) -> str:
    """A PNG inlined as markdown (Dagster's UI renders it in the metadata panel)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
