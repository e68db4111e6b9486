# Test stand-in for postgres:17 (the compose file's `postgres` profile): Debian's
# PostgreSQL 15 with an entrypoint that honours what the compose file uses of the
# official image: POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD, the data directory
# /var/lib/postgresql/data on a named volume, pg_isready on PATH, fast shutdown on stop.
ARG BASE
FROM ${BASE}
# No cluster at install time: the entrypoint creates one in the volume on first start.
RUN mkdir -p /etc/postgresql-common \
 && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
CMD ["postgres"]
LABEL org.opencontainers.image.description="test stand-in for postgres:17: Debian bookworm postgresql 15"
