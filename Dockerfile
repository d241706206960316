# Kling Gateway image. Two stages: build (compiles TypeScript and the native SQLite driver),
# then a slim runtime with production dependencies only.
# scripts/docker-build-check.sh performs these same steps without a Docker engine.

FROM node:20-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 compiles from source when no prebuilt binary can be fetched.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
ENV SCARF_ANALYTICS=false
COPY package.json package-lock.json tsconfig.json ./
# npm ci's prepare step builds the web console, so its sources come first (the gateway's own
# sources come after, so that editing them does not invalidate the dependency layer).
COPY scripts ./scripts
COPY console ./console
COPY packages ./packages
COPY openapi ./openapi
COPY bin ./bin
RUN npm ci
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
# Without upstream keys the image runs the sandbox (simulators, the public key dev-key). With any
# upstream key (FREEPIK_API_KEY …) it is live and refuses to start until GATEWAY_API_KEYS names
# keys of your own; set GATEWAY_WEBHOOK_SECRETS (tenant:whsec_…) for signed task events and
# METRICS_TOKEN to keep /metrics (spend per provider and model) private. See README, "Security".
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0 \
    DATABASE_URL=sqlite:/app/data/kling-gateway.db \
    NODE_OPTIONS=--max-old-space-size=160
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/console/dist ./console/dist
COPY --from=build /app/bin ./bin
COPY package.json config.yaml ./
RUN mkdir -p /app/data/outputs && chown -R node:node /app/data
VOLUME ["/app/data"]
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
  CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/src/main.js"]
