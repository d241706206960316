#!/usr/bin/env node
/**
 * `npm test`: the type check of both projects (`npm run typecheck`'s two tsc runs) and `vitest run`
 * side by side, instead of one after the other: the type check is half a minute of one core's work
 * while the test files mostly wait on sockets, processes and timers. Arguments go to vitest.
 *
 * What each tsc says is printed once it ends (so it does not land inside vitest's report), and
 * the exit code is non-zero when the type check or any test failed. Unlike `typecheck && vitest`,
 * a type error no longer keeps the tests from running; it still fails the run.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
const vitest = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url));

/** Runs node with `args`; resolves to its exit code (1 when killed by a signal). */
function run(args, { capture }) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', capture ? 'pipe' : 'inherit', capture ? 'pipe' : 'inherit'] });
    let output = '';
    if (capture) {
      child.stdout.on('data', (chunk) => (output += chunk));
      child.stderr.on('data', (chunk) => (output += chunk));
    }
    child.on('error', (error) => {
      output += `${error.message}\n`;
      resolve({ code: 1, output });
    });
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

async function typecheck(project) {
  const { code, output } = await run([tsc, '-p', project, '--noEmit'], { capture: true });
  return { project, code, output };
}

const [checks, tests] = await Promise.all([
  Promise.all([typecheck('tsconfig.json'), typecheck('console/tsconfig.json')]),
  run([vitest, 'run', ...process.argv.slice(2)], { capture: false }),
]);

for (const { project, code, output } of checks) {
  if (output) process.stdout.write(output);
  console.log(code === 0 ? `typecheck ${project}: no errors` : `typecheck ${project}: FAILED (tsc exited ${code})`);
}
process.exitCode = tests.code !== 0 || checks.some((check) => check.code !== 0) ? 1 : 0;
