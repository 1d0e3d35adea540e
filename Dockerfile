# The dunning notifier's daemon in a container. State, attempt log and outbox live in the /data
# volume; configuration by environment (NOTIFIER_CONFIG, EMAIL_URL, TWILIO_*, STAFF_URLS).
#
#   docker build -t dunning-notifier .
#   docker run -d --name notifier -v notifier-data:/data --env-file .env dunning-notifier
#   docker logs -f notifier                      # one line per event
#   docker exec notifier notifier status
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip install . && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin notifier \
    && install -d -o notifier -g notifier -m 750 /data

USER notifier
WORKDIR /data
VOLUME ["/data"]
ENV NOTIFIER_STATE=/data/state.json
# Unhealthy when the last daily cycle is older than expected (status exits 1).
HEALTHCHECK --interval=15m --timeout=60s --start-period=10m CMD ["notifier", "status"]
STOPSIGNAL SIGTERM
CMD ["notifier", "daemon"]
