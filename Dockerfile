# syntax=docker/dockerfile:1
# Parlor: build with dev dependencies, run with production ones only, as a non-root user.
#   docker build -t parlor .
#   docker run -p 3000:3000 -e JWT_SECRET=$(openssl rand -hex 32) -v parlor-data:/data parlor
# Without DATABASE_URL the embedded PostgreSQL keeps its files in the /data volume.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Exactly the committed lockfile (docs/development.md, "Installing").
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ormconfig.ts ./
COPY migrations ./migrations
COPY src ./src
COPY scripts ./scripts
# The demo web client (served at /) is bundled from web/ and the typed client in client/.
COPY client ./client
COPY web ./web
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    PARLOR_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The official image's unprivileged `node` user owns only the data directory.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 3000
# No curl in the slim image: ask the liveness probe with Node's own fetch.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Nest's shutdown hooks close the database cleanly on SIGTERM (docker stop).
CMD ["node", "dist/src/main.js"]
