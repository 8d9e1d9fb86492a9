# syntax=docker/dockerfile:1
# Build: docker build -t consent-service .
# Migrate (once per release, before new replicas start):
#   docker run --rm --env-file consent.env consent-service consent-service migrate
# Serve:  docker run --env-file consent.env -p 8000:8000 consent-service
# Worker: docker run --env-file consent.env consent-service consent-service worker

# The base image of both stages. Pin it by digest, so that every build starts from the same
# bytes: look the digest up with
#   docker buildx imagetools inspect python:3.11-slim
# and write it here as python:3.11-slim@sha256:<digest> (or pass --build-arg PYTHON_IMAGE=...).
# Until then each build takes whatever python:3.11-slim is at the time.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Every package pinned with the hashes of its files, wheels only (`make lock` makes the lock).
COPY requirements.lock ./
RUN pip install --require-hashes --only-binary :all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install --no-deps --no-build-isolation .

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin consent
COPY --from=build /opt/venv /opt/venv
COPY schemas /app/schemas
ENV PATH=/opt/venv/bin:$PATH \
    CONSENT_SCHEMAS_DIR=/app/schemas \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER consent
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["consent-service", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
