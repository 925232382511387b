#!/usr/bin/env bash
# make compose-check: build the images, make the stack's key material with `sandbox certs`, bring up
# the SuperLink (TLS, SuperNode authentication) and Prometheus with docker-compose, register the
# sites' published node keys, bring up three SuperNodes (`participants join`), run a 2-round trial
# through them (`sandbox run --engine deployment`), check its report.json, every audit chain and that
# Prometheus scraped the coordinator, take everything down. The last line printed is the trial's run
# folder (copied to runs/compose-check/). Needs root (it starts its own dockerd) and Debian's package
# mirror; no image registry: the base image is built with debootstrap, Prometheus from Debian's
# package, no Grafana.
#
# Docker's data root (images and build cache) is kept in $SANDBOX_DOCKER_ROOT (default
# /var/lib/sandbox-compose-check/docker) so that the next check reuses the image's virtual environment
# unless pyproject.toml changed (the first build takes about 20 min on vfs; a code change rebuilds only
# the project's own layers); SANDBOX_COMPOSE_FRESH=1 builds in a
# throwaway data root instead. Delete the folder to reclaim its space.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
SANDBOX=${SANDBOX_CLI:-$REPO/.venv/bin/sandbox}
SITES=(de-berlin fr-lyon gb-leeds)
TRIAL_TIMEOUT_SECONDS=${SANDBOX_TRIAL_TIMEOUT_SECONDS:-1800}
STARTED=$(date +%s)

say() { printf '[compose-check %4ss] %s\n' "$(( $(date +%s) - STARTED ))" "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: it installs packages and starts its own dockerd"

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}" >&2
fi
DOCKER=/usr/bin/docker   # the docker.io client, the same version as its dockerd

WORK=$(mktemp -d /tmp/sandbox-compose.XXXXXX)
export DOCKER_HOST="unix://$WORK/docker.sock"
if [ "${SANDBOX_COMPOSE_FRESH:-0}" = 1 ]; then
  DATA_ROOT="$WORK/docker"
else
  DATA_ROOT=${SANDBOX_DOCKER_ROOT:-/var/lib/sandbox-compose-check/docker}
fi
mkdir -p "$DATA_ROOT"
# vfs copies the whole image for every container it creates: give docker-compose time for that.
export COMPOSE_HTTP_TIMEOUT=${COMPOSE_HTTP_TIMEOUT:-1200}
export COMPOSE_PROJECT_NAME="sandboxcheck$(basename "$WORK" | tr 'A-Z' 'a-z' | tr -dc 'a-z0-9')"
DOCKERD_PID=""
STACK_UP=0

# Take the stack down and stop dockerd (idempotent): at the end of a passing check, before the run
# folder is printed as the last line, and on any exit.
teardown() {
  if [ "$STACK_UP" = 1 ]; then
    say "taking the stack down"
    (cd "$REPO" && docker-compose --profile trial down --remove-orphans >&2 2>&1)
    STACK_UP=0
  fi
  if [ -n "$DOCKERD_PID" ]; then
    "$DOCKER" container prune -f >/dev/null 2>&1
    "$DOCKER" image prune -f >/dev/null 2>&1
    say "stopping dockerd"
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 120); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    DOCKERD_PID=""
  fi
  # dockerd leaves its network namespace mounted under its exec root, and its data root bind-mounted
  grep -o " $WORK/[^ ]*" /proc/mounts | sort -r | while read -r mount; do umount -l "$mount"; done
  if [ -z "$DOCKERD_PID" ] && grep -q " $DATA_ROOT " /proc/mounts; then umount -l "$DATA_ROOT"; fi
}

