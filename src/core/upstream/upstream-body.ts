import { uriProblem } from '../model/uri-text.js';

/**
 * Bodies on the wire, both ways: what an adapter sends is exactly the fields it set, and what
 * comes back (an answer, a webhook, a callback) is read as JSON whatever form it arrived in.
 */

/**
 * The body without its `undefined` keys, so the JSON sent upstream is exactly the fields that
 * were set (an absent field and a field set to nothing are not the same to every upstream).
 */
export function compact<T extends object>(body: T): T {
  return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined)) as T;
}

/**
 * The JSON value of a body that may arrive as bytes (a webhook's raw body), as text, or already
 * parsed (an HTTP client's answer). `undefined` when bytes or text are not JSON.
 */
export function readJsonBody(body: unknown): unknown {
  const text = Buffer.isBuffer(body) ? body.toString('utf8') : body;
  if (typeof text !== 'string') return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Characters an RFC 3986 URI may hold after its authority (path, query, fragment): unreserved,
 * sub-delims, `:`, `@`, `/`, `?`, and `%` starting an escape. Anything else is escaped.
 */
const NOT_IN_URI_TAIL = /%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]/g;

/**
 * An http(s) URL as the RFC 3986 URI that names the same resource, for an upstream field typed
 * `format: uri`. A URL that already is a URI as written goes exactly as written: the canonical
 * request takes no other (`uri-text.ts`), and the task's `request` shows what was sent (the
 * parser's `href` would lowercase the host, drop a default or empty port and `.` segments).
 * Otherwise (an adapter called with a URL a browser would mend: a space, `|`, `[`, `é`, a bare
 * `%`) the host becomes ASCII (punycode) and every other character a URI cannot hold is
 * percent-encoded as UTF-8 (a bare `%` as `%25`).
 */
export function toHttpUri(url: string): string {
  if (uriProblem(url) === undefined) return url;
  const { href, protocol } = new URL(url);
  const escape = (part: string) =>
    part.replace(NOT_IN_URI_TAIL, (character) => (character === '%' ? '%25' : encodeURIComponent(character)));
  // The tail is read from `href` itself, from the path's first `/` (user info and host hold none
  // as the parser writes them): `search` and `hash` are empty for a `?` or `#` with nothing after
  // it, so a tail measured from them cut the head short and moved its `/` (`…/v.mp4?` went as
  // `…//v.mp4`, another path). The parser has escaped every `?` and `#` before the query's and the
  // fragment's own.
  const pathAt = href.indexOf('/', protocol.length + 2);
  const head = pathAt < 0 ? href : href.slice(0, pathAt);
  const tail = pathAt < 0 ? '' : href.slice(pathAt);
  // A fragment is everything after the first `#`; a later one is escaped like any other character.
  const hashAt = tail.indexOf('#');
  const pathAndQuery = hashAt < 0 ? tail : tail.slice(0, hashAt);
  const fragment = hashAt < 0 ? '' : `#${escape(tail.slice(hashAt + 1))}`;
  return `${head}${escape(pathAndQuery)}${fragment}`;
}

/** How much of an error body is read for its words. */
const ERROR_PAGE_READ = 16 * 1024;

/** Markup that makes a body an HTML page: a doctype or a `<html>`, `<head>` or `<body>` tag. */
const HTML_PAGE = /<!doctype\s+html|<\/?(html|head|body)[\s>]/i;

/**
 * The human text of an error body that is not JSON, for a message: plain text as it came; an HTML
 * page (a proxy's or load balancer's error page in front of the upstream) as `an HTML page (…)`
 * with its title, or its text without the markup when it has none.
 */
export function errorPageText(text: string): string {
  // Only the start is read (the title is near the top, and messages are cut far shorter): the
  // tag patterns below would search a megabyte of unclosed tags to its end from every one of them.
  const trimmed = text.slice(0, ERROR_PAGE_READ).trim();
  if (!HTML_PAGE.test(trimmed)) return trimmed;
  const words = (html: string) =>
    html
      .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, ' ')
      .replace(/<[^<>]*>/g, ' ')
      .replace(/&nbsp;/gi, ' ')
      .replace(/\s+/g, ' ')
      .trim();
  const title = /<title[^<>]*>([\s\S]*?)<\/title\s*>/i.exec(trimmed)?.[1];
  const said = (title !== undefined ? words(title) : '') || words(trimmed);
  return said ? `an HTML page (${said})` : 'an HTML page';
}
