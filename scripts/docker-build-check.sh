#!/usr/bin/env bash
# Performs the Dockerfile's steps without a Docker engine, in a scratch directory, then starts
# the result the way the image's CMD does and walks one video through it. Run it after changing
# the Dockerfile, package.json or the build.
#
#   bash scripts/docker-build-check.sh
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
port="${CHECK_PORT:-18480}"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== build stage (in $work/build)"
mkdir -p "$work/build" "$work/app"
cd "$work/build"
# COPY package.json package-lock.json tsconfig.json ./ ; COPY scripts console packages openapi bin ; RUN npm ci
cp "$repo/package.json" "$repo/package-lock.json" "$repo/tsconfig.json" .
for dir in scripts console packages openapi bin; do cp -r "$repo/$dir" "./$dir"; done
rm -rf ./console/dist
SCARF_ANALYTICS=false npm ci --no-audit --no-fund
# COPY src ./src
cp -r "$repo/src" ./src
# RUN npm run build && npm prune --omit=dev
npm run build
npm prune --omit=dev

echo "== runtime stage (in $work/app)"
cd "$work/app"
# COPY --from=build node_modules, dist ; COPY package.json config.yaml ./
cp -r "$work/build/node_modules" "$work/build/dist" "$work/build/bin" .
mkdir -p console && cp -r "$work/build/console/dist" console/dist
cp "$repo/package.json" "$repo/config.yaml" .
mkdir -p data

echo "== CMD node dist/src/main.js"
NODE_ENV=production PORT="$port" HOST=127.0.0.1 DATABASE_URL="sqlite:$work/app/data/kling-gateway.db" \
  LOG_LEVEL=warn NODE_OPTIONS=--max-old-space-size=160 node dist/src/main.js &
pid=$!
for _ in $(seq 1 50); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fs "http://127.0.0.1:$port/readyz"; echo

echo "== one video through the built gateway"
id=$(curl -fs -X POST "http://127.0.0.1:$port/v1/videos" \
  -H 'authorization: Bearer dev-key' -H 'content-type: application/json' \
  -d '{"model":"kling-v3","prompt":"a lighthouse in a storm","duration":5}' | node -pe 'JSON.parse(require("fs").readFileSync(0)).id')
task=$(curl -fs "http://127.0.0.1:$port/v1/videos/$id?wait=30" -H 'authorization: Bearer dev-key')
status=$(node -pe 'JSON.parse(process.argv[1]).status' "$task")
url=$(node -pe 'JSON.parse(process.argv[1]).outputs[0]?.url ?? ""' "$task")
echo "task $id: $status"
[ "$status" = "succeeded" ] || { echo "expected succeeded"; exit 1; }
curl -fs "$url" -o "$work/video.mp4"
head -c 8 "$work/video.mp4" | tail -c 4 | grep -q ftyp || { echo "result is not an MP4"; exit 1; }
echo "result: $(wc -c < "$work/video.mp4") bytes of MP4"

echo "== the console and the CLI from the built image"
curl -fs "http://127.0.0.1:$port/console/" | grep -q '<div id="app">' || { echo "console not served"; exit 1; }
KLING_GATEWAY_URL="http://127.0.0.1:$port" KLING_GATEWAY_API_KEY=dev-key node bin/kling-gateway.js get "$id" | head -1
echo "OK: the Dockerfile's steps build and run"
