#!/usr/bin/env bash
# MinIO's server, the external S3 service of the tests of clusters on any S3 and a peer of the
# storage benchmark.  MinIO publishes no Debian package: it is built from the Go module proxy with
# setup's Go (Debian's golang-1.23), which takes the newer Go that MinIO needs from the proxy too.
# Idempotent: prints the binary's path, building it (a few minutes, once) if it is not there.
set -euo pipefail

MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"  # github.com/minio/minio, 2026-02-12
GO_TOOLCHAIN="go1.27.3"
GO=/usr/lib/go-1.23/bin/go
BIN_DIR="${RESILIN_TOOLS_CACHE:-$HOME/.cache/resilin-bench}/minio/$MINIO_VERSION"

if [ ! -x "$BIN_DIR/minio" ]; then
  if [ ! -x "$GO" ]; then
    echo "MinIO is built with Go ($GO): run scripts/setup.sh first" >&2
    exit 1
  fi
  echo "building MinIO $MINIO_VERSION (once, a few minutes)" >&2
  mkdir -p "$BIN_DIR"
  GOBIN="$BIN_DIR" CGO_ENABLED=0 GOTOOLCHAIN="$GO_TOOLCHAIN" GOFLAGS=-mod=mod \
    "$GO" install "github.com/minio/minio@$MINIO_VERSION" >&2
fi
echo "$BIN_DIR/minio"
