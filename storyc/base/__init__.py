"""Foundation: what every stage shares and nothing else.

Stage: below all stages. Modules:

    diagnostics   located, coded messages (`Span`, `Diagnostic`, `Diagnostics`) and their one renderer
    hashing       content digests ("sha256:…"), canonical JSON, the stat-keyed `DigestCache`
    fsio          atomic whole-file writes and stat signatures (every store, cache and record)
    reading       reading a file a story names: regular files only, bounded in size
    terminal      whether output may be styled (NO_COLOR), for plain and rich output alike
    exits         `ExitCode`, what every command returns
    memory        keeping a compilation out of the cyclic collector's walks (`settle`)

In: values, paths. Out: values, digests, files written whole. I/O: `hashing` and `reading`
read files, `fsio` writes and stats them; `terminal` reads the environment;
`diagnostics` and `exits` do none.
"""
