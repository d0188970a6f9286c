# The localstripe Stripe emulator (GPL-3.0-or-later), run as its own container: the app only
# talks to it over HTTP. Build context: this docker/ folder (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Pinned like the project's dev extra: the emulator is fragile across releases.
RUN pip install localstripe==1.15.10

# localstripe pickles its store to /tmp/localstripe.pickle on every write; /tmp is writable.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin localstripe
USER localstripe

EXPOSE 8420
CMD ["localstripe", "--port", "8420", "--from-scratch"]
