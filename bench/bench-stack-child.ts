/**
 * Entry point of the child process that serves the stack (`BENCH_MODE=child`, the default).
 * It waits for its settings, starts simulators and gateway, and answers the load generator's
 * calls until told to close. Run only through `launchBenchStack`.
 */
import { benchConfig, benchDatabaseDirectory } from './bench-config.js';
import { startBenchStack, type BenchStack } from './bench-stack.js';
import type { FromStack, ToStack } from './stack-protocol.js';

function send(message: FromStack): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) resolve();
    else process.send(message, undefined, undefined, () => resolve());
  });
}

let stack: BenchStack | undefined;

async function start(message: Extract<ToStack, { type: 'start' }>): Promise<void> {
  try {
    const directory = benchDatabaseDirectory();
    stack = await startBenchStack(benchConfig(message.settings, directory), directory);
    await send({ type: 'ready', addresses: stack.addresses });
  } catch (error) {
    await send({ type: 'failed', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    process.exit(1);
  }
}

async function answer(message: Extract<ToStack, { type: 'call' }>): Promise<void> {
  if (!stack) {
    await send({ type: 'result', id: message.id, ok: false, message: 'stack not started or already closed' });
    return;
  }
  try {
    let value: unknown;
    switch (message.call) {
      case 'upstreamTraffic':
        value = await stack.upstreamTraffic();
        break;
      case 'lastUpstreamCreate':
        value = await stack.lastUpstreamCreate(String(message.args[0]));
        break;
      case 'memory':
        value = await stack.memory();
        break;
      case 'cpuMs':
        value = await stack.cpuMs();
        break;
      case 'eventLoopDelay':
        value = await stack.eventLoopDelay();
        break;
      case 'close': {
        // Forget it first so that the disconnect below does not close it twice.
        const closing = stack;
        stack = undefined;
        await closing.close();
        break;
      }
    }
    await send({ type: 'result', id: message.id, ok: true, value: value ?? null });
    if (message.call === 'close') process.disconnect();
  } catch (error) {
    await send({ type: 'result', id: message.id, ok: false, message: error instanceof Error ? error.message : String(error) });
  }
}

process.on('message', (message: ToStack) => {
  if (message.type === 'start') void start(message);
  else void answer(message);
});
// The load generator going away (crash, Ctrl-C) must not leave this process serving.
process.on('disconnect', () => {
  if (stack) void stack.close().finally(() => process.exit(0));
  else process.exit(0);
});
