/**
 * Compiles the gateway's sources (`src/`, and the API client the CLI imports) into `dist/` as
 * plain JavaScript, file by file,
 * so that `npm start`, the `kling-gateway` command, the Docker image and the benchmark run
 * compiled code instead of compiling TypeScript at run time (tsx costs about 40 MB and a second
 * at every start). esbuild only strips types (about a second for the whole tree); type checking
 * is `npm run typecheck`'s job. Runs on `npm install` / `npm ci` (prepare), before `npm start`
 * (prestart) and in `npm run build`. Plain JavaScript so that it needs no TypeScript loader.
 *
 * A checkout without sources (the Docker image's runtime stage) has nothing to compile: the
 * script says so and leaves the existing build alone.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const sources = join(root, 'src');
/** The typed API client the CLI imports (`packages/client/src`), compiled beside it. */
const clientSources = join(root, 'packages/client/src');
const outdir = join(root, 'dist');

/** Every `.ts` file under `directory`. */
function typescriptFiles(directory) {
  return readdirSync(directory, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts'))
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name));
}

export async function buildServer() {
  const { build } = await import('esbuild');
  rmSync(join(outdir, 'src'), { recursive: true, force: true });
  rmSync(join(outdir, 'packages'), { recursive: true, force: true });
  await build({
    entryPoints: [...typescriptFiles(sources), ...typescriptFiles(clientSources)],
    outdir,
    outbase: root,
    bundle: false,
    format: 'esm',
    platform: 'node',
    target: 'node20.19',
    sourcemap: true,
    logLevel: 'warning',
  });
  // Files the code reads beside itself at run time: the simulators' assets, and the JSON
  // documents imported with `with { type: 'json' }` (the import keeps its relative path).
  cpSync(join(sources, 'sandbox/assets'), join(outdir, 'src/sandbox/assets'), { recursive: true });
  mkdirSync(join(outdir, 'openapi'), { recursive: true });
  cpSync(join(root, 'openapi/gateway.json'), join(outdir, 'openapi/gateway.json'));
  // Written last: \`bin/kling-gateway.js\` runs the build only when no source is newer than this.
  writeFileSync(join(outdir, 'src/.built'), `${new Date().toISOString()}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (!existsSync(sources)) {
    console.log('no sources to compile; running the existing build');
  } else {
    const started = Date.now();
    await buildServer();
    console.log(`gateway compiled into ${relative(process.cwd(), join(outdir, 'src')) || 'dist/src'} in ${Date.now() - started} ms`);
  }
}
