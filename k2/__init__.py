"""K2 core: contracts, settings, catalog access, the stream-state contract and the clients
every layer shares (Kafka admin, schema registry, Spark-job paths). Imports nothing else
of the project."""