cleanup() {
  status=$?
  set +e
  if [ "$status" != 0 ] && [ "$STACK_UP" = 1 ]; then
    (cd "$REPO" && docker-compose logs --no-color --tail=30 >&2 2>&1)
  fi
  teardown
  rm -rf "$WORK"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting dockerd (vfs, host networking only) in $WORK"
dockerd --storage-driver=vfs --iptables=false --bridge=none --data-root "$DATA_ROOT" --exec-root "$WORK/exec" \
  --pidfile "$WORK/dockerd.pid" -H "$DOCKER_HOST" > "$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 1 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 1; done
"$DOCKER" info >/dev/null 2>&1 || { tail -20 "$WORK/dockerd.log" >&2; die "dockerd did not start"; }

# The debootstrapped root file system is kept as a tarball (not an image) for the next check;
# delete $BASE_CACHE to rebuild it from the mirror.
BASE_CACHE=${SANDBOX_BASE_CACHE:-/var/cache/sandbox-compose-check/bookworm-minbase-python3.tar}
if [ ! -s "$BASE_CACHE" ]; then
  say "building the base file system from Debian packages (debootstrap)"
  MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$WORK/rootfs" "${MIRROR:-http://deb.debian.org/debian}" \
    > "$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
  mkdir -p "$(dirname "$BASE_CACHE")"
  tar -C "$WORK/rootfs" -cf "$BASE_CACHE.tmp" . && mv "$BASE_CACHE.tmp" "$BASE_CACHE"
  rm -rf "$WORK/rootfs"
fi
if ! "$DOCKER" image inspect sandbox-base:bookworm >/dev/null 2>&1; then   # a new import would defeat the build cache
  say "importing the base image (docker import of $BASE_CACHE)"
  "$DOCKER" import - sandbox-base:bookworm < "$BASE_CACHE" >/dev/null
fi

say "building the project image (Dockerfile; torch CPU from the host's wheel folder or the index)"
CONTEXT="$WORK/context"
mkdir -p "$CONTEXT"
(cd "$REPO" && tar -c --exclude=__pycache__ --exclude=docker/pip/README.md Dockerfile .dockerignore pyproject.toml \
  trialcore policies participants monitoring sandbox docker) | tar -C "$CONTEXT" -x
# The package metadata's readme: a stub, so that editing README.md does not rebuild the image.
printf '%s\n' "# regulatory-sandbox" "" "The project image of the federated regulatory sandbox: see README.md in the repository." \
  > "$CONTEXT/README.md"
# Build-time pip settings from this host: they stay in the build stage (see docker/pip/README.md).
cert=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
{
  echo "[global]"
  if [ -f "$cert" ]; then cp "$cert" "$CONTEXT/docker/pip/ca.crt"; echo "cert = /opt/sandbox/app/docker/pip/ca.crt"; fi
  if [ -n "${PIP_FIND_LINKS:-}" ] && [ -d "$PIP_FIND_LINKS" ]; then
    mkdir -p "$CONTEXT/docker/pip/wheels"
    cp "$PIP_FIND_LINKS"/torch-2.13.0*.whl "$CONTEXT/docker/pip/wheels/" 2>/dev/null || true
    echo "find-links = /opt/sandbox/app/docker/pip/wheels"
  fi
  echo "default-timeout = ${PIP_DEFAULT_TIMEOUT:-120}"
} > "$CONTEXT/docker/pip/pip.conf"
torch_index=""
ls "$CONTEXT"/docker/pip/wheels/torch-2.13.0* >/dev/null 2>&1 || torch_index=https://download.pytorch.org/whl/cpu
# The build stage is tagged too (check-build), so that pruning dangling images keeps its cache: a
# later check reinstalls the dependencies only when pyproject.toml changed. It holds the host's pip settings in a
# layer, and stays in this host's data root; the project image (its final stage) never does.
for target in build final; do
  tag=regulatory-sandbox:check; [ "$target" = build ] && tag=regulatory-sandbox:check-build
  "$DOCKER" build --network host --build-arg BASE_IMAGE=sandbox-base:bookworm --build-arg "TORCH_INDEX_URL=$torch_index" \
    $([ "$target" = build ] && echo --target=build) -t "$tag" "$CONTEXT" >> "$WORK/build.log" 2>&1 \
    || { tail -30 "$WORK/build.log" >&2; die "image build failed"; }
done
"$DOCKER" image prune -f >/dev/null   # images of earlier builds (stale once the packages changed)
say "project image built ($(grep -c 'Using cache' "$WORK/build.log" || true) cached steps)"

say "building a Prometheus image from Debian's prometheus package"
"$DOCKER" build --network host --build-arg BASE_IMAGE=sandbox-base:bookworm -f "$CONTEXT/docker/prometheus.Dockerfile" \
  -t sandbox-prometheus:check "$CONTEXT" > "$WORK/build-prometheus.log" 2>&1 \
  || { tail -30 "$WORK/build-prometheus.log" >&2; die "Prometheus image build failed"; }

say "writing the stack's folders and key material (sandbox certs), approver keys and signed approvals"
STACK="$WORK/stack"
SPEC=$("$PY" "$REPO/deploy/make_stack.py" --out "$STACK")
# The coordinator's CA (its key stays in $WORK/ca, outside every mount) and the SuperLink's certificate.
"$SANDBOX" certs ca --out "$WORK/ca" >/dev/null
"$SANDBOX" certs server --ca "$WORK/ca" --out "$STACK/tls/superlink" --host 127.0.0.1 >/dev/null
cp "$WORK/ca/ca.pem" "$STACK/tls/superlink/ca.pem"
cp "$WORK/ca/ca.pem" "$STACK/tls/trial/ca.pem"
"$SANDBOX" certs new-key --out "$WORK/approvers" $(printf -- '--name %s ' "${SITES[@]}") >/dev/null
approve=()
for site in "${SITES[@]}"; do
  # Each site: its node key pair (the private half stays in its node/ folder) and the coordinator's CA;
  # it publishes its public node key and approver key to the coordinator's federation folder.
  "$SANDBOX" certs node-key --out "$STACK/sites/$site/node" --name "$site" >/dev/null
  cp "$WORK/ca/ca.pem" "$STACK/sites/$site/node/ca.pem"
  cp "$STACK/sites/$site/node/$site.node.pub" "$STACK/coordinator/federation/$site.node.pub"
  cp "$WORK/approvers/$site.pub.pem" "$STACK/sites/$site/config/keys/trusted.pem"
  cp "$WORK/approvers/$site.pub.pem" "$STACK/coordinator/federation/$site/trusted.pem"
  approve+=(--site "$site" --key "$WORK/approvers/$site.key.pem")
done
"$SANDBOX" approve "$SPEC" "${approve[@]}" >/dev/null   # written where the federation's copies point
for site in "${SITES[@]}"; do
  mkdir -p "$STACK/sites/$site/config/approvals/compose-pilot"
  cp "$STACK/coordinator/federation/$site/approvals/compose-pilot/$site.json" "$STACK/sites/$site/config/approvals/compose-pilot/"
done
chown -R 10001:10001 "$STACK"   # the images run as uid 10001

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export SANDBOX_IMAGE=regulatory-sandbox:check SANDBOX_PROMETHEUS_IMAGE=sandbox-prometheus:check SANDBOX_STACK="$STACK"
export SANDBOX_SUPERLINK_PORT=$(free_port) SANDBOX_DE_BERLIN_PORT=$(free_port) SANDBOX_FR_LYON_PORT=$(free_port)
export SANDBOX_GB_LEEDS_PORT=$(free_port) SANDBOX_PROMETHEUS_PORT=$(free_port) SANDBOX_METRICS_PORT=9464
"$PY" -c 'import socket; socket.socket().bind(("127.0.0.1", 9464))' 2>/dev/null \
  || die "port 9464 (the coordinator's metrics, scraped by monitoring/prometheus/prometheus.yml) is in use"
SUPERLINK="127.0.0.1:$SANDBOX_SUPERLINK_PORT"

say "bringing up the SuperLink (TLS, SuperNode authentication) and Prometheus (docker-compose)"
cd "$REPO"
STACK_UP=1
docker-compose up -d superlink prometheus >&2 2>&1

say "registering the sites' published node keys with the SuperLink (sandbox nodes register)"
"$SANDBOX" nodes register "$SPEC" --superlink "$SUPERLINK" --root-certificates "$STACK/tls/trial/ca.pem" \
  --wait-seconds 300 --format json > "$WORK/register.json" || die "sandbox nodes register failed"

say "bringing up three SuperNodes (participants join: the site's checks, then its SuperNode)"
docker-compose up -d $(printf 'supernode-%s ' "${SITES[@]}") >&2 2>&1

say "running a 2-round trial through them (docker-compose run trial: sandbox run --engine deployment)"
timeout "$TRIAL_TIMEOUT_SECONDS" docker-compose run --rm trial > "$WORK/trial.json" 2> "$WORK/trial.log" \
  || { tail -40 "$WORK/trial.log" >&2; die "the trial did not finish (or not within ${TRIAL_TIMEOUT_SECONDS} s)"; }

say "checking report.json, the audit chains and what Prometheus scraped"
RUN_DIR=$("$PY" - "$STACK" "$SANDBOX_PROMETHEUS_PORT" "$WORK/register.json" "$SANDBOX" "${SITES[@]}" <<'PY'
import json, subprocess, sys, urllib.parse, urllib.request
from pathlib import Path

stack, port, registered, sandbox, sites = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4], sys.argv[5:]
runs = stack / "coordinator" / "runs"
reports = sorted(runs.glob("compose-pilot/*/report.json"))
if len(reports) != 1:
    sys.exit(f"expected one report.json under {runs}, found {len(reports)}")
report = json.loads(reports[0].read_text())
problems = []
if sorted(n["site_id"] for n in json.loads(registered.read_text())["nodes"]) != sorted(sites):
    problems.append(f"registered node keys: {registered.read_text()}")
if report["state"] != "finished":
    problems.append(f"state {report['state']!r}, not 'finished'")
if report["rounds_completed"] != 2:
    problems.append(f"{report['rounds_completed']} rounds completed, not 2")
if sorted(report["audit"]["sites"]) != sorted(sites):
    problems.append(f"site audit chains {sorted(report['audit']['sites'])}")
chains = [reports[0].parent / "audit.jsonl"] + [stack / "sites" / s / "state" / "compose-pilot" / "audit.jsonl" for s in sites]
for chain in chains:
    verified = subprocess.run([sandbox, "audit", "verify", str(chain)], capture_output=True, text=True)
    if verified.returncode != 0:
        problems.append(f"sandbox audit verify {chain}: exit {verified.returncode}: {verified.stdout}{verified.stderr}")
for site in sites:
    actors = {json.loads(line)["actor"] for line in chains[1 + sites.index(site)].read_text().splitlines()}
    if actors != {f"site:{site}"}:
        problems.append(f"{site}'s chain holds entries of {sorted(actors)}")
run_id = reports[0].parent.name
query = f'max_over_time(sandbox_rounds_completed_total{{trial="compose-pilot", run_id="{run_id}"}}[1h])'
url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
result = json.load(urllib.request.urlopen(url, timeout=10))["data"]["result"]
if not result or float(result[0]["value"][1]) < 1:
    problems.append(f"Prometheus did not scrape a completed round of run {run_id}: {result}")
if problems:
    sys.exit("; ".join(problems))
print(reports[0].parent)
PY
) || { tail -40 "$WORK/trial.log" >&2; die "the run's evidence is not as expected"; }

KEEP="$REPO/runs/compose-check/$(basename "$RUN_DIR")"
mkdir -p "$(dirname "$KEEP")"
cp -r "$RUN_DIR" "$KEEP"
say "passed in $(( $(date +%s) - STARTED )) s; evidence copied to $KEEP"
teardown
say "done in $(( $(date +%s) - STARTED )) s (stack down, dockerd stopped)"
echo "$KEEP"
