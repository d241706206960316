import { GatewayClient } from './bench-client.js';
import { benchCreateRequest } from './bench-requests.js';
import { readBenchSettings } from './bench-settings.js';
import { runOpenLoop } from './load.js';
import { cpuMsOf, launchProcessStack } from './process-stack.js';
const settings = readBenchSettings(process.env);
const stack = await launchProcessStack(settings);
const gw = new GatewayClient(stack.addresses);
const body = JSON.stringify(benchCreateRequest('freepik'));
const mode = process.env.P_MODE ?? 'create';
if (mode === 'create') {
  for (let i = 0; i < 100; i++) await gw.createStatus(body);
  await gw.waitUntilIdle();
  const c0 = cpuMsOf(stack.gateway.pid);
  const [r] = await runOpenLoop(Number(process.env.P_RATE ?? 60), 15, [() => gw.createStatus(body)]);
  const c1 = cpuMsOf(stack.gateway.pid);
  await gw.waitUntilIdle();
  const c2 = cpuMsOf(stack.gateway.pid);
  console.log('sent', r!.sent, 'p50', r!.latenciesMs.sort((a,b)=>a-b)[r!.latenciesMs.length>>1], 'cpu/create during', (c1-c0)/r!.sent, 'incl. tail', (c2-c0)/r!.sent);
} else {
  const ids: string[] = [];
  for (let i = 0; i < 50; i++) ids.push((await gw.create(JSON.parse(body))).id);
  await gw.waitUntilIdle();
  let n = 0;
  const c0 = cpuMsOf(stack.gateway.pid);
  const { runClosedLoop } = await import('./load.js');
  const [r] = await runClosedLoop(50, 10, [() => gw.getStatus(ids[n++ % ids.length]!)]);
  console.log('reads', r!.latenciesMs.length, 'rps', r!.throughput, 'cpu/read µs', (cpuMsOf(stack.gateway.pid)-c0)*1000/r!.latenciesMs.length);
}
await stack.close();
