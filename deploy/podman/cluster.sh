#!/usr/bin/env bash
# Builds the dotkv image and runs a three-node cluster in podman: containers
# n1, n2 and n3 on a podman network of their own, each with a volume for
# /data. Then a smoke test: a write through n1 is read back through n2 and
# n3, and every node lists all three as members. Everything it created but
# the image is removed at the end, whether the test passed or not.
#
#   deploy/podman/cluster.sh [--sandbox] [--keep]
#
# --sandbox  for machines where podman's defaults fail (as the 2-core CI
#            sandbox): runc with cgroupfs, and a containers.conf of its own
#            without default ulimits and pids limit (CONTAINERS_CONF)
# --keep     leave the cluster running (remove it with --down)
# --down     remove a cluster left by --keep, and exit
#
# Environment: IMAGE (default localhost/dotkv:dev), SUBNET (default
# 10.89.77.0/24; nodes at .11-.13), BUILD=dockerfile to build the
# repository's multi-stage Dockerfile (needs a registry for golang and
# distroless) instead of deploy/podman/Containerfile (FROM scratch, binaries
# built here with the local Go toolchain).
set -euo pipefail

cd "$(dirname "$0")/../.."
IMAGE=${IMAGE:-localhost/dotkv:dev}
SUBNET=${SUBNET:-10.89.77.0/24}
NET=dotkv-smoke
NODES=(n1 n2 n3)
prefix=${SUBNET%.*}
keep=false
down=false
podman=(podman)
for arg in "$@"; do
  case "$arg" in
    --sandbox) sandbox=true ;;
    --keep) keep=true ;;
    --down) down=true ;;
    *) echo "usage: $0 [--sandbox] [--keep | --down]" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d)
if [ "${sandbox:-false}" = true ]; then
  printf '[containers]\ndefault_ulimits = []\npids_limit = 0\n' >"$work/containers.conf"
  export CONTAINERS_CONF="$work/containers.conf"
  podman=(podman --runtime runc --cgroup-manager cgroupfs)
fi

step() { printf '\n== %s\n' "$*"; }

cleanup() {
  step "cleanup"
  for n in "${NODES[@]}"; do
    "${podman[@]}" rm -f -t 15 "$n" >/dev/null 2>&1 || true
    "${podman[@]}" volume rm -f "$n-data" >/dev/null 2>&1 || true
  done
  "${podman[@]}" network rm -f "$NET" >/dev/null 2>&1 || true
  rm -rf "$work"
  echo "removed containers ${NODES[*]}, their volumes and network $NET (image $IMAGE kept)"
}

if [ "$down" = true ]; then
  cleanup
  exit 0
fi
if [ "$keep" = true ]; then
  trap 'rm -rf "$work"' EXIT
else
  trap cleanup EXIT
fi

version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
step "build $IMAGE (version $version)"
if [ "${BUILD:-}" = dockerfile ]; then
  "${podman[@]}" build --build-arg VERSION="$version" -t "$IMAGE" -f Dockerfile .
else
  ctx="$work/context"
  mkdir -p "$ctx/data"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$ctx/dotkv" ./cmd/dotkv
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ctx/dotkv-kube" ./deploy/dotkv-kube
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$ctx/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$ctx/group"
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
  else
    : >"$ctx/ca-certificates.crt"
  fi
  cp LICENSE NOTICE LICENSES-THIRD-PARTY deploy/podman/Containerfile "$ctx/"
  "${podman[@]}" build -q -t "$IMAGE" -f "$ctx/Containerfile" "$ctx"
fi
"${podman[@]}" image ls "$IMAGE"

step "network $NET ($SUBNET) and containers ${NODES[*]}"
"${podman[@]}" network create --subnet "$SUBNET" "$NET" >/dev/null
seed="$prefix.11:7946"
i=0
for n in "${NODES[@]}"; do
  i=$((i + 1))
  ip="$prefix.1$i"
  if [ "$n" = n1 ]; then
    cluster=(--new-cluster)
  else
    cluster=(--join="$seed")
  fi
  # The entrypoint (dotkv-kube server) sets --id to the host name.
  "${podman[@]}" run -d --name "$n" --hostname "$n" --network "$NET" --ip "$ip" \
    -v "$n-data:/data" "$IMAGE" \
    --data=/data --http=0.0.0.0:8080 --gossip="$ip:7946" --rpc="$ip:7947" "${cluster[@]}" >/dev/null
  echo "$n: $ip, http :8080, gossip :7946, rpc :7947, ${cluster[*]}"
done

# Client commands run in the containers (dotkv is the image's only tool).
dotkv() { local node=$1; shift; "${podman[@]}" exec "$node" /usr/local/bin/dotkv "$@"; }
# read NODE ADDR KEY prints the key's value, which must be a single sibling
# (dotkv get prints the context, the sibling count, then each sibling
# under a "--- N (content type)" line).
read_key() {
  local out
  out=$(dotkv "$1" get --addr "$2" "$3")
  if ! grep -qx 'siblings: 1' <<<"$out"; then
    echo "$1: get $3 via $2: not one sibling:" >&2
    echo "$out" >&2
    return 1
  fi
  sed -n '/^--- 1 /,$p' <<<"$out" | tail -n +2
}

step "wait until every node lists n1, n2 and n3 as alive members"
for n in "${NODES[@]}"; do
  for try in $(seq 1 120); do
    members=$(dotkv "$n" status --addr 127.0.0.1:8080 2>/dev/null | grep -cE '^n[123] +member +alive' || true)
    [ "$members" = 3 ] && break
    if [ "$try" = 120 ]; then
      echo "$n does not list three members after 60 s:" >&2
      dotkv "$n" status --addr 127.0.0.1:8080 >&2 || true
      "${podman[@]}" logs --tail 20 "$n" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  echo "$n: 3 members"
done
dotkv n1 status --addr 127.0.0.1:8080

step "smoke test: write through n1, read through n2 and n3"
value="hello from n1 at $(date -u +%FT%TZ)"
dotkv n1 put --addr 127.0.0.1:8080 smoke:greeting "$value" >/dev/null
echo "n1: put smoke:greeting = $value"
# Through n2 and n3 (each asked on its own 127.0.0.1), and through n2 from
# n3's container over the podman network.
for target in "n2 127.0.0.1:8080" "n3 127.0.0.1:8080" "n3 $prefix.12:8080"; do
  read -r from addr <<<"$target"
  got=$(read_key "$from" "$addr" smoke:greeting)
  if [ "$got" != "$value" ]; then
    echo "$from: get smoke:greeting via $addr = '$got', want '$value'" >&2
    exit 1
  fi
  echo "$from: get --addr $addr smoke:greeting = $got"
done
echo "binary version in the image: $version"

step "PASS: 3 containers, one cluster, a write through n1 read through n2 and n3"
if [ "$keep" = true ]; then
  echo "left running; remove with: $0 ${sandbox:+--sandbox }--down"
fi
