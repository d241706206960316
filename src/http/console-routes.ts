/**
 * `/console`: the web console's static files (built into `console/dist` by `npm install` /
 * `npm run build`). The console talks to the API with the key the user signs in with; these files
 * hold no secret and need no auth. A strict Content-Security-Policy keeps the page to its own
 * script and styles; media may come from any http(s) origin, since outputs are served by the
 * providers' (or the simulators') file hosts.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router } from 'express';
import { slashRedirect } from './middleware.js';

const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob: http: https:",
  "media-src 'self' blob: http: https:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "object-src 'none'",
].join('; ');

/** `console/dist` from the sources (src/http) or from the compiled build (dist/src/http); null when not built. */
export function findConsoleAssets(): string | null {
  for (const relative of ['../../console/dist/', '../../../console/dist/']) {
    const directory = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(`${directory}index.html`)) return directory;
  }
  return null;
}

/**
 * Whether `file` (a path below `/console/`, decoded) is one of the console's files in `directory`,
 * as the static files answer it: a file inside the directory, no segment hidden (dot files are
 * not served). Asked per request, so a console rebuilt while the gateway runs counts at once.
 */
export function consoleHasFile(directory: string | null): (file: string) => boolean {
  if (!directory) return () => false;
  const root = resolve(directory);
  return (file) => {
    if (file.split('/').some((segment) => segment.startsWith('.'))) return false;
    const path = resolve(root, file);
    if (!path.startsWith(`${root}${sep}`)) return false;
    try {
      return statSync(path).isFile();
    } catch {
      return false;
    }
  };
}

/** The console's files from `directory` (null: not built, which the answer explains). */
export function consoleRoutes(directory: string | null = findConsoleAssets()): Router {
  const router = Router();
  router.use((_req, res, next) => {
    res.set({
      'content-security-policy': CONTENT_SECURITY_POLICY,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
    });
    next();
  });
  if (!directory) {
    router.use((_req, res) => {
      res
        .status(503)
        .type('text/plain')
        .send('The console is not built. Run `npm run build:console` (npm install does it) and restart the gateway.\n');
    });
    return router;
  }
  // `/console` to `/console/` here: express.static's own redirect copies the request target,
  // host and all when it is in absolute form (`slashRedirect`).
  router.get('/', slashRedirect());
  // ETags and revalidation on every load: a new build is picked up at once, unchanged files cost a 304.
  router.use(express.static(directory, { index: 'index.html', maxAge: 0, fallthrough: true, redirect: false }));
  return router;
}
