"""Obtaining raw files: offline mirror first, then a verified, resumable download.

CONTRACT (implemented by the download work package):

    fetch_raw_files(spec: DatasetSpec, dest: Path, sources: list[Path], feedback: Feedback) -> dict[str, Path]

returns, for every name the dataset's reader needs (each RawFile.name, and for archives each member path
in RawFile.members, keyed by the member's base name), a local path to verified bytes.
"""
