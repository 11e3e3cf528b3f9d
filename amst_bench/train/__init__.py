"""Stage 2: training one run under the protocol (the method interface and its hooks, the one
trainer loop, models, a run's identity, environment)."""
