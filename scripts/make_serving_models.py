"""Build the serving benchmark's models (benchmarks/serve.py): each trained or built here, offline, saved twice --
as a SageMaker ``model.tar.gz`` that ``artifact-tools serve`` reads and as an MLflow model of the same object.

    python scripts/make_serving_models.py OUT_DIR [forest|xgboost|text ...]

For each NAME it writes ``OUT_DIR/NAME/`` (the artifact's files, unpacked: what the framework's own load reads),
``OUT_DIR/NAME.tar.gz`` (that folder archived with members at the root, as SageMaker writes ``model.tar.gz``;
``make_samples.tar_folder``) and ``OUT_DIR/NAME-mlflow/`` (MLflow's own flavor ``save_model`` of the same object):

- ``forest``: a scikit-learn ``RandomForestClassifier`` (50 trees, depth 8) on 2,000 rows of 8 features;
  ``model.joblib`` (the SageMaker scikit-learn container's file name); ``mlflow.sklearn``.
- ``xgboost``: an XGBoost booster (``binary:logistic``, depth 6, 100 rounds) on the same data; ``xgboost-model``
  in UBJSON (the SageMaker XGBoost algorithm's file name); ``mlflow.xgboost``.
- ``text``: a DistilBERT-shaped sequence classifier (``DistilBertConfig``: 2 layers, width 128, 4 heads, 2 labels)
  with random weights, and a WordPiece tokenizer trained here with the ``tokenizers`` library on generated
  sentences (no Hugging Face hub: the network has none). ``save_pretrained`` of both, the layout of the SageMaker
  Hugging Face container (config.json, model.safetensors, tokenizer files at the root); MLflow gets the same
  ``text-classification`` pipeline through ``mlflow.transformers.save_model`` (pip requirements given, as
  MLflow's inference of them imports torchvision, which is not installed).

Frameworks are imported inside each builder only. ``texts(n)`` gives the benchmark's request texts (words of the
tokenizer's training sentences).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_samples  # noqa: E402

SEED = 11
FEATURES = 8


def _words(count: int = 3000, seed: int = SEED) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(count)]


def texts(n: int, seed: int = SEED + 1) -> list[str]:
    """``n`` sentences of 12-30 words drawn from the tokenizer's training vocabulary."""
    rng = random.Random(seed)
    words = _words()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(12, 30))) for _ in range(n)]


def _finish(out_dir: Path, name: str, folder: Path) -> dict:
    art = make_samples.tar_folder(folder, out_dir / f"{name}.tar.gz")
    return {"name": name, "artifact": art, "native": folder, "mlflow": out_dir / f"{name}-mlflow"}


def build_forest(out_dir: Path) -> dict:
    import joblib
    import mlflow.sklearn
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_samples.make_data(n=2000, d=FEATURES, seed=SEED)
    forest = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(X, y)
    folder = out_dir / "forest"
    folder.mkdir(parents=True)
    joblib.dump(forest, folder / "model.joblib")
    mlflow.sklearn.save_model(forest, str(out_dir / "forest-mlflow"),
                              skops_trusted_types=["sklearn.tree._tree.Tree"])
    return _finish(out_dir, "forest", folder)


def build_xgboost(out_dir: Path) -> dict:
    import mlflow.xgboost
    import xgboost as xgb

    X, y = make_samples.make_data(n=2000, d=FEATURES, seed=SEED)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 6}, xgb.DMatrix(X, label=y), 100)
    folder = out_dir / "xgboost"
    folder.mkdir(parents=True)
    (folder / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
    mlflow.xgboost.save_model(booster, str(out_dir / "xgboost-mlflow"))
    return _finish(out_dir, "xgboost", folder)


def build_text(out_dir: Path) -> dict:
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, PreTrainedTokenizerFast, pipeline

    rng = random.Random(SEED)
    words = _words()
    corpus = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 40))) for _ in range(3000)]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=4000, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                        model_max_length=128, model_input_names=["input_ids", "attention_mask"])
    torch.manual_seed(SEED)
    config = DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=128, n_layers=2, n_heads=4, hidden_dim=512,
                              max_position_embeddings=128, num_labels=2, id2label={0: "NEGATIVE", 1: "POSITIVE"},
                              label2id={"NEGATIVE": 0, "POSITIVE": 1})
    model = DistilBertForSequenceClassification(config).eval()
    folder = out_dir / "text"
    folder.mkdir(parents=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    import mlflow.transformers

    pipe = pipeline("text-classification", model=model, tokenizer=tokenizer, framework="pt")
    mlflow.transformers.save_model(transformers_model=pipe, path=str(out_dir / "text-mlflow"),
                                   pip_requirements=["transformers", "torch"])
    return _finish(out_dir, "text", folder)


BUILDERS = {"forest": build_forest, "xgboost": build_xgboost, "text": build_text}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name in argv[1:] or list(BUILDERS):
        built = BUILDERS[name](out)
        print(f"built {built['artifact']} and {built['mlflow']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
