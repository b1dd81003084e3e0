"""Figures of finished runs: `hbench plot sweep | norms | disk | training`.

    sweep      a metric against one varying setting (c, gamma, dim, lr...), mean and band over seeds
    norms      item distance from the origin against popularity (Spearman ρ), user/item distance histograms
    disk       users and items on the Poincaré disk (2-D directly, higher dimensions by a projection that
               keeps every point's distance from the origin)
    training   loss and validation metric per epoch, one line per run

The numbers behind each figure come from small functions (`embeddings`, `sweep`, `training`) that tests
check against independent computations; `figures` only draws them. matplotlib and torch are imported by
the modules that need them, never by `import hbench.reports.plots`.
"""
