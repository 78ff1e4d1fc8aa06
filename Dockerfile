# Strata: one image for `strata api`, `strata worker` and `strata migrate`.
#
# Build:  docker build -t strata .
# Run:    see compose.yaml (PostgreSQL, Redis, a one-shot migrate, api and worker replicas).

# --- build -----------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild polars (about 25 minutes on 2 cores).
COPY Cargo.toml Cargo.lock ./
COPY engine/Cargo.toml engine/Cargo.toml
COPY core/Cargo.toml core/Cargo.toml
COPY api/Cargo.toml api/Cargo.toml
COPY worker/Cargo.toml worker/Cargo.toml
RUN mkdir -p src engine/src engine/benches core/src api/src worker/src \
 && echo 'fn main() {}' > src/main.rs \
 && for c in engine core api worker; do touch $c/src/lib.rs; done \
 && touch engine/benches/backtest.rs engine/benches/sweep.rs \
 && cargo build --release --locked --bin strata || true
COPY . .
# Touch the sources so cargo rebuilds them over the placeholder crates.
RUN find src engine/src core/src api/src worker/src -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --bin strata

# --- run -------------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /srv/strata strata \
 && mkdir -p /srv/strata/data \
 && chown -R strata /srv/strata
WORKDIR /srv/strata
COPY --from=build /src/target/release/strata /usr/local/bin/strata
COPY --chown=strata config ./config
COPY --chown=strata examples ./examples
USER strata
ENV STRATA_DATA_DIR=/srv/strata/data \
    STRATA_BUNDLED_DIR=/srv/strata/examples/data \
    STRATA_API__BIND=0.0.0.0:8080 \
    STRATA_LOG__FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health/live || exit 1
ENTRYPOINT ["strata"]
CMD ["api"]
