"""K2 operator tooling: the `k2` command line, the local stack, benchmarks, queries and the
pipeline harness. Tooling may import the core (`k2`) and the runtime packages; nothing
at runtime (workers, spark_jobs, dags, plugins) imports tooling."""
