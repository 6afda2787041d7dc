#!/usr/bin/env bash
# Creates one database per Cradle service, owned by $POSTGRES_USER. The postgres image runs every
# script in /docker-entrypoint-initdb.d once, when it initialises an empty data volume (over the
# local socket, as the superuser); on later starts it is skipped. Safe to run again by hand.
set -Eeo pipefail

CRADLE_DATABASES="${CRADLE_DATABASES:-gateway registry workforce monitoring guidance}"
owner="${POSTGRES_USER:-postgres}"

for db in ${CRADLE_DATABASES}; do
    echo "init-databases: ensuring database ${db} (owner ${owner})"
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${owner}" --dbname "${POSTGRES_DB:-${owner}}" \
        -v db="${db}" -v owner="${owner}" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
done
