/**
 * "listening with N workers" is logged once every one of the N workers serves. It was logged
 * once every worker then running served: a worker that served and died while another of the
 * first start was still starting had been taken off, its replacement not forked yet, and the
 * line counted it among those serving.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { spawnWorkersGateway } from '../support/workers-process.js';


it('logs the listening line only once the replacement of a worker that died during the first start serves', { timeout: 90_000 }, async () => {
  const folder = mkdtempSync(join(tmpdir(), 'kg-listening-count-'));
  const preload = join(folder, 'die-once.mjs');
  const marker = join(folder, 'died');
  // Worker 1 (its first process only) ends right after it says it serves; worker 2 says it serves
  // only then, before worker 1's replacement is forked.
  writeFileSync(
    preload,
    [
      `import cluster from 'node:cluster';`,
      `import { existsSync, writeFileSync } from 'node:fs';`,
      `if (cluster.isWorker && process.env.KLING_GATEWAY_WORKER === '1' && !existsSync(${JSON.stringify(marker)})) {`,
      `  const send = process.send.bind(process);`,
      `  process.send = (message, ...rest) => { const sent = send(message, ...rest); if (message?.type === 'ready') { writeFileSync(${JSON.stringify(marker)}, ''); setTimeout(() => process.exit(1), 50); } return sent; };`,
      `}`,
      `if (cluster.isWorker && process.env.KLING_GATEWAY_WORKER === '2') {`,
      `  const send = process.send.bind(process);`,
      `  process.send = (message, ...rest) => {`,
      `    if (message?.type !== 'ready') return send(message, ...rest);`,
      `    const later = setInterval(() => { if (!existsSync(${JSON.stringify(marker)})) return; clearInterval(later); setTimeout(() => send(message, ...rest), 200); }, 10);`,
      `    return true;`,
      `  };`,
      `}`,
    ].join('\n'),
  );
  const child = spawnWorkersGateway(folder, preload);
  const lines: { msg: string }[] = [];
  let rest = '';
  let serving = 0;
  let servingWhenListening: number | undefined;
  const listening = new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      const parts = (rest + chunk.toString()).split('\n');
      rest = parts.pop()!;
      for (const part of parts.filter((each) => each.startsWith('{'))) {
        const line = JSON.parse(part) as { msg: string };
        lines.push(line);
        if (/^worker \d+ serving$/.test(line.msg)) serving++;
        if (/^worker \d+ died/.test(line.msg)) serving--;
        if (/ listening on .* with \d+ workers/.test(line.msg)) {
          servingWhenListening = serving;
          resolve();
        }
      }
    });
    child.once('exit', () => resolve());
  });
  try {
    await listening;
    expect(lines.some((line) => /^worker 1 died/.test(line.msg))).toBe(true);
    expect(lines.find((line) => / listening on /.test(line.msg))?.msg).toMatch(/with 2 workers/);
    expect(servingWhenListening).toBe(2);
  } finally {
    child.kill('SIGKILL');
  }
});
