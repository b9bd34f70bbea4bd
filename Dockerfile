# syntax=docker/dockerfile:1

# Build stage: a static binary, no cgo, no local paths baked in.
FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so editing the source does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Set with: docker compose build --build-arg VERSION=$(git describe --tags --always)
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/resonite-bridge ./cmd/resonite-bridge

# Runtime stage: no shell, no package manager; CA certificates and tzdata included; uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/resonite-bridge /usr/local/bin/resonite-bridge
# The image's nonroot user, numeric so that runtimes can verify it is not root.
USER 65532:65532
# The default (localhost:9464) would accept connections from inside the container only, so a
# published port would never reach it. The container's own network namespace is the boundary;
# docker-compose.yml publishes the port on the host's 127.0.0.1 only.
ENV HTTP_ADDR=0.0.0.0:9464
EXPOSE 9464
# The image has no curl: the binary checks its own /healthz (port taken from HTTP_ADDR).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/resonite-bridge", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/resonite-bridge"]
