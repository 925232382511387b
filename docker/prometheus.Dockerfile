# Prometheus from Debian's package, for `make compose-check` where prom/prometheus cannot be pulled.
# Same entry point use as prom/prometheus: the compose file passes only flags.
ARG BASE_IMAGE=sandbox-base:bookworm
FROM ${BASE_IMAGE}
RUN set -e; \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; \
    rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d; \
    mkdir -p /prometheus; chown 65534:65534 /prometheus
USER 65534:65534
ENTRYPOINT ["/usr/bin/prometheus"]
