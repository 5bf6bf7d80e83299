"""What every experiment script writes: a JSON record (command, machine, load, wall time, results) and a PNG plot.

Both are written atomically, so an interrupted experiment leaves its previous files intact.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import platform
import shlex
import sys
import time
from typing import Mapping, Sequence

from zerogr_jax.atomic_files import atomic_open, atomic_write_json

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def record(what: str, results, *, started: float, extra: Mapping | None = None) -> dict:
    """The JSON body: the exact command, when, on what machine and under what load, plus `results`."""
    return {"what": what, "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "processor": platform.processor() or platform.machine()},
            "load_average_at_end": list(os.getloadavg()), "wall_s": round(time.time() - started, 1),
            **(dict(extra) if extra else {}), "results": results}


def write(name: str, body: dict) -> pathlib.Path:
    path = RESULTS / f"{name}.json"
    atomic_write_json(path, body)
    return path


def grouped_bars(name: str, groups: Sequence[str], series: Mapping[str, Sequence[float]], *, ylabel: str,
                 title: str) -> pathlib.Path:
    """One bar per (group, series): e.g. groups = collections, series = systems. Saved as results/<name>.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(groups))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) + 2), 3.6))
    for i, (label, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return path
