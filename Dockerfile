# syntax=docker/dockerfile:1
# Build: docker build -t consent-service .
# Migrate (once per release, before new replicas start):
#   docker run --rm --env-file consent.env consent-service consent-service migrate
# Serve:  docker run --env-file consent.env -p 8000:8000 consent-service
# Worker: docker run --env-file consent.env consent-service consent-service worker

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install .

FROM python:3.11-slim AS runtime
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
