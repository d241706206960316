/**
 * What a JSON body's bytes say that its parsed value no longer does, checked once express.json
 * read it:
 * - bytes that are no UTF-8 (a stray byte, an overlong form, an encoded surrogate, a sequence cut
 *   short), which the parser reads as U+FFFD: a prompt or a URL other than the one written;
 * - an object that names a key twice. `JSON.parse` keeps the last value and drops the first
 *   without a word, so a proxy, a log or a signature check that read the first would have judged
 *   another request than the one served. Like a header or a query parameter given twice, it is
 *   refused (400 naming where), never read one way or the other.
 */
import type { RequestHandler } from 'express';
import { isUtf8 } from 'node:buffer';
import { problems } from '../core/model/problems.js';

/** One open object (its keys so far, the one being read) or array (the index being read). */
interface Frame {
  keys: Set<string> | undefined;
  key: string;
  index: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The path (`metadata.a`, `multi_shot.1.duration`, as validation errors name fields) of the first
 * key an object of `text` gives twice, compared as decoded (`"\u0070rompt"` is `"prompt"`);
 * undefined when none is. `text` is JSON `JSON.parse` already read: nothing else is checked.
 */
export function repeatedJsonKey(text: string): string | undefined {
  const frames: Frame[] = [];
  let expectKey = false;
  for (let at = 0; at < text.length; at += 1) {
    const code = text.charCodeAt(at);
    if (code === QUOTE) {
      // The closing quote: the next one not escaped by an odd run of backslashes.
      let end = at;
      for (;;) {
        end = text.indexOf('"', end + 1);
        let before = end - 1;
        while (text.charCodeAt(before) === BACKSLASH) before -= 1;
        if ((end - 1 - before) % 2 === 0) break;
      }
      const frame = frames[frames.length - 1];
      if (expectKey && frame?.keys) {
        const quoted = text.slice(at, end + 1);
        const key = quoted.includes('\\') ? (JSON.parse(quoted) as string) : quoted.slice(1, -1);
        if (frame.keys.has(key)) return [...frames.slice(0, -1).map((open) => (open.keys ? open.key : String(open.index))), key].join('.');
        frame.keys.add(key);
        frame.key = key;
        expectKey = false;
      }
      at = end;
    } else if (code === 0x7b /* { */) {
      frames.push({ keys: new Set(), key: '', index: 0 });
      expectKey = true;
    } else if (code === 0x5b /* [ */) {
      frames.push({ keys: undefined, key: '', index: 0 });
      expectKey = false;
    } else if (code === 0x7d /* } */ || code === 0x5d /* ] */) {
      frames.pop();
      expectKey = false;
    } else if (code === 0x2c /* , */) {
      const frame = frames[frames.length - 1];
      if (frame?.keys) expectKey = true;
      else if (frame) frame.index += 1;
    }
  }
  return undefined;
}

/**
 * `express.json`'s `verify` (keeps each body's bytes) and the check run once it parsed the body:
 * bytes that are no UTF-8, or a key given twice, are a 400.
 */
export function jsonBodyBytes(): { verify: (req: object, res: unknown, body: Buffer) => void; check: RequestHandler } {
  const bodies = new WeakMap<object, Buffer>();
  return {
    verify: (req, _res, body) => void bodies.set(req, body),
    check: (req, _res, next) => {
      const body = bodies.get(req);
      if (body === undefined) return next();
      bodies.delete(req);
      if (!isUtf8(body)) return next(problems.validation([{ path: '(body)', message: 'not valid UTF-8' }], 'The body is not valid UTF-8: send JSON in UTF-8.'));
      const path = repeatedJsonKey(body.toString('utf8'));
      if (path === undefined) return next();
      next(problems.validation([{ path, message: 'given more than once; give it once' }], `The body gives ${path} more than once.`));
    },
  };
}
