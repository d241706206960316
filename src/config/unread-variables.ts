/**
 * Environment variables that look like one the configuration reads but are not it
 * (`FREEPIK_APIKEY` for `FREEPIK_API_KEY`, `GATEWAY_API_KEY` for `GATEWAY_API_KEYS`). The
 * configuration reads only the variables its `${…}` references name, so such a variable is
 * silently ignored: a misspelt upstream key leaves the deployment in the sandbox, a misspelt
 * `GATEWAY_API_KEYS` leaves `dev-key` in use. The start logs each one as a warning and
 * `check-config` warns about it; neither shows its value.
 */
import { parseYamlText } from './yaml-text.js';

/** Variables the gateway and its CLI read directly, not through the configuration file. */
const READ_DIRECTLY = [
  'CONFIG_FILE',
  'WORKERS',
  'GATEWAY_MAX_HEAP_MB',
  'SIMULATORS_HOST',
  'SIMULATORS_PORT',
  'SIMULATORS_PUBLIC_HOST',
  'KLING_GATEWAY_URL',
  'KLING_GATEWAY_API_KEY',
  'KLING_GATEWAY_REQUEST_TIMEOUT',
  'KLING_GATEWAY_DEBUG',
];

/** Names shorter than this (once underscores are dropped) are compared exactly only: `PORT`, `HOST`. */
const MIN_FUZZY_LENGTH = 8;

/** Every variable name a `${NAME}` or `${NAME:-…}` in a string of `document` refers to, defaults included. */
function referencedNames(document: unknown, into: Set<string>): Set<string> {
  if (typeof document === 'string') {
    for (const match of document.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) into.add(match[1]!);
  } else if (Array.isArray(document)) {
    for (const item of document) referencedNames(item, into);
  } else if (document && typeof document === 'object') {
    for (const value of Object.values(document)) referencedNames(value, into);
  }
  return into;
}

/** A name as its writer may have misremembered it: letter case and underscores do not count. */
function normalized(name: string): string {
  return name.toUpperCase().replace(/_/g, '');
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours. */
function distance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = best;
    }
  }
  return rows[a.length]![b.length]!;
}

export interface UnreadVariable {
  /** The variable set in the environment, which nothing reads. */
  name: string;
  /** The variable the configuration reads that it most likely meant. */
  meant: string;
}

/**
 * The variables set (non-empty) in `env` that the configuration file `configText` does not read
 * but that differ from one it reads only by letter case, underscores or one character. A file
 * that is not YAML gives none (the start refuses it anyway).
 */
export function unreadVariables(configText: string, env: NodeJS.ProcessEnv): UnreadVariable[] {
  let document: unknown;
  try {
    document = parseYamlText(configText);
  } catch {
    return [];
  }
  const read = referencedNames(document, new Set(READ_DIRECTLY));
  const found: UnreadVariable[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || value === '' || read.has(name)) continue;
    const given = normalized(name);
    let meant: string | undefined;
    for (const candidate of read) {
      const wanted = normalized(candidate);
      if (given === wanted || (wanted.length >= MIN_FUZZY_LENGTH && distance(given, wanted) <= 1)) {
        meant = candidate;
        if (given === wanted) break;
      }
    }
    if (meant !== undefined) found.push({ name, meant });
  }
  return found.sort((a, b) => a.name.localeCompare(b.name));
}

/** The warning for one unread variable, naming both variables and never the value. */
export function unreadVariableWarning(variable: UnreadVariable, configName: string): string {
  return `environment variable ${variable.name} is set, but ${configName} reads no such variable (did you mean ${variable.meant}?): it is ignored`;
}
