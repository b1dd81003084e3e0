"""Finding a prepared dataset by name or directory: what training, evaluation and the commands load.

Beside the store (`hbench.datasets.store`, the artifact itself) and apart from preparation: loading needs
only the prepared directory, and the catalogue's names to say what to prepare when it is missing.
"""

from __future__ import annotations

from pathlib import Path

from hbench.datasets.catalog import dataset_names
from hbench.datasets.store import MANIFEST, PreparedDataset, load_prepared
from hbench.errors import HBenchError, closest_names
from hbench.paths import prepared_dir


def load_dataset(ref: str | Path, home: Path | None = None) -> PreparedDataset:
    """A prepared dataset by directory path, or by name under the prepared-data folder of `home`."""
    path = Path(ref).expanduser()
    if (path / MANIFEST).is_file():
        return load_prepared(path)
    text = str(ref)
    if isinstance(ref, Path) or "/" in text or "\\" in text:
        raise HBenchError(f"{path} is not a prepared dataset (no {MANIFEST}); run `hbench prepare NAME` first")
    target = prepared_dir(text, home)
    if not (target / MANIFEST).is_file():
        registered = dataset_names()
        if text in registered:
            raise HBenchError(f"dataset {text!r} is not prepared (nothing at {target}); run `hbench prepare {text}` first")
        prepared = {p.parent.name for p in target.parent.glob(f"*/{MANIFEST}")}
        guesses = closest_names(text, registered | prepared)
        hint = f"did you mean {' or '.join(guesses)}?" if guesses else "`hbench datasets` lists the registered ones"
        raise HBenchError(f"no dataset {text!r}, prepared or registered; {hint}")
    return load_prepared(target)
