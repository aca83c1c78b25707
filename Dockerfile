# enrichwatch: one process (receiver + reconciler) on one SQLite file in /data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENRICHWATCH_DB=/data/enrichwatch.db \
    ENRICHWATCH_HOST=0.0.0.0 \
    ENRICHWATCH_PORT=8080

RUN useradd --system --uid 10001 --create-home --home-dir /home/enrichwatch enrichwatch \
    && mkdir /data && chown enrichwatch:enrichwatch /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY enrichwatch ./enrichwatch
COPY receiver ./receiver
COPY reconciler ./reconciler
RUN pip install --no-cache-dir . && rm -rf /app

USER enrichwatch
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# slim images have no curl; the standard library is enough for a liveness probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ENRICHWATCH_PORT', '8080') + '/healthz', timeout=4)"]

# Set ENRICHWATCH_PUBLIC_URL to the address vendors reach this container at, and
# ENRICHWATCH_API_TOKEN (or read the generated one from the first start's output).
CMD ["enrichwatch", "serve"]
