"""The local stack: the platform's real services as processes bound to 127.0.0.1.

PostgreSQL (Iceberg catalog, registry storage, Airflow metadata), Kafka in KRaft mode,
a Confluent-compatible schema registry (Apicurio), Spark configuration (local master,
or a standalone master + worker), and Airflow. State lives under ``$K2_HOME``:
``run/`` pid files, ``logs/``, ``data/``, ``warehouse/``, ``checkpoints/``.
"""
