"""storyc.provider: talking to inference.sh, and a loopback stand-in for it.

Stage: execute (the network edge). In: app names, input JSON, local files, task ids.
Out: tasks, provider file URIs, downloaded bytes. I/O: HTTP (httpx). Modules:

    client        ProviderClient: submit, follow, get, cancel; the retry policy
    follow        waiting for a task: status polls or the NDJSON stream
    status        many tasks' statuses at once: batched, paced under the read limit
    transfer      uploads (once per digest) and resumable downloads
    uploads       UploadRegistry: digest → URI, persisted across builds
    task          Task and Status (current and legacy numbering)
    errors        the exception hierarchy (drawn in its docstring)
    api           ProviderAPI: the client as follow and transfer see it (a protocol)
    loopback/     the offline provider: serve(), LoopbackServer; its server, tasks,
                  media, http, schema and faults modules

httpx is imported only inside this package (see tests/test_layers.py).
"""
