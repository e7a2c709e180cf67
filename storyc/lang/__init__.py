"""The language: `.story` text to syntax trees (stage "load").

Stage: first stage of the front end. Modules:

    ast            the syntax tree: typed nodes with a `Span` each, no Lark types
    lexicon        what the tokens are (patterns, keywords, nesting limit, long strings)
    parser         one Lark LALR parser (grammar/storyc.lark) with a hand-written lexer
    tokens         the token stream with comments and line breaks (formatter, editor)
    syntax_errors  what a syntax error says: expected, found, and what to do
    discovery      which entry file a path means, walking up like git
    loader         the entry file and every `include`, parsed once (`ParseCache`)

In: a path (project folder or entry file). Out: `Loaded` (trees, `SourceMap`, E0xx
diagnostics). I/O: reads story files only.
"""
