"""The resolver: syntax trees to the project model (stage "resolve").

Stage: second stage of the front end. Modules:

    resolver    `resolve(loaded, diags, digests=, targets=) -> Project`: names, layers, assets, cuts
    context     what the resolver's parts share (name table, layers, line index)
    scene       one scene's settings and inputs
    prompt      one scene's prompt: template, @mentions, the `Scene` value
    values      which settings exist where, and plain values read from syntax
    files       media files and URLs named in a story, checked and hashed
    templating  sandboxed Jinja2 for prompts
    model       the project model (`Project`, `Scene`, …) and the model's limits

In: `Loaded`. Out: `Project` plus E1xx/W1xx diagnostics. I/O: stats, headers and
digests of the files a story names (through `files`), nothing else.
"""
