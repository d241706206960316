/**
 * The gateway's routes and the methods each takes: one table, read by the answer to `OPTIONS`
 * (`204` with `Allow`) and by the `405` of a method a route does not take, so the two never
 * disagree, and by the metrics to name any answer no single express route gave. It is the API
 * document's paths (what the routes answer is documented there) and the gateway's own pages,
 * which the document leaves out.
 */

/** One route of the table. */
export interface Route {
  /**
   * A path template: `{name}` stands for one segment; a last `{name*}` for the rest of the path,
   * which is a route only where `has` says it names something (a static file).
   */
  path: string;
  /** The methods it takes, upper case. `HEAD` is added wherever `GET` is, `OPTIONS` everywhere. */
  methods: readonly string[];
  /** For a template ending in `{name*}`: whether the rest of a path (decoded, no leading slash) is one. */
  has?: (rest: string) => boolean;
}

/** The methods an API document's path item may hold. */
const DOCUMENTED_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** The routes of an API document's `paths`. */
export function documentRoutes(paths: Readonly<Record<string, object | undefined>>): Route[] {
  return Object.entries(paths).map(([path, item]) => ({
    path,
    methods: DOCUMENTED_METHODS.filter((method) => item && method in item).map((method) => method.toUpperCase()),
  }));
}

/** What the table holds at a path: the methods `Allow` lists, and the route metrics name. */
export interface RouteMatch {
  /** Sorted; `HEAD` with `GET`, `OPTIONS` always. */
  allow: string[];
  /** The first matching route's template as express writes one (`/v1/videos/:id`): never the path itself. */
  route: string;
}

interface CompiledRoute {
  pattern: RegExp;
  allow: readonly string[];
  name: string;
  has?: (rest: string) => boolean;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function compile(route: Route): CompiledRoute {
  const segments = route.path.split('/');
  const rest = /^\{[^/]+\*\}$/.test(segments.at(-1) ?? '') ? segments.pop() : undefined;
  const source = segments.map((segment) => (/^\{[^/]+\}$/.test(segment) ? '[^/]+' : escape(segment))).join('/');
  const methods = new Set([...route.methods.map((method) => method.toUpperCase()), 'OPTIONS']);
  if (methods.has('GET')) methods.add('HEAD');
  return {
    // As express matches: any letter case, and a trailing slash.
    pattern: rest === undefined ? new RegExp(`^${source}/?$`, 'i') : new RegExp(`^${source}/(.+)$`, 'i'),
    allow: [...methods].sort(),
    name: expressName(route.path),
    ...(route.has ? { has: route.has } : {}),
  };
}

/** `/v1/videos/{id}` as express writes it, `/v1/videos/:id` (and `{file*}` as `*file`), as metrics name express's routes. */
function expressName(template: string): string {
  return template.replace(/\{([^/{}*]+)\*\}/g, '*$1').replace(/\{([^/{}]+)\}/g, ':$1');
}

function decoded(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

export class RouteTable {
  private compiled: CompiledRoute[] | undefined;

  /** `routes` is read at the first lookup (the API document is built when first needed). */
  constructor(private readonly routes: () => readonly Route[]) {}

  /**
   * The methods the route at `path` takes and the route's name, or undefined when no route is
   * there. Paths match as express matches them: any letter case, a trailing slash; several
   * templates may match one path (`/v1/videos/quote` is also a task id), and then their methods
   * add up and the first in the table names the route (the document lists `/v1/videos/quote`
   * before `/v1/videos/{id}`).
   */
  match(path: string): RouteMatch | undefined {
    this.compiled ??= this.routes().map(compile);
    const allowed = new Set<string>();
    let first: string | undefined;
    for (const route of this.compiled) {
      const match = route.pattern.exec(path);
      if (!match) continue;
      if (route.has) {
        const rest = match[1] === undefined ? undefined : decoded(match[1]);
        if (rest === undefined || !route.has(rest)) continue;
      }
      first ??= route.name;
      for (const method of route.allow) allowed.add(method);
    }
    return first === undefined ? undefined : { allow: [...allowed].sort(), route: first };
  }
}
