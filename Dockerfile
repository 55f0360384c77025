# dotkv's container image: static binaries on distroless, non-root.
#
#   podman build --build-arg VERSION="$(git describe --tags --always --dirty)" -t dotkv:dev .
#   podman run --rm dotkv:dev --id n1 --data /data --http 0.0.0.0:8080 --gossip IP:7946 --new-cluster
#
# The entrypoint, dotkv-kube server, runs dotkv server with the flags
# given, --id defaulting to $POD_NAME or the host name (see
# deploy/dotkv-kube). deploy/kubernetes runs it as a StatefulSet.
# Without registry access (as in this repository's sandbox) build
# deploy/podman/Containerfile instead: the same image from binaries built
# on the host (deploy/podman/cluster.sh).

ARG GO_VERSION=1.26.8

FROM docker.io/library/golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/dotkv ./cmd/dotkv \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/dotkv-kube ./deploy/dotkv-kube \
 && mkdir -p /out/data

# distroless/static: CA certificates, /etc/passwd with nonroot (65532), no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/dotkv /out/dotkv-kube /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /data
COPY LICENSE NOTICE LICENSES-THIRD-PARTY /usr/share/doc/dotkv/
USER 65532:65532
VOLUME ["/data"]
# HTTP client API, gossip (TCP and UDP), internode RPC.
EXPOSE 8080 7946/tcp 7946/udp 7947
ENTRYPOINT ["/usr/local/bin/dotkv-kube", "server"]
