"""Editor tooling: the formatter (`storyc fmt`) and the language server (`storyc lsp`).

Stage: editor, after watch and before the command line. Modules:

    fmt        one canonical layout, from the token stream (every comment kept in place)
    index      what a project declares and where each name is used (definitions, references)
    complete   what may be written at a place (from the token stream of a half-typed file)
    positions  offsets and spans to LSP positions in the negotiated encoding
    project    one project as the server holds it (caches, the last check)
    hover      what the server shows over a name (prompt as sent, cost, build state, ...)
    lsp        the language server over stdio (pygls): diagnostics, hover, definitions,
               references, completion, rename, symbols, formatting, quick fixes

In: story text (from disk or an editor's unsaved buffers). Out: formatted text, LSP
messages. I/O: `fmt` is pure (the command line writes files); the language server reads
the project through the compiler and the build state, and talks over stdin/stdout.
"""
