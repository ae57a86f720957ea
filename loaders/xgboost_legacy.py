"""Former home of the XGBoost model reader, kept so existing imports keep working.

The reader is :mod:`artifact_tools.formats.xgboost` (framework-free core); building a live Booster is
:func:`loaders.xgboost.load_booster`. ``convert_file`` stays here until the CLI writes through the
project's one atomic-publish helper (``exporters/_atomic.py``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from artifact_tools.errors import NotLoadable
from artifact_tools.formats.xgboost import (  # noqa: F401
    ERAS,
    Forest,
    LegacyModel,
    Tree,
    checked_bytes,
    convert,
    detect_era,
    facts,
    read_model,
    to_json_document,
)


def load_booster(data: bytes) -> tuple[Any, dict]:
    """See :func:`loaders.xgboost.load_booster`."""
    from loaders.xgboost import load_booster as load

    return load(data)


def convert_file(data: bytes, out_path: str | os.PathLike) -> dict:
    """Write any XGBoost model file as a current ``.json`` or ``.ubj`` model, atomically (a temporary
    file in the same folder, then ``os.replace``); returns the model's facts."""
    out = Path(out_path)
    suffix = out.suffix.lower()
    if suffix not in (".json", ".ubj"):
        raise NotLoadable(f"the output name must end in .json or .ubj, not {out.name!r}")
    payload, found = convert(data, suffix[1:])
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a new file's mode
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return found
