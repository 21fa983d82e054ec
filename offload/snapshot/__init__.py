"""Stage 1 of a job's life, on the client: what the job needs.

``bundle``: the files (content-addressed, ignore rules, secret scanner), staged to the store and
materialized by the runner. ``deps``: the environment (what to install, and why), detected from
the notebook's imports without importing anything.
"""
