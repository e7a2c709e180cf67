"""storyc.provider: talking to inference.sh, and a loopback stand-in for it.

Stage: execute (the network edge). Modules:

    client        ProviderClient: submit, follow, get, cancel; the retry policy
    follow        waiting for a task: status polls or the NDJSON stream
    transfer      uploads (once per digest) and resumable downloads
    uploads       UploadRegistry: digest → URI, persisted across builds
    task          Task and Status (current and legacy numbering)
    errors        the exception hierarchy (drawn in its docstring)
    loopback      the offline provider: serve(), LoopbackServer
    loopback_tasks, loopback_media, schema, faults, httpserver   its parts

httpx is imported only inside this package (see tests/test_layers.py).
"""
