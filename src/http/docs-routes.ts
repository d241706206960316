/**
 * `/docs`: Swagger UI over the gateway's own API document. The gateway's page (`/docs/`, also as
 * `/docs/index.html`) and the files that page loads are served; every other path under `/docs` is
 * an unknown route like any other (a `404` problem), where Swagger UI's middleware alone would
 * serve the whole of its package (its stock demo page at `index.html` included) and answer
 * anything else with its page.
 */
import { Router, type RequestHandler } from 'express';
import swaggerUi from 'swagger-ui-express';
import { slashRedirect, swaggerUiPolicy } from './middleware.js';

/** The files the gateway's page loads (`swagger-ui-express`'s page template), and nothing else of the package. */
export const DOCS_FILES = [
  'swagger-ui.css',
  'swagger-ui-bundle.js',
  'swagger-ui-standalone-preset.js',
  'swagger-ui-init.js',
  'favicon-32x32.png',
  'favicon-16x16.png',
] as const;

/** The page's own paths under `/docs` (`/docs` itself redirects to `/docs/`, where the page's relative links resolve). */
export const DOCS_PAGES = ['/', '/index.html'] as const;

/** `/docs`'s routes, mounted there; `document` builds the API document (when first asked for). */
export function docsRoutes(document: () => object): Router {
  const router = Router();
  router.use(swaggerUiPolicy());
  // Swagger UI's page and its init script (which `serve` answers) are made by `setup`: made before
  // either is served, at the first request for one (the document is about a tenth of a start's CPU).
  let page: RequestHandler | undefined;
  const ready: RequestHandler = (_req, _res, next) => {
    page ??= swaggerUi.setup(document(), { customSiteTitle: 'Kling Gateway API' });
    next();
  };
  // `/docs` without its slash: the page's links (`./swagger-ui.css`) would resolve against `/`.
  router.get([...DOCS_PAGES], slashRedirect(), ready, (req, res, next) => page!(req, res, next));
  router.get(
    DOCS_FILES.map((file) => `/${file}`),
    ready,
    ...swaggerUi.serve,
  );
  return router;
}
