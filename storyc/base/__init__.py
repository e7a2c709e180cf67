"""Foundation: what every stage shares and nothing else.

Stage: below all stages. Modules:

    diagnostics   located, coded messages (`Span`, `Diagnostic`, `Diagnostics`) and their one renderer
    hashing       content digests ("sha256:…"), canonical JSON, the stat-keyed `DigestCache`
    fsio          atomic whole-file writes and stat signatures (every store, cache and record)
    exits         `ExitCode`, what every command returns

In: values, paths. Out: values, digests, files written whole. I/O: `hashing` reads files,
`fsio` writes and stats them; `diagnostics` and `exits` do none.
"""
