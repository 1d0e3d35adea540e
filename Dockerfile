# The dunning notifier's daemon in a container. State, attempt log and outbox live in the /data
# volume; configuration by environment (NOTIFIER_CONFIG, EMAIL_URL, TWILIO_*, STAFF_URLS).
#
#   docker build -t dunning-notifier .
#   docker run --rm -v notifier-data:/data -v "$PWD/billing.json:/in/billing.json:ro" dunning-notifier \
#       notifier import /in/billing.json                          # the first import creates the state
#   docker run -d --name notifier -v notifier-data:/data --env-file .env dunning-notifier
#   docker logs -f notifier                      # one line per event
#   docker exec notifier notifier status
#   # the web console, a second container on the same volume (TLS in front of it: README, "The console"):
#   docker exec -it notifier notifier users add ana --role admin        # asks the password twice
#   docker run -d --name notifier-web -v notifier-data:/data --env-file .env -p 127.0.0.1:8080:8080 \
#       dunning-notifier notifier web --host 0.0.0.0
#
# podman/buildah: build with `--format docker`; the OCI image format has no HEALTHCHECK and they
# drop it with a warning. tools/check-image builds this file and runs the checks README lists.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# tini as PID 1: the kernel drops a signal sent to PID 1 that has no handler yet, so a
# `docker stop` during the daemon's start-up (before it installs its SIGTERM handler) was lost
# and ended in SIGKILL after the timeout, exit 137. Under tini the notifier is not PID 1: that
# early SIGTERM ends it at once (143, nothing was in flight: mapped to 0 as systemd counts it),
# and a later one is the daemon's clean stop (exit 0). A fixed uid and gid, so that a bind-mounted
# state folder can be given to them (`chown 10001:10001`).
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 notifier \
    && useradd --system --uid 10001 --gid notifier --home-dir /data --shell /usr/sbin/nologin notifier \
    && install -d -o notifier -g notifier -m 750 /data
WORKDIR /src
COPY . .
RUN pip install . && cd / && rm -rf /src

USER notifier
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
ENV NOTIFIER_STATE=/data/state.json
# Unhealthy when the last daily cycle is older than expected (status exits 1) or there is no state.
HEALTHCHECK --interval=15m --timeout=60s --start-period=10m CMD ["notifier", "status"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "-e", "143", "--"]
CMD ["notifier", "daemon"]
