"""The plan: what each scene needs, what it will cost, and why (stage "plan").

Stage: after lowering, before execution. Modules:

    keys     render keys: content digests of everything the model receives
    pricing  the price table (provider-facts §3): an `Estimate` per take
    address  where the provider is (flag, environment, setting) and what of it a key names
    planner  the one planner: per scene its status, reasons and cost, and per take how
             its output is obtained (reuse, fetch, follow, decide, render)

In: compiled requests, the lock file, the store, the journal. Out: a `Plan` (the
executor carries it out). I/O: reads store records and the journal (`planner` only);
`keys` and `pricing` are pure.
"""
