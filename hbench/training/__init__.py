"""Training: the loop, negative sampling, run logs and restoring finished runs."""

import hbench.quiet_geoopt  # noqa: F401 - first, so that the trainer's `import geoopt` is silent
