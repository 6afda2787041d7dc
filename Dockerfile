# One image for the gateway and every service; docker-compose.yml picks what each container runs:
#   uvicorn gateway.app:create_app --factory ...            (and services.<name>.app:create_app)
#   cradle migrate gateway registry workforce monitoring guidance
# No secrets here: keys and database passwords come from the environment at run time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Dependencies first, from the lock alone, so a code change does not reinstall them.
WORKDIR /src
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

# The project itself, as a regular (non-editable) install into site-packages; the source tree is
# removed afterwards so nothing imports from it (uvicorn puts its working directory on sys.path).
COPY . .
RUN pip install --no-cache-dir --no-deps . \
    && cd / && rm -rf /src

RUN groupadd --system --gid 10001 cradle \
    && useradd --system --uid 10001 --gid cradle --home-dir /app --shell /usr/sbin/nologin cradle \
    && install -d -o cradle -g cradle /app
WORKDIR /app
USER 10001:10001

# `cradle migrate` resolves a data directory even when every *_DATABASE_URL points at PostgreSQL;
# keep it somewhere the non-root user may write.
ENV CRADLE_DATA_DIR=/tmp/cradle \
    CRADLE_LOG_FORMAT=json

EXPOSE 8000

# Nothing domain-specific by default: each compose service sets its own command.
CMD ["cradle", "--help"]
