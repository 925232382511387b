# The project image: the sandbox with Flower, Opacus and torch (CPU) in /opt/sandbox, the project at /app
# (flwr run packs /app as the Flower app). One image serves the SuperLink, every SuperNode and the trial.
#
#   docker build -t regulatory-sandbox .
#
# BASE_IMAGE is any Debian bookworm image with python3 (3.11) and python3-venv; `make compose-check`
# builds one from Debian packages (debootstrap) where no image registry is reachable.
# Build-time pip settings for a network that needs them (a CA bundle, a wheel folder, a pip.conf) go
# in docker/pip/ of the build context: they stay in the build stage and never reach the final image.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY docker/pip/ /tmp/pip/
RUN python3 -m venv /opt/sandbox
RUN set -e; \
    if [ -f /tmp/pip/pip.conf ]; then export PIP_CONFIG_FILE=/tmp/pip/pip.conf; fi; \
    /opt/sandbox/bin/pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "torch==2.13.0"
COPY pyproject.toml README.md /app/
COPY trialcore /app/trialcore
COPY policies /app/policies
COPY participants /app/participants
COPY monitoring /app/monitoring
COPY sandbox /app/sandbox
RUN set -e; \
    if [ -f /tmp/pip/pip.conf ]; then export PIP_CONFIG_FILE=/tmp/pip/pip.conf; fi; \
    /opt/sandbox/bin/pip install /app

FROM ${BASE_IMAGE}
COPY --from=build /opt/sandbox /opt/sandbox
COPY --from=build /app /app
ENV PATH=/opt/sandbox/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp \
    FLWR_HOME=/tmp/flwr \
    FLWR_TELEMETRY_ENABLED=0 \
    FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001:10001
CMD ["sandbox", "--help"]
