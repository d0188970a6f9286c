# The donations service: `docker build -t donations .`
# Configuration comes from the environment only (see API.md, "Configuration and commands").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Build from a copy of the sources and keep only the installed package: the wheel carries
# templates/ and migrations/ inside it (pyproject's force-include), so every `donations`
# command works from any directory.
WORKDIR /tmp/src
COPY pyproject.toml README.md ./
COPY donations ./donations
COPY migrations ./migrations
COPY templates ./templates
RUN pip install . \
    && rm -rf /tmp/src

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin donations \
    && install -d -o donations -g donations /var/lib/donations
USER donations
WORKDIR /home/donations
# The instance folder (the development SQLite file when DATABASE_URL is unset).
ENV DONATIONS_INSTANCE_PATH=/var/lib/donations

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["donations", "serve", "--host", "0.0.0.0", "--port", "8000"]
