"""geoopt, imported without torch's `torch.jit.script` FutureWarning.

geoopt decorates some functions with `torch.jit.script` at import, which newer torch deprecates with a
FutureWarning on every import. The warning is geoopt's to fix, not the user's to see, so hbench's packages
that use geoopt import it through this module first (package imports run before their modules'), with
the warning silenced for that import only: no process-wide filter is left behind.
"""

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    import geoopt  # noqa: F401
