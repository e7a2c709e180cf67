"""The film: every cut assembled into one video, and exported for editors (stage "film").

Stage: after the backends (scenes are rendered), before the build session that calls it.
Modules:

    spec      what a cut is, as plain data: clips, trims, crossfades, its aspect (pure)
    timeline  where each clip sits in a cut, to the frame; running time (pure)
    sources   which video stands in for each scene: its render, its preview, or a slate
    assemble  the cut's MP4: stream copy or normalised clips, cached in the store
    export    numbered copies of the clips and the cut as OpenTimelineIO, EDL, FCP XML

In: cut specs (from the resolved project), the store, the lock file's picked takes.
Out: `renders/<cut>.mp4` (a link into the store), records in `.storyc/`, export folders.
I/O: ffmpeg through `storyc.media.edit`; the store; `renders/`; the export folder.
"""
