# The auditor image: `auditor worker` (deploy/kubernetes/auditor-worker.yaml), the in-cluster
# CronJob (deploy/kubernetes/auditor-cronjob.yaml) and one-off runs.
#
#   docker build -t auditor:0.1.0 .            # from the official Python image, online
#   docker build --build-arg BASE=IMAGE --build-arg WHEELS=wheels -t auditor:0.1.0 CONTEXT
#       # offline: any Debian-family image with python3 and python3-venv as BASE, and a
#       # directory of wheels (`pip wheel -w CONTEXT/wheels '.[fleet,postgres]'`) in CONTEXT
#
# The image runs as an unprivileged user (65532) with no shell entrypoint: `docker run
# auditor:0.1.0 run -t k8s://`.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
ARG WHEELS=
ENV PATH=/opt/auditor/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/var/cache/auditor \
    XDG_DATA_HOME=/var/lib/auditor
COPY . /src
# WeasyPrint (PDF reports) needs Pango; Debian's python3-venv brings pip for the venv.
RUN set -eu; \
    if ! ldconfig -p | grep -q 'libpango-1.0.so'; then \
        apt-get update; \
        apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv /opt/auditor; \
    if [ -n "$WHEELS" ]; then \
        /opt/auditor/bin/pip install --no-cache-dir --no-index --find-links "/src/$WHEELS" 'auditor[fleet,postgres]'; \
    else \
        /opt/auditor/bin/pip install --no-cache-dir '/src[fleet,postgres]'; \
    fi; \
    rm -rf /src; \
    groupadd --gid 65532 auditor; \
    useradd --uid 65532 --gid 65532 --home-dir /var/lib/auditor --no-create-home auditor; \
    mkdir -p /var/lib/auditor /var/cache/auditor; \
    chown auditor:auditor /var/lib/auditor /var/cache/auditor
USER 65532:65532
ENTRYPOINT ["auditor"]
CMD ["--help"]
