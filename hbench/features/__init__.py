"""Image features of items: pretrained encoders (`encoders`), the cached, resumable extraction engine
(`extract`) and the features of a prepared dataset (`dataset`).

    from hbench.features.dataset import dataset_features, load_features
    artifact = dataset_features(dataset, "efficientnet_lite0")   # <dataset>/features/<encoder>-<key>/
    features = load_features(dataset)                              # float32 [n_items, dim]

Importing the package imports none of them; `encoders` (hence `dataset`) imports torch, and `extract`
imports torch only when it encodes images.
"""
