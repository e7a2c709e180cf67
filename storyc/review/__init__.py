"""The storyboard and review page: `renders/board.html`, to see the film before paying.

Stage: review (after build, before watch). Modules:

    thumbs  thumbnails of outputs and inputs, made once and kept in the store by content
    board   what the page shows: a card per scene from the compilation, plan, lock and store
    since   review mode: the project as of a git revision, and what changed since
    page    the HTML itself (pure: data in, text out)
    serve   an optional 127.0.0.1 server that reloads the page when it is rewritten

In: a compiled project, its plan, `storyc.lock`, the store, optionally a git revision.
Out: `renders/board.html` and its images in `renders/board_files/`. I/O: reads the store
and (review mode) git; runs ffmpeg through `storyc.media.ffmpeg` for new thumbnails;
writes under `renders/` and new thumbnail objects into the store.
"""
