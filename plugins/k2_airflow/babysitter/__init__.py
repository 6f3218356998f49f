"""The streaming babysitter: observe each stream, decide, act (start, restart, leave).

Design (one runner DAG per stream, triggered by the babysitter):

- ``stream_<name>`` DAGs run one long SparkSubmitOperator task each (no timeout, no
  retries, ``max_active_runs=1``). The stream's log is that task's log, in the UI.
- ``streaming_babysitter`` runs every few minutes. Per stream a ``watch_<name>`` task
  reads the run lock holder, ``progress.json`` and the source's newest data
  (:mod:`.probes`), decides (:mod:`.decision`, pure), and either leaves the stream
  alone or kills it (stalled) and branches to ``start_<name>``, which triggers the
  runner DAG. The stream's own run lock guarantees a single copy even if two runs race.
"""
