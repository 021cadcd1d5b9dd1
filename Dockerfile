# syntax=docker/dockerfile:1

# One image for every Syncline service; the command picks the service (the gateway by default):
#
#   docker build -t syncline .
#   docker run syncline                                        # gateway, HTTP + WebSocket on 3000
#   docker run -e HEALTH_PORT=9090 syncline node apps/sync-worker/dist/main.js
#   docker run -e HEALTH_PORT=9090 syncline node apps/conflict-service/dist/main.js
#
# docker-compose.yml runs them all on one host.

# ---------------------------------------------------------------------------------------------
# deps: production dependencies only, for the runtime image.
FROM node:24-bookworm-slim AS deps
WORKDIR /app

# The manifests alone first, so that the dependency layers are rebuilt only when a manifest or the
# lock changes, not on every source edit. Every workspace's package.json is needed: npm links
# libs/* and apps/* into node_modules/@syncline/, and that is how the services import each other
# (`@syncline/platform` resolves through the link to libs/platform and its "exports").
COPY package.json package-lock.json ./
COPY libs/client/package.json libs/client/
COPY libs/conflict/package.json libs/conflict/
COPY libs/contracts/package.json libs/contracts/
COPY libs/delta/package.json libs/delta/
COPY libs/persistence/package.json libs/persistence/
COPY libs/platform/package.json libs/platform/
COPY libs/publisher/package.json libs/publisher/
COPY apps/conflict-service/package.json apps/conflict-service/
COPY apps/gateway/package.json apps/gateway/
COPY apps/sync-worker/package.json apps/sync-worker/

# `npm install` with the committed lock, not `npm ci`: the registry this project installs from
# lacks some optional native binaries for other platforms (swc, rspack), so the lock leaves them
# out and `npm ci` rejects it as out of sync with package.json. `npm install` installs the
# versions the lock pins and leaves the lock as it is. The cache mount keeps downloaded tarballs
# between builds without putting them in a layer.
RUN --mount=type=cache,target=/root/.npm \
    npm install --omit=dev --no-audit --no-fund

# ---------------------------------------------------------------------------------------------
# build: the dev dependencies on top (TypeScript, esbuild), then the build.
FROM deps AS build
RUN --mount=type=cache,target=/root/.npm \
    npm install --no-audit --no-fund

COPY tsconfig.base.json tsconfig.build.json ./
COPY libs/ libs/
COPY apps/ apps/
COPY scripts/ scripts/
COPY demo/ demo/
COPY deploy/compose/demo.mjs deploy/compose/
# Compiles every workspace into its dist/ and bundles the demo page (demo/dist/app.js).
RUN npm run build

# What the runtime runs, in the repository's layout: the links in node_modules/@syncline/ are
# relative (../../libs/<name>), so each package's package.json and dist/ must sit where they sit
# here. The demo server (scripts/, demo/) is small and does nothing unless started with its own
# command and a JWT_SECRET.
RUN mkdir /out \
 && cp -a --parents \
      package.json \
      libs/*/package.json libs/*/dist \
      apps/*/package.json apps/*/dist \
      scripts/demo-server.mjs scripts/mint-token.mjs \
      demo/index.html demo/app.css demo/dist \
      deploy/compose/demo.mjs \
      /out/

# ---------------------------------------------------------------------------------------------
# runtime: Node, production node_modules and the compiled services; no compiler, no sources.
FROM node:24-bookworm-slim AS runtime

# NODE_ENV=production makes the gateway refuse to start without a real JWT_SECRET (or JWKS) and
# closes CORS unless CORS_ORIGINS opens it. HEALTH_PORT is where the HEALTHCHECK below asks:
# the gateway's GATEWAY_PORT (3000), or MONITORING_PORT (9090) for the worker and the conflict
# service, which set it.
ENV NODE_ENV=production \
    HEALTH_PORT=3000

# A fixed numeric uid outside the range of host users, so that Kubernetes' runAsNonRoot can verify
# it and files on mounted volumes do not belong to a real account.
RUN groupadd --system --gid 10001 syncline \
 && useradd --system --uid 10001 --gid syncline --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin syncline

WORKDIR /app
# Owned by root and only readable by the service user: the process cannot rewrite its own code.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /out/ ./

USER 10001:10001
EXPOSE 3000 9090

# The services drain on SIGTERM: the gateway closes WebSockets with 4001 (reconnect elsewhere and
# resume), the worker finishes and commits its batch. Give them time (stop_grace_period).
STOPSIGNAL SIGTERM

# /health answers once the service has booted (the worker: after migrations and streams), which
# is what `depends_on: condition: service_healthy` waits for. Node's own fetch: the slim image
# has no curl or wget.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --start-interval=1s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + process.env.HEALTH_PORT + '/health', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# Exec form, no shell in between: SIGTERM reaches node, which handles it.
CMD ["node", "apps/gateway/dist/main.js"]
