# One image for every role of the service: the API (default command), the job workers
# (`clf-analysis worker`) and the tools (`clf-analysis submit|query|report`).
#
#   docker build -t clf-abp-path-analysis:1.0.0 \
#     --build-arg VERSION=1.0.0 --build-arg VCS_REF="$(git rev-parse HEAD)" .
#
# Stage 1 builds every wheel (dependencies pinned in requirements.txt plus this
# project, whose CLF layer walker is a C extension); stage 2 installs them from that
# local wheel directory only, so the runtime image carries no compiler, no build backend
# cache and no pip cache.
#
# There is no `# syntax=` line on purpose: it makes BuildKit pull a frontend image before
# it builds anything, which fails where no registry is reachable. BuildKit's built-in
# frontend already understands `RUN --mount=...,from=builder` (BuildKit is needed:
# Docker 23+ uses it by default, older engines need DOCKER_BUILDKIT=1).

# The base images are arguments only so that a host without a registry can pass local
# equivalents (the stack test does; docs/OPERATIONS.md says how). The defaults are the
# official Python images, which every real build uses.
ARG BUILDER_BASE_IMAGE=python:3.12-bookworm
ARG RUNTIME_BASE_IMAGE=python:3.12-slim-bookworm

############################ builder ############################
# The full image brings gcc and the Python headers that the C extension needs; both
# stages name the same Debian release, so the compiled module links against the
# runtime's own libc.
FROM ${BUILDER_BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# Dependencies first: this layer stays cached while only the source changes.
COPY requirements.txt ./
RUN pip wheel --wheel-dir /wheels --requirement requirements.txt \
 && cp requirements.txt /wheels/requirements.txt

COPY pyproject.toml setup.py README.md ./
COPY src ./src
RUN pip wheel --no-deps --wheel-dir /wheels .

############################ runtime ############################
FROM ${RUNTIME_BASE_IMAGE} AS runtime

# No apt packages are needed: the manylinux wheels of opencv-python-headless, numpy,
# shapely, matplotlib and psycopg[binary] bundle their native libraries and only link
# against libc, libstdc++, libgcc_s and zlib, all present in the slim base. The headless
# OpenCV build does not need libGL or GTK.

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    MIDAS_BASE_PATH=/midas \
    STATE_DIR=/var/lib/clf-analysis \
    PORT=6300 \
    LOG_FORMAT=json

# Numeric, non-root identity. The state directory is created here, owned by that user,
# so a fresh named volume mounted on it is initialised with the right owner.
RUN groupadd --system --gid 10001 clf \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin clf \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/clf-analysis \
 && install -d -o 10001 -g 10001 -m 0755 /midas

# Install from the builder's wheels only (no index); the wheels never enter a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels \
      --requirement /wheels/requirements.txt /wheels/clf_analysis-*.whl \
 && clf-analysis --version \
 && python -c "from clf_analysis.clf import COMPILED_WALKER; assert COMPILED_WALKER, 'CLF layer walker not built'"

WORKDIR /app
VOLUME ["/var/lib/clf-analysis"]
EXPOSE 6300

USER 10001:10001

# SIGTERM starts the graceful drain (DRAIN_TIMEOUT seconds); the orchestrator's stop
# timeout (compose stop_grace_period) must be longer than that.
STOPSIGNAL SIGTERM

# Liveness only (no curl in the image): the process answers HTTP. Readiness (/readyz)
# is what compose uses to gate dependants.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('PORT', '6300'), timeout=4)"]

# Labels last: the version arguments change with every commit, and declared earlier they
# would invalidate the cached install layer above.
ARG RUNTIME_BASE_IMAGE
ARG VERSION=1.0.0
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown

LABEL org.opencontainers.image.title="clf-abp-path-analysis" \
      org.opencontainers.image.description="CLF analysis service of the defect-detector-services stack: layer geometry, holes, part statistics, path data and plate images from Arcam EBM build packages, behind a durable job API." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.base.name="${RUNTIME_BASE_IMAGE}"

CMD ["clf-analysis", "serve"]
