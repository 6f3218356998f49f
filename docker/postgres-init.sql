-- Runs once, on the first start of the volume, as the superuser `postgres` (whose password
-- only the postgres container has). One login role per K2 user of PostgreSQL, none of
-- them a superuser, each owning only its own database; nobody else may connect to it.
-- Passwords come from the compose secrets (psql reads them with a shell backquote, so
-- they appear on no command line).
\set catalog_password `cat "${K2_SECRETS_DIR:-/run/secrets}/pg_catalog_password"`
\set registry_password `cat "${K2_SECRETS_DIR:-/run/secrets}/pg_registry_password"`
\set airflow_password `cat "${K2_SECRETS_DIR:-/run/secrets}/pg_airflow_password"`

CREATE ROLE k2_catalog LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'catalog_password';
CREATE ROLE k2_registry LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'registry_password';
CREATE ROLE k2_airflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'airflow_password';

-- Iceberg catalog (Spark's JdbcCatalog and pyiceberg), schema registry storage, Airflow metadata.
CREATE DATABASE iceberg_catalog OWNER k2_catalog;
CREATE DATABASE registry OWNER k2_registry;
CREATE DATABASE airflow OWNER k2_airflow;
REVOKE ALL ON DATABASE iceberg_catalog, registry, airflow FROM PUBLIC;
