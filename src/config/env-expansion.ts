/**
 * `${VAR}` and `${VAR:-default}` in configuration strings (SPEC §6). A default may itself hold
 * references (`${PUBLIC_URL:-http://127.0.0.1:${PORT:-8080}}`); it is expanded only when it is
 * used, so a variable needed only by an unused default is never required. Values taken from the
 * environment are inserted as they are, never expanded again (a secret may contain `${`).
 * An unset variable without a default is an error naming the variable, so a missing secret
 * never turns silently into an empty string.
 */

export class MissingEnvironmentVariableError extends Error {
  constructor(readonly variable: string) {
    super(`environment variable ${variable} is not set and has no default`);
  }
}

export class MalformedReferenceError extends Error {}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

/** Index of the `}` that closes the reference whose body starts at `from`, minding nested `${…}`. */
function closingBrace(text: string, from: number): number {
  let depth = 0;
  for (let i = from; i < text.length; i++) {
    if (text.startsWith('${', i)) {
      depth += 1;
      i += 1;
    } else if (text[i] === '}') {
      if (depth === 0) return i;
      depth -= 1;
    }
  }
  return -1;
}

/** Expands every reference in `text` from `env`. */
export function expandEnvironment(text: string, env: NodeJS.ProcessEnv): string {
  let result = '';
  let position = 0;
  for (;;) {
    const start = text.indexOf('${', position);
    if (start < 0) return result + text.slice(position);
    result += text.slice(position, start);
    const bodyStart = start + 2;
    const end = closingBrace(text, bodyStart);
    if (end < 0) throw new MalformedReferenceError(`unclosed \${ in "${text.slice(start, start + 40)}"`);
    const body = text.slice(bodyStart, end);
    const name = NAME.exec(body)?.[0];
    if (!name) throw new MalformedReferenceError(`"\${${body}}" does not start with a variable name`);
    const rest = body.slice(name.length);
    if (rest !== '' && !rest.startsWith(':-')) {
      throw new MalformedReferenceError(`"\${${body}}": only \${NAME} and \${NAME:-default} are supported`);
    }
    const value = env[name];
    if (value !== undefined && value !== '') {
      result += value;
    } else if (rest.startsWith(':-')) {
      result += expandEnvironment(rest.slice(2), env);
    } else if (value === '') {
      // Set but empty, with no default: empty is what was asked for.
    } else {
      throw new MissingEnvironmentVariableError(name);
    }
    position = end + 1;
  }
}

/** Expands references in every string of a parsed YAML document; returns a new value. */
export function expandEnvironmentDeep(value: unknown, env: NodeJS.ProcessEnv, path: string[] = []): unknown {
  if (typeof value === 'string') {
    try {
      return expandEnvironment(value, env);
    } catch (error) {
      if (error instanceof MissingEnvironmentVariableError || error instanceof MalformedReferenceError) {
        throw new ConfigFieldError(path, error.message);
      }
      throw error;
    }
  }
  if (Array.isArray(value)) return value.map((item, index) => expandEnvironmentDeep(item, env, [...path, String(index)]));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, expandEnvironmentDeep(item, env, [...path, key])]),
    );
  }
  return value;
}

/** A configuration problem tied to one field. */
export class ConfigFieldError extends Error {
  constructor(
    readonly path: string[],
    detail: string,
  ) {
    super(`${path.join('.') || '(root)'}: ${detail}`);
  }
}
