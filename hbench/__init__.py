"""hbench: benchmarking hyperbolic recommenders."""

import os

# OpenMP threads that spin while waiting make every small tensor operation 10-50x slower on small
# virtual machines (measured: a HyperML forward pass 292 ms vs 3.6 ms on 2 vCPUs). Passive waiting costs
# nothing measurable on larger machines. It must be set before torch starts its OpenMP runtime, so it
# is set here, and only when the user has not chosen a policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
