"""How metric and setting names read in tables and figures: `ndcg@10` → nDCG@10, `gamma` → γ.

One place for every renderer (tables in every format, plot axes and legends), so a paper's table and
its figures spell a metric the same way. Machine-readable outputs (CSV, JSON) keep the raw names.
"""

from __future__ import annotations

from hbench.protocols import EXTRA_METRICS

# Spelled as the recommender-systems literature spells them.
_METRICS = {"hr": "HR", "ndcg": "nDCG", "recall": "Recall", "precision": "Precision", "mrr": "MRR", "auc": "AUC",
            "map": "MAP"}
# Model options and training settings by their usual symbols or words.
_SETTINGS = {"gamma": "γ", "lambda_adj": "λ_adj", "alpha": "α", "c": "c", "lr": "learning rate", "dim": "dimension",
             "batch_size": "batch size", "negatives": "negatives per positive", "margin": "margin",
             "epochs": "epochs"}


def metric_name(metric: str) -> str:
    """`ndcg@10` → `nDCG@10`, `hr@10` → `HR@10`, `recall@20` → `Recall@20`, `mrr` → `MRR`, `auc` → `AUC`;
    a protocol's extra metric by what it computes on which candidates (`auc_sampled` → `AUC (sampled)`);
    a name it does not know is returned as it is."""
    base, at, cutoff = metric.partition("@")
    extra = EXTRA_METRICS.get(base.lower())
    if extra is not None:
        return f"{metric_name(extra.metric)} ({extra.candidates})" + at + cutoff
    return _METRICS.get(base.lower(), base) + at + cutoff


def setting_name(setting: str) -> str:
    """`gamma` → `γ`, `lambda_adj` → `λ_adj`, `batch_size` → `batch size`; unknown names unchanged."""
    return _SETTINGS.get(setting, setting)
