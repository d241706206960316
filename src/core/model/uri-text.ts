/**
 * Whether a URL field's text is an RFC 3986 URI as written, and in which words it is not.
 *
 * The gateway sends a URL upstream exactly as the caller wrote it (the task's `request` shows
 * that text), and the upstreams type these fields `format: uri`: a URL a browser would mend
 * (a space, `é`, `|`, a bare `%`, `\` read as `/`) is refused there, after the task was made and
 * maybe on every provider in turn. So the text must already be a URI; the words say how to write
 * it as one. Nothing is rewritten: `https://example.com/ü.png` is refused, its URI
 * `https://example.com/%C3%BC.png` taken, so one resource has one spelling a create can carry.
 */
import { domainToASCII } from 'node:url';

/** The characters RFC 3986 lets a URI hold outside an IPv6 host's brackets (`%` only before two hex digits). */
const URI_CHARACTER = /[A-Za-z0-9\-._~:/?#@!$&'()*+,;=%]/;
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;
/** The scheme, the `//` and the authority (up to the first `/`, `?` or `#`). */
const AUTHORITY = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/;
/** An authority whose brackets are an IP literal's: `[userinfo@][hex:.]`, then an optional port. */
const BRACKETED_HOST = /^(?:[^[\]]*@)?\[[0-9A-Fa-f:.]+\](?::[0-9]*)?$/;

/** The UTF-8 percent-escapes of one character (`ü` → `%C3%BC`, `|` → `%7C`). */
function escaped(character: string): string {
  return [...Buffer.from(character, 'utf8')].map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`).join('');
}

/**
 * Why `url` is no RFC 3986 URI as written, for a 400 (`undefined` when it is one). Read after the
 * checks of control characters, lone surrogates and white space at the ends.
 */
export function uriProblem(url: string): string | undefined {
  const authority = AUTHORITY.exec(url);
  const authorityEnd = authority ? authority[0].length : 0;
  const authorityStart = authority ? authorityEnd - authority[1]!.length : 0;
  const fragmentStart = url.indexOf('#');
  const userinfoEnd = authority ? url.indexOf('@', authorityStart) : -1;
  let at = 0;
  for (const character of url) {
    const index = at;
    at += character.length;
    // The fragment runs to the end and holds no `#`; the userinfo ends at the authority's first `@`.
    if (character === '#' && index > fragmentStart) return 'holds a second "#", which a fragment writes as %23';
    if (character === '@' && index > userinfoEnd && index < authorityEnd) {
      return 'holds a second "@" before its host, which a URI\'s user part writes as %40';
    }
    if (character === '%') {
      if (BAD_ESCAPE.test(url.slice(index, index + 3))) {
        return `holds "${url.slice(index, index + 3)}", which is no percent-escape (a % and two hex digits); a literal % is written %25`;
      }
      continue;
    }
    if (URI_CHARACTER.test(character)) continue;
    const inAuthority = index >= authorityStart && index < authorityEnd;
    if (character === '[' || character === ']') {
      if (inAuthority && BRACKETED_HOST.test(authority![1]!)) continue;
      return `holds "${character}", which a URI has only around an IPv6 host; elsewhere it is written ${escaped(character)}`;
    }
    if (character === ' ') return 'holds a space, which a URI writes as %20';
    if (character === '\\') return 'holds a backslash, which a URI does not (browsers read it as /); write / or %5C';
    if (character.codePointAt(0)! > 0x7f) {
      if (inAuthority) {
        const host = authority![1]!.replace(/^.*@/, '').replace(/:[0-9]*$/, '');
        const ascii = domainToASCII(host);
        return ascii
          ? `holds "${character}" in its host, which a URI spells in ASCII: ${ascii}`
          : `holds "${character}" in its host, which is no valid internationalized domain name`;
      }
      return `holds "${character}", which a URI writes percent-encoded as UTF-8: ${escaped(character)}`;
    }
    return `holds "${character}", which a URI writes as ${escaped(character)}`;
  }
  // `https:///x`: a browser finds the host `x`, an RFC 3986 reader an empty host and the path `/x`.
  if (authority && authority[1] === '' && url[authorityEnd] === '/') return 'has a third slash after the scheme, where its host should start';
  return undefined;
}
