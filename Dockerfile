# ghcr.io/dlepaux/gordon-manager: the manager (`gordon-manager serve`, the default command) and the bots
# it starts in containers (`gordon-manager bot`, what GORDON_MANAGER_BOT_COMMAND runs).
#
# Build with `make image`: it builds the project's wheel and its dependencies' wheels on the host into
# build/wheels (pip; the C extension _rowjson is compiled there, so the host's Python minor must be the
# base's: 3.11), then this file installs them with no index and no network (`--network none` works).
# BASE defaults to the public Python image; the tests pass a local Debian bookworm base made with
# mmdebstrap (tests/infra/image_build.py), since nothing may be pulled there.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
COPY build/wheels/ /wheels/
RUN python3 -m venv /opt/gordon-manager \
 && /opt/gordon-manager/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \
        --find-links /wheels gordon-manager \
 && /opt/gordon-manager/bin/pip uninstall -y -q pip \
 && /opt/gordon-manager/bin/gordon-manager --help >/dev/null

FROM ${BASE}
ARG VERSION=3.8.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="gordon-manager" \
      org.opencontainers.image.description="Control plane of the Gordon trading bot fleet; also runs its bots (gordon-manager bot)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/dlepaux/gordon-manager" \
      org.opencontainers.image.url="https://github.com/dlepaux/gordon-manager" \
      org.opencontainers.image.vendor="dlepaux" \
      org.opencontainers.image.licenses="UNLICENSED"
# A fixed, unprivileged uid (no useradd: the base may not ship it); the data dir is its own.
RUN echo 'gordon:x:10001:10001:gordon-manager:/var/lib/gordon-manager:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'gordon:x:10001:' >> /etc/group \
 && mkdir -p /var/lib/gordon-manager /var/lib/gordon-manager-file-sd \
 && chown 10001:10001 /var/lib/gordon-manager /var/lib/gordon-manager-file-sd \
 && chmod 0700 /var/lib/gordon-manager
# /var/lib/gordon-manager-file-sd (0755): the file-SD targets, a volume Prometheus mounts read-only.
COPY --from=build /opt/gordon-manager /opt/gordon-manager
COPY deploy/docker/healthcheck.py /opt/gordon-manager/healthcheck.py
# The operator console: its static build (make console), served by the manager at / and /ui/.
COPY console/dist/ /opt/gordon-manager/console/
ENV PATH=/opt/gordon-manager/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GORDON_MANAGER_CONSOLE_DIST=/opt/gordon-manager/console \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GORDON_MANAGER_DATA_DIR=/var/lib/gordon-manager \
    GORDON_MANAGER_BIND_ADDR=:8083
USER 10001:10001
WORKDIR /var/lib/gordon-manager
EXPOSE 8083 9100
# The manager answers /healthz; a bot container (GORDON_BOT_ID set) its /metrics.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "/opt/gordon-manager/healthcheck.py"]
CMD ["gordon-manager", "serve"]
