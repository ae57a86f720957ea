"""A LightGBM ``Booster`` saved with ``pickle`` (``model.pkl``), read as data: the model text inside, never unpickled.

``lightgbm.basic.Booster.__getstate__`` (microsoft/LightGBM ``python-package/lightgbm/basic.py``) returns the
instance ``__dict__`` with the native handle replaced by the model text (``model_to_string()``) under ``_handle``
(LightGBM >= 4; ``handle`` before), so the pickle is ``Booster`` created by NEWOBJ / ``copyreg`` and a BUILD
state dict holding that string. The text is LightGBM's own model format (formats/lightgbm.py), which
``lightgbm.Booster(model_str=...)`` loads without running anything from the file.
"""

from __future__ import annotations

from .pickle_data import decompress_joblib, looks_like_pickle, read_pickle

BOOSTER = "lightgbm.basic.Booster"
# Everything else a pickled Booster names: its state's containers.
_COMPANIONS = frozenset({BOOSTER, "collections.defaultdict", "collections.OrderedDict", "builtins.dict",
                         "builtins.list", "copyreg._reconstructor", "builtins.object"})


def model_text(data: bytes, limit: int = 4 << 30) -> bytes | None:
    """The LightGBM model text of a pickled ``Booster`` (plain or joblib-compressed), or None when the pickle is
    anything else or names any class beyond a Booster's own state."""
    if not looks_like_pickle(data[:64]):
        data = decompress_joblib(data, limit)
        if not looks_like_pickle(data[:64]):
            return None
    try:
        pk = read_pickle(data)
    except Exception:  # noqa: BLE001 - any damage means "not a pickled Booster"; the pickle audit reports it
        return None
    if not {str(g) for g in pk.globals} <= _COMPANIONS or str(getattr(pk.value, "func", "")) != BOOSTER:
        if not (str(getattr(pk.value, "func", "")) == "copyreg._reconstructor" and pk.value.args
                and str(pk.value.args[0]) == BOOSTER and {str(g) for g in pk.globals} <= _COMPANIONS):
            return None
    state = getattr(pk.value, "state", None)
    if not isinstance(state, dict):
        return None
    text = state.get("_handle", state.get("handle"))
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str) or not text.startswith("tree"):
        return None
    return text.encode("utf-8")
