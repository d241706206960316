/**
 * `kling-gateway <command> --help` shows how the command is used (examples) and the options every
 * command takes (--json, --url, --key …), and each example uses only flags that command has.
 */
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { CliContext, pause } from '../../src/cli/cli-context.js';
import { runCliCaptured } from '../support/cli-run.js';

const program = buildProgram(new CliContext({ env: {}, stdout: process.stdout, stderr: process.stderr, pause }));
const commands = program.commands.map((command) => command.name());
const globalFlags = program.options.flatMap((option) => [option.long, option.short]).filter(Boolean);

/** The flags an example line uses, leaving out quoted text and what follows a pipe or redirect. */
function flagsOf(example: string): string[] {
  const own = example.split(/ [|>] /)[0]!.replace(/'[^']*'|"[^"]*"/g, '');
  return [...own.matchAll(/(?:^|\s)(--?[a-zA-Z][\w-]*)/g)].map((match) => match[1]!);
}

describe('help of each command', () => {
  it.each(commands.filter((name) => name !== 'help'))('%s --help has examples using its own flags, and the options every command takes', async (name) => {
    const help = await runCliCaptured([name, '--help'], { env: {} });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Global Options:');
    expect(help.stdout).toMatch(/--json/);
    const examples = help.stdout.split('\nExamples:\n')[1];
    expect(examples, `${name} --help has no Examples section`).toBeDefined();
    const lines = examples!.split('\n').filter((line) => line.trim().startsWith('$ '));
    expect(lines.length).toBeGreaterThan(0);
    const command = program.commands.find((candidate) => candidate.name() === name)!;
    const known = new Set([...globalFlags, ...command.options.flatMap((option) => [option.long, option.short]).filter(Boolean)]);
    for (const line of lines) {
      expect(line.trim().startsWith(`$ kling-gateway ${name}`), line).toBe(true);
      for (const flag of flagsOf(line.trim().slice(2))) expect(known.has(flag), `${line}: ${flag}`).toBe(true);
    }
  });

  it('examples name task ids of the shape the gateway gives (vid_ and 16 base64url characters), and usage says the rules of --group-by', async () => {
    const helps = await Promise.all(commands.filter((name) => name !== 'help').map((name) => runCliCaptured([name, '--help'], { env: {} })));
    const ids = helps.flatMap((help) => [...help.stdout.matchAll(/\bvid_[\w-]+/g)].map((match) => match[0]));
    expect(ids.length).toBeGreaterThan(0);
    expect(ids.filter((id) => !/^vid_[A-Za-z0-9_-]{16}$/.test(id))).toEqual([]);
    const usage = (await runCliCaptured(['usage', '--help'], { env: {} })).stdout.replace(/\s+/g, ' ');
    expect(usage).toContain('account only with provider, each key once');
  });

  it('help with a command that does not exist says so and suggests the one meant, rather than printing the whole help', async () => {
    const typo = await runCliCaptured(['help', 'genrate'], { env: {} });
    expect([typo.code, typo.stdout, typo.stderr]).toEqual([2, '', "error: unknown command 'genrate'\n(Did you mean generate?)\n(run with --help for usage)\n"]);
    const known = await runCliCaptured(['help', 'generate'], { env: {} });
    expect([known.code, known.stdout]).toEqual([0, expect.stringContaining('Usage: kling-gateway generate')]);
  });

  it('--help says which environment variables set the gateway, the key and the time limit', async () => {
    const help = await runCliCaptured(['--help'], { env: {} });
    for (const name of ['KLING_GATEWAY_URL', 'KLING_GATEWAY_API_KEY', 'KLING_GATEWAY_REQUEST_TIMEOUT', 'KLING_GATEWAY_DEBUG']) expect(help.stdout).toContain(name);
    expect(help.stdout).toContain('\nExamples:\n');
  });
});
