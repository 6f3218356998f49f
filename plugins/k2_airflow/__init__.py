"""K2's shared Airflow building blocks: Spark submission, bootstrap, cleanup, babysitter.

Airflow's plugin manager imports everything under ``plugins/`` inside the scheduler,
the dag-processor and the api-server. So every module here imports only the standard
library and K2's light contracts at import time; Kafka, registry, pyiceberg and the
Spark provider are imported inside the functions that use them. A broken or missing
dependency then fails one task with a clear message instead of a scheduler component.
"""
