"""Administration of the platform's Kafka, registry and Iceberg objects.

Shared by the Airflow DAGs (through ``plugins/k2_airflow``) and usable from the CLI.
Every function takes its client as an argument, so tests can pass real or fake ones,
and reports what it did as plain data that a task log or summary can print.
"""
