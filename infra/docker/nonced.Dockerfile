# syntax=docker/dockerfile:1.7
# The coordinator daemon, with noncectl beside it (reach the socket with
# `aws ecs execute-command ... --command "/noncectl status"`). Distroless, non-root; the
# journal goes to the EFS volume at /var/lib/nonced, the socket to /run/nonced.
# Build from the repository root:
#   docker build -f infra/docker/nonced.Dockerfile -t nonced .
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p nonced -p noncectl --bin nonced --bin noncectl \
 && cp target/release/nonced target/release/noncectl /

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /nonced /noncectl /
ENV NONCE_SOCKET=/run/nonced/nonced.sock \
    NONCE_STATE_DIR=/var/lib/nonced
USER 10001:10001
# The network listener (NONCE_HTTP_LISTEN), behind the API load balancer.
EXPOSE 8443
HEALTHCHECK --interval=30s --timeout=5s CMD ["/nonced", "--health-check"]
ENTRYPOINT ["/nonced"]
