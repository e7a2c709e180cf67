"""Media: what images and videos are, and the one place ffmpeg runs.

Stage: a library under several stages. Modules:

    info      header facts (kind, size, duration, fps, audio) in pure Python; used by the resolver
    ffmpeg    probing, frame extraction, preview animatics, test media (imageio-ffmpeg's binary)
    caption   the preview's caption overlays (bitmap glyphs, no system fonts)
    mp4       track facts from an MP4's headers in pure Python (frames, parameter sets)
    edit      cuts: clip facts, normalised clips, crossfades, slates, joins, measures

In: paths and numbers. Out: `MediaInfo`, files written atomically. I/O: `info` reads
headers; `ffmpeg` starts processes; the resolver may import only `info`.
"""
