"""What a project keeps on disk between builds (stage "state").

Stage: below the planner and the executor. Modules:

    store        the content-addressed store under `.storyc/`: objects, render and derived records
    gc           removing what nothing references
    journal      SQLite record of every paid attempt
    lockfile     `storyc.lock`: what was rendered from what, for git
    projectlock  one build at a time per project (`.storyc/build.lock`)

In: bytes, records, keys. Out: objects, records, the lock file. I/O: all of it under
the project (atomic writes through `storyc.base.fsio`); no network.
"""
