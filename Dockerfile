# The project image: the sandbox with Flower, Opacus and torch (CPU) in a virtual environment
# (/opt/sandbox/venv, on PATH) and the project at /opt/sandbox/app (flwr run packs it as the Flower
# app). One image serves the SuperLink, every SuperNode and the trial; it runs as uid 10001.
# The project is installed editable, so the packages are imported from /opt/sandbox/app: `sandbox run
# --engine deployment` submits that folder (its pyproject.toml names the apps) to the SuperLink.
#
#   docker build -t regulatory-sandbox .
#
# BASE_IMAGE is any Debian bookworm image with python3 (3.11) and python3-venv; `make compose-check`
# builds one from Debian packages (debootstrap) where no image registry is reachable.
# Build-time pip settings for a network that needs them (a CA bundle, a wheel folder, a pip.conf) go
# in docker/pip/ of the build context: the build stage reads them and deletes them, and the final
# stage copies only /opt/sandbox, so none of them reaches the image.
# Few layers on purpose (no WORKDIR, no CMD: `docker run IMAGE sandbox --help`): a storage driver
# without copy-on-write (vfs) copies every layer in full.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Dependencies first, from pyproject.toml alone: a change to the project's code rebuilds only the
# last two steps, not the virtual environment (minutes, not the 20 of a full build on vfs).
COPY pyproject.toml /opt/sandbox/deps/
COPY docker/pip /opt/sandbox/app/docker/pip/
RUN set -e; \
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1; \
    if [ -f /opt/sandbox/app/docker/pip/pip.conf ]; then export PIP_CONFIG_FILE=/opt/sandbox/app/docker/pip/pip.conf; fi; \
    python3 -m venv /opt/sandbox/venv; \
    /opt/sandbox/venv/bin/pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "torch==2.13.0"; \
    python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/opt/sandbox/deps/pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /opt/sandbox/deps/requirements.txt; \
    /opt/sandbox/venv/bin/pip install -r /opt/sandbox/deps/requirements.txt
COPY . /opt/sandbox/app/
RUN set -e; \
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1; \
    if [ -f /opt/sandbox/app/docker/pip/pip.conf ]; then export PIP_CONFIG_FILE=/opt/sandbox/app/docker/pip/pip.conf; fi; \
    /opt/sandbox/venv/bin/pip install --no-deps -e /opt/sandbox/app; \
    rm -rf /opt/sandbox/deps /opt/sandbox/app/docker /opt/sandbox/app/build /opt/sandbox/app/*.egg-info

FROM ${BASE_IMAGE}
COPY --from=build /opt/sandbox /opt/sandbox
ENV PATH=/opt/sandbox/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp \
    FLWR_HOME=/tmp/flwr \
    FLWR_TELEMETRY_ENABLED=0 \
    FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    PYTHONUNBUFFERED=1
USER 10001:10001
