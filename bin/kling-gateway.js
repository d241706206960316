#!/usr/bin/env node
// The `kling-gateway` command (package.json "bin"; `npx kling-gateway …` in a clone after
// `npm install`). Runs the TypeScript sources through tsx, as `npm start` does; an installation
// without sources (the Docker image) runs the compiled build.
import { existsSync } from 'node:fs';

// A reader that goes away early (`kling-gateway list | head -1`) ends the command quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

const source = new URL('../src/cli/main.ts', import.meta.url);
let runCli;
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ runCli } = await import(source.href));
} else {
  ({ runCli } = await import(new URL('../dist/src/cli/main.js', import.meta.url).href));
}
process.exitCode = await runCli(process.argv.slice(2));
