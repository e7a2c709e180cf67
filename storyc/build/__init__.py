"""The build: carrying out the plan (stage "execute").

Stage: execute. Modules:

    session   one `storyc build`: compile, lock, plan, consent, budget, run, report
    executor  scenes in dependency order, takes, the journal's transitions, never paying twice
    effects   the executor's side effects: store, journal, lock file, readable names
    outcome   options, per-scene outcomes, the result (data)
    progress  the live view: terminal table, plain lines, JSON events
    cache     what a no-op build may skip (the previous compilation, the parsed lock file)
    fastpath  "nothing to do" answered from stat signatures before the compiler is imported

In: the command line's options, a compilation, a backend. Out: objects, journal rows,
`storyc.lock`, `renders/`, an exit code. I/O: all of it.
"""
