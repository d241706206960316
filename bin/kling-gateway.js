#!/usr/bin/env node
// The `kling-gateway` command (package.json "bin"; `npx kling-gateway …` in a clone after
// `npm install`). Runs the compiled build (`dist/`, made by `npm install` / `npm run build`),
// which starts in a fraction of the time TypeScript through tsx takes. A checkout whose build is
// missing or older than its sources (someone editing `src/`) runs the sources through tsx
// instead, so the command never runs stale code. An installation without sources (the Docker
// image) always runs the build.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// A reader that goes away early (`kling-gateway list | head -1`) ends the command quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

const sources = fileURLToPath(new URL('../src/', import.meta.url));
const compiled = new URL('../dist/src/cli/main.js', import.meta.url);
const buildStamp = fileURLToPath(new URL('../dist/src/.built', import.meta.url));

/** Whether some source file changed after the last build (a few milliseconds of `stat`s). */
function sourcesNewerThan(time) {
  for (const entry of readdirSync(sources, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    if (statSync(`${entry.parentPath ?? entry.path}/${entry.name}`).mtimeMs > time) return true;
  }
  // The API document is compiled in too (the CLI reads its operations).
  return statSync(new URL('../openapi/gateway.json', import.meta.url)).mtimeMs > time;
}

function useBuild() {
  if (!existsSync(sources)) return true;
  if (!existsSync(buildStamp)) return false;
  return !sourcesNewerThan(statSync(buildStamp).mtimeMs);
}

let runCli;
if (useBuild()) {
  ({ runCli } = await import(compiled.href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ runCli } = await import(new URL('../src/cli/main.ts', import.meta.url).href));
}
process.exitCode = await runCli(process.argv.slice(2));
