// Whether the compiled build (`dist/`) is as new as the sources it was made from. Shared by the
// `kling-gateway` command (which runs the sources through tsx when the build is stale) and
// `scripts/build-server.mjs --if-stale` (`npm start`'s prestart, which rebuilds only then, the
// web console's bundle in `console/dist` likewise).
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

/** The web console's bundle, and what it is built from (`scripts/build-console.ts`). */
export const consoleStamp = `${root}console/dist/.built`;
const consoleInputs = [`${root}console/src`, `${root}console/index.html`, `${root}console/favicon.svg`];

/** Whether some of `files` (files or folders) changed after `time` (a few milliseconds of `stat`s). */
function inputsNewerThan(files, time) {
  for (const input of files) {
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
  return !inputsNewerThan(inputs, statSync(buildStamp).mtimeMs);
}

/** Whether this checkout has the web console's sources (the Docker image's runtime stage has none). */
export function hasConsoleSources() {
  return existsSync(`${root}console/src`);
}

/** Whether `console/dist` holds a finished console build no console source is newer than. */
export function consoleIsFresh() {
  if (!existsSync(consoleStamp)) return false;
  return !inputsNewerThan(consoleInputs, statSync(consoleStamp).mtimeMs);
}
