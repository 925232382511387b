#!/usr/bin/env bash
# make compose-check: build the images, bring up the SuperLink, three SuperNodes and Prometheus with
# docker-compose, run a 2-round trial through them, check its report.json and that Prometheus scraped
# the coordinator, take everything down. The last line printed is the trial's run folder (copied to
# runs/compose-check/). Needs root (it starts its own dockerd) and Debian's package mirror; no image
# registry: the base image is built with debootstrap, Prometheus from Debian's package, no Grafana.
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
# vfs copies the whole image for every container it creates: give docker-compose time for that.
export COMPOSE_HTTP_TIMEOUT=${COMPOSE_HTTP_TIMEOUT:-1200}
export COMPOSE_PROJECT_NAME="sandboxcheck$(basename "$WORK" | tr 'A-Z' 'a-z' | tr -dc 'a-z0-9')"
DOCKERD_PID=""
STACK_UP=0

cleanup() {
  status=$?
  set +e
  if [ "$STACK_UP" = 1 ]; then
    say "taking the stack down"
    (cd "$REPO" && docker-compose down --remove-orphans >&2 2>&1)
  fi
  if [ -n "$DOCKERD_PID" ]; then
    "$DOCKER" rmi -f regulatory-sandbox:check sandbox-prometheus:check sandbox-base:bookworm >/dev/null 2>&1
    "$DOCKER" image prune -f >/dev/null 2>&1
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
  fi
  # dockerd leaves its network namespace mounted under its exec root
  grep -o " $WORK/[^ ]*" /proc/mounts | sort -r | while read -r mount; do umount -l "$mount"; done
  rm -rf "$WORK"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting dockerd (vfs, host networking only) in $WORK"
dockerd --storage-driver=vfs --iptables=false --bridge=none --data-root "$WORK/docker" --exec-root "$WORK/exec" \
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
say "importing the base image (docker import of $BASE_CACHE)"
"$DOCKER" import - sandbox-base:bookworm < "$BASE_CACHE" >/dev/null

say "building the project image (Dockerfile; torch CPU from the host's wheel folder or the index)"
CONTEXT="$WORK/context"
mkdir -p "$CONTEXT"
(cd "$REPO" && tar -c --exclude=__pycache__ --exclude=docker/pip/README.md Dockerfile .dockerignore pyproject.toml \
  README.md trialcore policies participants monitoring sandbox docker) | tar -C "$CONTEXT" -x
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
"$DOCKER" build --network host --build-arg BASE_IMAGE=sandbox-base:bookworm --build-arg "TORCH_INDEX_URL=$torch_index" \
  -t regulatory-sandbox:check "$CONTEXT" > "$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; die "image build failed"; }
"$DOCKER" image prune -f >/dev/null   # dangling build-stage images (the stage read the host's pip settings)

say "building a Prometheus image from Debian's prometheus package"
"$DOCKER" build --network host --build-arg BASE_IMAGE=sandbox-base:bookworm -f "$CONTEXT/docker/prometheus.Dockerfile" \
  -t sandbox-prometheus:check "$CONTEXT" > "$WORK/build-prometheus.log" 2>&1 \
  || { tail -30 "$WORK/build-prometheus.log" >&2; die "Prometheus image build failed"; }

say "writing the stack's folders, approver keys and the sites' signed approvals"
STACK="$WORK/stack"
SPEC=$("$PY" "$REPO/deploy/make_stack.py" --out "$STACK")
"$SANDBOX" certs new-key --out "$WORK/approvers" $(printf -- '--name %s ' "${SITES[@]}") >/dev/null
approve=()
for site in "${SITES[@]}"; do
  cp "$WORK/approvers/$site.pub.pem" "$STACK/sites/$site/config/keys/trusted.pem"
  approve+=(--site "$site" --key "$WORK/approvers/$site.key.pem")
done
"$SANDBOX" approve "$SPEC" "${approve[@]}" >/dev/null
chown -R 10001:10001 "$STACK"   # the images run as uid 10001

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export SANDBOX_IMAGE=regulatory-sandbox:check SANDBOX_PROMETHEUS_IMAGE=sandbox-prometheus:check SANDBOX_STACK="$STACK"
export SANDBOX_SUPERLINK_PORT=$(free_port) SANDBOX_DE_BERLIN_PORT=$(free_port) SANDBOX_FR_LYON_PORT=$(free_port)
export SANDBOX_GB_LEEDS_PORT=$(free_port) SANDBOX_PROMETHEUS_PORT=$(free_port) SANDBOX_METRICS_PORT=9464
"$PY" -c 'import socket; socket.socket().bind(("127.0.0.1", 9464))' 2>/dev/null \
  || die "port 9464 (the coordinator's metrics, scraped by monitoring/prometheus/prometheus.yml) is in use"

say "bringing up the SuperLink, three SuperNodes and Prometheus (docker-compose)"
cd "$REPO"
STACK_UP=1
docker-compose up -d superlink supernode-de-berlin supernode-fr-lyon supernode-gb-leeds prometheus >&2 2>&1

say "running a 2-round trial through them (docker-compose run trial)"
timeout "$TRIAL_TIMEOUT_SECONDS" docker-compose run --rm trial > "$WORK/trial.log" 2>&1 \
  || { tail -40 "$WORK/trial.log" >&2; die "the trial did not finish within ${TRIAL_TIMEOUT_SECONDS} s"; }

say "checking report.json and what Prometheus scraped"
RUN_DIR=$("$PY" - "$STACK/coordinator/runs" "$SANDBOX_PROMETHEUS_PORT" <<'PY'
import json, sys, urllib.parse, urllib.request
from pathlib import Path

runs, port = Path(sys.argv[1]), sys.argv[2]
reports = sorted(runs.glob("compose-pilot/*/report.json"))
if len(reports) != 1:
    sys.exit(f"expected one report.json under {runs}, found {len(reports)}")
report = json.loads(reports[0].read_text())
problems = []
if report["state"] != "finished":
    problems.append(f"state {report['state']!r}, not 'finished'")
if report["rounds_completed"] != 2:
    problems.append(f"{report['rounds_completed']} rounds completed, not 2")
if sorted(report["audit"]["sites"]) != ["de-berlin", "fr-lyon", "gb-leeds"]:
    problems.append(f"site audit chains {sorted(report['audit']['sites'])}")
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
say "passed in $(( $(date +%s) - STARTED )) s"
echo "$KEEP"
