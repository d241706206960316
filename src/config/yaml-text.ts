/**
 * The YAML of a configuration file read into plain values, or refused by line and column in the
 * parser's words without any of the file's text: a line may hold a key written straight into the
 * file, and some of the parser's messages go on to quote it (an unresolved alias, a block scalar
 * header, a tag, an escape sequence). A warning (an unknown tag, which takes the tag's word out
 * of the value without a word) refuses the file too, and is never left to the parser, which has
 * node print it on standard error with the whole line; so does an anchor no alias uses (a key
 * written `&…` would otherwise be read as an anchor and nothing).
 */
import { isCollection, isScalar, LineCounter, parseDocument, visit, type YAMLError } from 'yaml';

/** Why a text is not YAML: where it breaks (when known), and what breaks there, in the parser's words only. */
export class YamlTextError extends Error {
  constructor(
    readonly description: string,
    /** 1-based. */
    readonly line: number | undefined,
    readonly column: number | undefined,
  ) {
    super(line === undefined ? description : `${description} at line ${line}, column ${column}`);
  }
}

/**
 * The first line of a parser message, without what it quotes of the file: the part after `: `
 * (`Unresolved alias (…): <name>`, `Block scalar header includes extra characters: <text>`,
 * `Unresolved tag: <tag>`, a lexer error's `: "<source>"`) and an escape sequence's characters.
 */
function parserWords(message: string): string {
  return message
    .split('\n')[0]!
    .replace(/ at line \d+, column \d+:?\s*$/, '')
    .replace(/: [\s\S]*$/, '')
    .replace(/^(Invalid escape sequence) .*$/, '$1');
}

function refusal(message: string, offset: number | undefined, lines: LineCounter): YamlTextError {
  const at = offset === undefined ? undefined : lines.linePos(offset);
  return new YamlTextError(parserWords(message), at?.line, at?.col);
}

/** `text` as plain values (what `yaml`'s `parse` gives), or a `YamlTextError`. */
export function parseYamlText(text: string): unknown {
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const problem: YAMLError | undefined = document.errors[0] ?? document.warnings[0];
  if (problem) throw refusal(problem.message, problem.pos[0], lines);
  // An alias without its anchor is found only when the values are read, and that error says
  // neither where nor anything but the alias's name.
  let unresolved: { offset: number | undefined } | undefined;
  const aliased = new Set<string>();
  visit(document, {
    Alias(_key, alias) {
      aliased.add(alias.source);
      if (alias.resolve(document)) return undefined;
      unresolved = { offset: alias.range?.[0] };
      return visit.BREAK;
    },
  });
  if (unresolved) throw refusal('Unresolved alias (the anchor must be set before the alias)', unresolved.offset, lines);
  // A value written `&abc…` is an anchor, and what follows it the value (nothing: null): a key
  // starting with `&` would be dropped without a word. An anchor no alias uses is refused.
  let unused: { offset: number | undefined } | undefined;
  visit(document, {
    Node(_key, node) {
      const anchor = isScalar(node) || isCollection(node) ? node.anchor : undefined;
      if (!anchor || aliased.has(anchor)) return undefined;
      unused = { offset: node.range?.[0] };
      return visit.BREAK;
    },
  });
  if (unused) throw refusal('An anchor no alias refers to (a value starting with & must be quoted)', unused.offset, lines);
  try {
    return document.toJS();
  } catch (error) {
    throw refusal((error as Error).message, undefined, lines);
  }
}
