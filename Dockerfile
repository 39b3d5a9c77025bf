# syntax=docker/dockerfile:1
# MarketPipe `serve` image: the release binary (deno compile --self-extracting) on a slim Debian,
# run as a non-root user with the data directory on a volume.
#
#   docker build -t marketpipe .
#   docker run -d -p 8000:8000 -v marketpipe-data:/data \
#     -e MARKETPIPE_API_TOKEN="$(openssl rand -hex 32)" marketpipe
#
# serve refuses to listen beyond loopback without MARKETPIPE_API_TOKEN (writes need it).

ARG DENO_VERSION=2.9.6

# Build: the binary for the platform being built (DuckDB's native bindings are per platform,
# so build each platform natively, e.g. docker buildx --platform linux/amd64,linux/arm64).
FROM denoland/deno:debian-${DENO_VERSION} AS build
WORKDIR /src
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY . .
RUN deno task compile && ./dist/marketpipe --version

# Run: glibc (the binary and libduckdb are glibc builds), CA certificates for the providers,
# curl for the health check. Nothing else.
FROM debian:bookworm-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
  && apt-get install -y --no-install-recommends ca-certificates curl \
  && rm -rf /var/lib/apt/lists/* \
  && groupadd --system --gid 10001 marketpipe \
  && useradd --system --uid 10001 --gid marketpipe --home-dir /data --no-create-home marketpipe \
  && install -d -o marketpipe -g marketpipe /opt/marketpipe /data
COPY --from=build --chown=marketpipe:marketpipe /src/dist/marketpipe /opt/marketpipe/marketpipe
USER marketpipe:marketpipe
# A self-extracting binary unpacks what it embeds (DuckDB's addon and library among it) beside
# itself on first run: do it now, as the user that runs it, so containers start at once.
RUN /opt/marketpipe/marketpipe --version
ENV PATH=/opt/marketpipe:$PATH \
  MARKETPIPE_DATA_DIR=/data \
  TZ=UTC
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8000/healthz"]
ENTRYPOINT ["marketpipe"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
