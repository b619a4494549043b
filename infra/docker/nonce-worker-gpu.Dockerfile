# syntax=docker/dockerfile:1.7
# The GPU worker (`--capacity gpu`, infra/terraform/gpu.tf): nonce-worker built with the `gpu`
# feature, which hashes on the GPU through Vulkan (wgpu). The NVIDIA driver's Vulkan ICD
# (library and manifest) is not in the image: the NVIDIA container runtime of ECS's GPU AMI
# mounts it into the container when the `graphics` capability is asked for. Build from the
# repository root:
#   docker build -f infra/docker/nonce-worker-gpu.Dockerfile -t nonce-worker-gpu .
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p worker-actor --features gpu --bin nonce-worker \
 && cp target/release/nonce-worker /nonce-worker

# Debian 12 slim, not distroless: besides the Vulkan loader (libvulkan.so.1, which wgpu opens
# at run time), the NVIDIA driver's Vulkan ICD (libGLX_nvidia.so.0, mounted by the NVIDIA
# runtime) links libX11, libXext and libGLdispatch from the image; without them the loader
# skips the driver (nvidia-container-toolkit issues #16, #1952). Nothing else is installed.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libvulkan1=1.3.239.0-1 libx11-6=2:1.8.4-2+deb12u2 libxext6=2:1.3.4-1+b1 libglvnd0=1.6.0-1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /nonce-worker /nonce-worker
# compute,utility: the GPU itself; graphics: the driver's Vulkan ICD. NONCE_KERNEL=gpu: a GPU
# that does not open fails the worker loudly rather than hashing on the CPU at GPU prices.
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics \
    NONCE_KERNEL=gpu
USER 10001:10001
ENTRYPOINT ["/nonce-worker"]
