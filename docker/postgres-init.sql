-- One database per K2 user of PostgreSQL; runs once, on the first start of the volume.
CREATE DATABASE iceberg_catalog OWNER k2;
CREATE DATABASE registry OWNER k2;
CREATE DATABASE airflow OWNER k2;
