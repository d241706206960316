// Whether the compiled build (`dist/`) is as new as the sources it was made from. Shared by the
// `kling-gateway` command (which runs the sources through tsx when the build is stale) and
// `scripts/build-server.mjs --if-stale` (`npm start`'s prestart, which rebuilds only then).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
/** Written last by every build. */
export const buildStamp = `${root}dist/src/.built`;
/** What the build compiles: the gateway's sources, the API client the CLI imports, the API document. */
const inputs = [`${root}src`, `${root}packages/client/src`, `${root}openapi/gateway.json`];

/** Whether this checkout has sources at all (the Docker image's runtime stage has none). */
export function hasSources() {
  return existsSync(`${root}src`);
}

/** Whether some input changed after `time` (a few milliseconds of `stat`s). */
function inputsNewerThan(time) {
  for (const input of inputs) {
    if (!existsSync(input)) continue;
    const stat = statSync(input);
    if (!stat.isDirectory()) {
      if (stat.mtimeMs > time) return true;
      continue;
    }
    for (const entry of readdirSync(input, { withFileTypes: true, recursive: true })) {
      if (entry.isFile() && statSync(`${entry.parentPath ?? entry.path}/${entry.name}`).mtimeMs > time) return true;
    }
  }
  return false;
}

/** Whether `dist/` holds a finished build no source is newer than. */
export function buildIsFresh() {
  if (!existsSync(buildStamp)) return false;
  return !inputsNewerThan(statSync(buildStamp).mtimeMs);
}
