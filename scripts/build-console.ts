/**
 * Builds the web console (`console/src`, Preact + TypeScript) into `console/dist` with esbuild:
 * one JavaScript bundle, one stylesheet and index.html, all served by the gateway at /console.
 * Runs on `npm install` (prepare), in `npm run build`, and before `npm start` when a console source
 * is newer than the build (`bin/build-freshness.js`); nothing is fetched at run time.
 */
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../console/', import.meta.url));
const outdir = `${root}dist`;

export async function buildConsole(options: { minify?: boolean } = {}): Promise<void> {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  await build({
    entryPoints: { app: `${root}src/main.tsx` },
    outdir,
    bundle: true,
    format: 'esm',
    target: ['es2022', 'chrome109', 'firefox115', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: options.minify ?? true,
    sourcemap: true,
    legalComments: 'linked',
    logLevel: 'warning',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  cpSync(`${root}index.html`, `${outdir}/index.html`);
  cpSync(`${root}favicon.svg`, `${outdir}/favicon.svg`);
  // Written last: `npm start` rebuilds a console no source is older than this (`consoleIsFresh`).
  writeFileSync(`${outdir}/.built`, `${new Date().toISOString()}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const started = Date.now();
  await buildConsole();
  console.log(`console built into console/dist in ${Date.now() - started} ms`);
}
