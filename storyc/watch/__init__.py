"""Watch mode: re-check and re-build on save (stage "execute", around the build).

Stage: the outer loop. Modules:

    watcher  watchfiles on the story files, assets and folders; debounced change sets
    session  one watch run: the loop, its states, its view
    replan   incremental re-planning after a change
    view     what watch prints
    wiring   the loop connected to the compiler, planner and executor

In: a project folder. Out: diagnostics and builds on every save. I/O: file events,
everything a build does.
"""
