/**
 * Removes configured secrets from text the gateway did not write itself (upstream answers,
 * webhook bodies) before it reaches a tenant or a log line. An upstream that echoes a key back
 * rarely echoes it verbatim, so every secret is looked for in the forms it travels in: as is
 * (any letter case), URL-encoded, base64 and base64url (at each of the three byte alignments, so
 * a key inside a longer encoded string, like a Basic credential, is found too), hex, and as a JSON
 * string escapes it (a quote or a backslash in a key, in a log line); and a form cut short is still
 * found from its first `MIN_PREFIX` characters on.
 *
 * A redaction runs on to the end of the word it starts in (the next space, quote, bracket or list
 * separator), not only to where the secret stops matching. Otherwise what it leaves would tell how
 * far a text matched: a tenant whose input an upstream quotes back could try each candidate for a
 * secret's next character and see which one the redaction swallowed, and so read another tenant's
 * key, or the upstream key, one character at a time.
 */

/** Shortest run of a secret's form that is taken for the secret (shorter secrets: whole only). */
export const MIN_PREFIX = 8;
/** What ends the word a redaction runs on to: white space, quotes, brackets, list separators. */
const WORD_END = /[\s"'`<>()[\]{},;&|]/;

/** Secrets shorter than this are not scrubbed (they would match ordinary words). */
const MIN_SECRET = 6;
export const REDACTED = '[redacted]';

/** One form a secret travels in; `foldCase` forms are matched in any letter case. */
interface SecretForm {
  text: string;
  foldCase: boolean;
}

/** ASCII-only lower case: keeps every index of the text where it was. */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]/g, (letter) => letter.toLowerCase());
}

/** The base64 text that stays the same wherever `bytes` sit in a longer encoded string at `offset` (0–2). */
function alignedBase64(bytes: Buffer, offset: number): string {
  const padded = Buffer.concat([Buffer.alloc(offset), bytes]);
  const encoded = padded.toString('base64').replace(/=+$/, '');
  // Characters mixing the padding's bits with the secret's, at the start and at the end, vary.
  const start = offset === 0 ? 0 : 4;
  const whole = Math.floor(padded.length / 3) * 4;
  const end = padded.length % 3 === 0 ? encoded.length : whole;
  return encoded.slice(start, end);
}

