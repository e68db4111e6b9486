# Test stand-in for python:3.12-bookworm (the project's builder stage): the runtime
# stand-in plus the compiler and headers that the C layer walker needs. See
# tests/stack/standins.py for why stand-ins exist and what they differ in.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev python3-dev \
 && rm -rf /var/lib/apt/lists/*
LABEL org.opencontainers.image.description="test stand-in for python:3.12-bookworm: Debian bookworm python3 + gcc + python3-dev"
