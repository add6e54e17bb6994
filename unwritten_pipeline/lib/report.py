"""Matplotlib on a headless machine: figures rendered to PNG bytes for metadata and files."""

from __future__ import annotations

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
