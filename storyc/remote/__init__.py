"""The team store: renders shared between machines on S3-compatible object storage.

Stage: remote (after plan, before provider). In: render keys and finished renders from
the local store (`storyc.state.store`); the `remote` project setting or `STORYC_REMOTE`.
Out: which keys the team already has, renders pulled into `.storyc/` (verified), renders
pushed, and claims that make one machine the payer for each request. I/O: the network,
through boto3 (`storyc.remote.client`, the only module that imports it), and the local
store.

Modules: `config` (the remote URL), `client` (boto3, errors mapped), `layout` (names and
records), `claims` (one payer per request), `team` (look-up, pull, push), `planning` (the
plan made in waves of batched look-ups).
"""
