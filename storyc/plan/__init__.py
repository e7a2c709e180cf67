"""The plan: what each scene needs, what it will cost, and why (stage "plan").

Stage: after lowering, before execution. Modules:

    keys     render keys: content digests of everything the model receives
    pricing  the price table (provider-facts §3): an `Estimate` per take
    planner  per scene: up to date / will render / blocked / waiting, takes, keys, cost

In: a `Compilation`, the lock file, the store, the journal. Out: a `Plan`. I/O: reads
store records (`planner` only); `keys` and `pricing` are pure.
"""
