"""The fidelity tables' row cache: each row evaluated once, written atomically under out/eval/."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def row_path(out: Path, key: str, episodes: int) -> Path:
    """Where row `key`'s evaluation over `episodes` episodes is cached."""
    return out / "eval" / f"{key.replace(':', '_')}_e{episodes}.json"


def cache_rows(out: Path, episodes: int, keys: list[str],
               evaluate: Callable[[str], dict[str, tuple[dict[str, np.ndarray], Any]]]) -> None:
    """Evaluate each key whose cached JSON is missing (name -> (metric -> per-seed scores, training)) and
    write it."""
    (out / "eval").mkdir(parents=True, exist_ok=True)
    for key in keys:
        path = row_path(out, key, episodes)
        if path.exists():
            continue
        rows = evaluate(key)
        if not rows:
            print(f"({key}: nothing to evaluate under {out}; skipped)")
            continue
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({n: {"training": t, **{m: v.tolist() for m, v in sc.items()}}
                                   for n, (sc, t) in rows.items()}))
        tmp.replace(path)
