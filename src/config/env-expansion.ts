/**
 * `${VAR}` and `${VAR:-default}` in configuration strings (SPEC §6). Defaults may themselves
 * contain references (`${PUBLIC_URL:-http://127.0.0.1:${PORT:-8080}}`): the innermost reference
 * is expanded first. An unset variable without a default is an error naming the variable, so a
 * missing secret never turns silently into an empty string.
 */

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^${}]*))?\}/;

export class MissingEnvironmentVariableError extends Error {
  constructor(readonly variable: string) {
    super(`environment variable ${variable} is not set and has no default`);
  }
}

/** Expands every reference in `text` from `env`. */
export function expandEnvironment(text: string, env: NodeJS.ProcessEnv): string {
  let current = text;
  for (let guard = 0; guard < 100; guard++) {
    const match = REFERENCE.exec(current);
    if (!match) return current;
    const [whole, name, fallback] = match as unknown as [string, string, string | undefined];
    const value = env[name];
    let replacement: string;
    if (value !== undefined && value !== '') {
      replacement = value;
    } else if (fallback !== undefined) {
      replacement = fallback;
    } else if (value === '') {
      replacement = '';
    } else {
      throw new MissingEnvironmentVariableError(name);
    }
    current = current.slice(0, match.index) + replacement + current.slice(match.index + whole.length);
  }
  throw new Error('environment references nest too deeply');
}

/** Expands references in every string of a parsed YAML document; returns a new value. */
export function expandEnvironmentDeep(value: unknown, env: NodeJS.ProcessEnv, path: string[] = []): unknown {
  if (typeof value === 'string') {
    try {
      return expandEnvironment(value, env);
    } catch (error) {
      if (error instanceof MissingEnvironmentVariableError) {
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
