"""The build: carrying out the plan (stage "execute").

Stage: execute. Modules:

    session   one `storyc build`: compile, lock, recover, plan, consent, run, report
    executor  carries out the planner's decision for each take, in dependency order
    budget    the cap as a reservation; `--jobs` as tasks in flight at the provider
    effects   the executor's side effects: store, journal, lock file, readable names
    outcome   options, per-scene outcomes, the result (data)
    progress  the live view: terminal table, plain lines, JSON events; results on stdout
    faults    the test hook that kills a build at a named moment (STORYC_TEST_FAULT)
    cache     what a no-op build may skip (the previous compilation, the parsed lock file)
    fastpath  "nothing to do" answered from stat signatures before the compiler is imported
    team      the executor's link to the team store: pull, claim, follow or adopt, push
    status    `storyc status`: attempts in flight and their state on the provider
    webhook   `storyc webhook serve`: a call names a task; it is read again and collected

In: the command line's options, a compilation, the planner's `Plan`, a backend. Out:
objects, journal rows, `storyc.lock`, `renders/`, an exit code. I/O: all of it.
"""
