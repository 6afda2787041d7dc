#!/usr/bin/env bash
# One least-privilege role per Cradle service, owning that service's database and nothing else: no
# superuser, no CREATEDB or CREATEROLE, no CONNECT on the other services' databases. Each role's
# password is read from the file $CRADLE_DB_PASSWORD_DIR/postgres-<database>-password (compose
# secrets, mounted under /run/secrets). The postgres image runs every script in
# /docker-entrypoint-initdb.d once, when it initialises an empty data volume (over the local socket,
# as the superuser); on later starts it is skipped. Run it again by hand (as the superuser) to add a
# database or to set a changed password from its file: it creates what is missing and changes nothing
# else. psql's usual variables (PGHOST, PGPORT, PGUSER) say where, when not run by the image.
set -Eeuo pipefail

CRADLE_DATABASES="${CRADLE_DATABASES:-gateway registry workforce monitoring guidance delivery}"
CRADLE_DB_PASSWORD_DIR="${CRADLE_DB_PASSWORD_DIR:-/run/secrets}"
superuser="${POSTGRES_USER:-${PGUSER:-postgres}}"

for db in ${CRADLE_DATABASES}; do
    password_file="${CRADLE_DB_PASSWORD_DIR}/postgres-${db}-password"
    if [[ ! -r "${password_file}" ]]; then
        echo "init-databases: cannot read ${password_file} (the ${db} role's password)" >&2
        exit 1
    fi
    echo "init-databases: role and database ${db}"
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "${superuser}" \
        --dbname "${POSTGRES_DB:-postgres}" -v db="${db}" -v password_file="${password_file}" <<'SQL'
-- Read by psql itself, so the password is on no command line; without its final line break, as the
-- services read the same file (<SERVICE>_DATABASE_PASSWORD_FILE).
\set password `cat :'password_file'`
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION', :'db')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'db')\gexec
-- The password is set through format(%L), never interpolated into the script.
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'db', :'password')\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
-- Only its owner (and the superuser) may connect: a service's role never reaches another's data.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db')\gexec
SQL
    # PostgreSQL 15+ already keeps CREATE on schema public from PUBLIC; said again for older servers.
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "${superuser}" --dbname "${db}" \
        -v db="${db}" <<'SQL'
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SELECT format('ALTER SCHEMA public OWNER TO %I', :'db')\gexec
SQL
done