/** Every form `secret` is looked for in. */
export function secretForms(secret: string): SecretForm[] {
  const forms: SecretForm[] = [];
  const add = (text: string, foldCase: boolean) => {
    if (text.length >= Math.min(MIN_PREFIX, secret.length)) forms.push({ text, foldCase });
  };
  add(secret, true);
  add(encodeURIComponent(secret), true);
  // A form feeding a URL or form body (spaces as +).
  add(encodeURIComponent(secret).replace(/%20/g, '+'), true);
  // As a JSON string holds it (a log line, a quoted answer): a quote, a backslash or a control
  // character escaped.
  add(JSON.stringify(secret).slice(1, -1), true);
  for (const variant of new Set([secret, secret.toLowerCase(), secret.toUpperCase()])) {
    const bytes = Buffer.from(variant, 'utf8');
    add(bytes.toString('hex'), true);
    for (const offset of [0, 1, 2]) {
      const base64 = alignedBase64(bytes, offset);
      add(base64, false);
      add(base64.replace(/\+/g, '-').replace(/\//g, '_'), false);
    }
  }
  const seen = new Set<string>();
  return forms.filter((form) => {
    const key = `${form.foldCase ? 'i' : 's'}:${form.foldCase ? asciiLower(form.text) : form.text}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Removes every form of a fixed set of secrets from text and from JSON-like values. */
/** Short texts scrubbed lately are remembered: status words and upstream messages repeat on every read of a task. */
const RECENT_MAX_CHARS = 512;
const RECENT_SIZE = 1_024;
const ASCII_ONLY = /^[\x00-\x7f]*$/;

/** A form as the scrubber looks for it: folded already when matched in any case, with its first `MIN_PREFIX` characters. */
interface SoughtForm extends SecretForm {
  needle: string;
}

export class SecretScrubber {
  private readonly forms: SoughtForm[];
  /** Scrubbed short texts by their original (the forms never change, so neither does the result). */
  private readonly recent = new Map<string, string>();

  constructor(secrets: Iterable<string | undefined | null>) {
    const unique = new Set<string>();
    for (const secret of secrets) if (secret && secret.length >= MIN_SECRET) unique.add(secret);
    this.forms = [...unique].flatMap(secretForms).map((form) => {
      const text = form.foldCase ? asciiLower(form.text) : form.text;
      return { text, foldCase: form.foldCase, needle: text.slice(0, Math.min(MIN_PREFIX, text.length)) };
    });
  }

  /** True when there is nothing to look for. */
  get empty(): boolean {
    return this.forms.length === 0;
  }

  /** `text` with every run of a secret's form (from `MIN_PREFIX` characters on) replaced by `[redacted]`. */
  scrub(text: string): string {
    if (this.forms.length === 0 || text.length < Math.min(MIN_PREFIX, MIN_SECRET)) return text;
    if (text.length > RECENT_MAX_CHARS) return this.scrubNow(text);
    let clean = this.recent.get(text);
    if (clean === undefined) {
      clean = this.scrubNow(text);
      if (this.recent.size >= RECENT_SIZE) this.recent.clear();
      this.recent.set(text, clean);
    }
    return clean;
  }

  private scrubNow(text: string): string {
    // ASCII text lowers at once; other text letter by letter, so every index stays where it was.
    const folded = ASCII_ONLY.test(text) ? text.toLowerCase() : asciiLower(text);
    const ranges: [number, number][] = [];
    // Where the word running from each index ends, worked out once per text (from its end) at the
    // first match: each match walking on to it itself made thousands of starts of a secret in one
    // long word (a request target a caller chose, quoted by its log line) quadratic.
    let wordEnds: Uint32Array | undefined;
    const wordEndFrom = (index: number): number => {
      if (!wordEnds) {
        wordEnds = new Uint32Array(text.length + 1);
        wordEnds[text.length] = text.length;
        for (let at = text.length - 1; at >= 0; at -= 1) wordEnds[at] = WORD_END.test(text[at]!) ? at : wordEnds[at + 1]!;
      }
      return wordEnds[index]!;
    };
    for (const form of this.forms) {
      const haystack = form.foldCase ? folded : text;
      const { needle } = form;
      for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + 1)) {
        let end = at + needle.length;
        while (end - at < form.text.length && haystack[end] === form.text[end - at]) end += 1;
        // A whole form shorter than MIN_PREFIX matched only if complete (guaranteed by the needle).
        // On to the end of the word: where the match stopped must not show (see the file's comment).
        ranges.push([at, wordEndFrom(end)]);
      }
    }
    if (ranges.length === 0) return text;
    ranges.sort((a, b) => a[0] - b[0]);
    let result = '';
    let cursor = 0;
    for (const [start, end] of ranges) {
      if (end <= cursor) continue;
      if (start >= cursor) {
        result += text.slice(cursor, start) + REDACTED;
      }
      cursor = Math.max(cursor, end);
    }
    return result + text.slice(cursor);
  }

  /** A copy of a JSON-like value with every string (keys too) scrubbed. */
  scrubDeep<T>(value: T): T {
    if (this.forms.length === 0) return value;
    return this.walk(value) as T;
  }

  private walk(value: unknown): unknown {
    if (typeof value === 'string') return this.scrub(value);
    if (Array.isArray(value)) return value.map((item) => this.walk(item));
    if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value)) {
      const copy: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) {
        const clean = this.scrub(key);
        // A `__proto__` key (JSON.parse makes it an own key) stays a key: assigned, it would
        // become the copy's prototype, and whatever it holds would read as the copy's own fields.
        if (clean === '__proto__') Object.defineProperty(copy, clean, { value: this.walk(item), enumerable: true, writable: true, configurable: true });
        else copy[clean] = this.walk(item);
      }
      return copy;
    }
    return value;
  }
}

/**
 * The credential a URL's user part carries (an upstream base URL's, which HTTP clients send as
 * Basic auth): its password, or the user name when there is none (a token given as one); as
 * written and decoded.
 */
export function urlCredentials(url: string | undefined): string[] {
  if (!url) return [];
  let credential: string;
  try {
    const { username, password } = new URL(url);
    credential = password || username;
  } catch {
    return [];
  }
  if (!credential) return [];
  let decoded = credential;
  try {
    decoded = decodeURIComponent(credential);
  } catch {
    // A stray `%` stays as written.
  }
  return [...new Set([credential, decoded])];
}

/** Scrubs nothing (no secrets configured). */
export const NO_SECRETS = new SecretScrubber([]);
