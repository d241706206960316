#!/usr/bin/env node
// The `kling-gateway` command (package.json "bin"; `npx kling-gateway …` in a clone after
// `npm install`). Runs the compiled build (`dist/`, made by `npm install` / `npm run build`),
// which starts in a fraction of the time TypeScript through tsx takes. A checkout whose build is
// missing or older than its sources (someone editing `src/`) runs the sources through tsx
// instead, so the command never runs stale code. An installation without sources (the Docker
// image) always runs the build.
import { buildIsFresh, hasSources } from './build-freshness.js';

// stdout: a reader that goes away early (`kling-gateway list | head -1`) ends the command quietly,
// unless the command listens for that itself: `-o -` cut short by its reader is no video saved
// (exit 141). stdout that cannot be written otherwise (`> /dev/full`: a full disk) is said in one
// line and exits 2, as `-o` a file on a full disk does, rather than as a stack trace.
process.stdout.on('error', (error) => {
  if (process.stdout.listenerCount('error') > 1) return;
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  process.stderr.write(`error: cannot write to stdout: ${error.message}\n`);
  process.exit(2);
});
// stderr carries progress, hints and errors, never the result: one that cannot be written (its
// reader gone) ends nothing. Ending there made `wait` exit 0 without saving the video, and an
// error exit 0.
process.stderr.on('error', () => undefined);

const compiled = new URL('../dist/src/cli/main.js', import.meta.url);

let runCli;
if (!hasSources() || buildIsFresh()) {
  ({ runCli } = await import(compiled.href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ runCli } = await import(new URL('../src/cli/main.ts', import.meta.url).href));
}
process.exitCode = await runCli(process.argv.slice(2));
