-- First start of the compose Postgres only (docker-entrypoint-initdb.d): the service's own role and database.
-- The `postgres` superuser and the `test` database that `make test` uses come from POSTGRES_USER / POSTGRES_DB.
CREATE ROLE real LOGIN PASSWORD 'real';
CREATE DATABASE real OWNER real;
