"""Checks over the resolved model (stage "check").

Stage: after resolve, before lowering. Modules:

    rules   Kling Video O1's limits that hold for every target (E2xx/W2xx)
    graph   the scene dependency graph: order, cycles, cuts; text/DOT/Mermaid
    taint   which scenes the front end's errors touch (never lowered)

In: a `Project` (and syntax trees for taint). Out: diagnostics, a `Graph`. No I/O.
"""
