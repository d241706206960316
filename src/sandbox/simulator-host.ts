/**
 * The providers' simulators in a process of their own, shared by several gateway replicas
 * (`npm run simulators`, `npm run cluster`, `deploy/`): replicas read the simulators' addresses
 * and keys from its control API (`sandbox.simulators_url`) instead of starting their own, so a
 * task created through one replica can be followed by another, and the simulators outlive any
 * replica. The control API also lets tests and operators inject faults and read the upstream
 * traffic each simulator received.
 *
 *   GET    /endpoints                     every simulator: base_url, api_key, webhook_secret, run_time_ms
 *   GET    /simulators/:id/requests       requests received (method, path, at), `?since=<ms>`
 *   GET    /simulators/:id/tasks          tasks created (id, path, body, created_at)
 *   GET    /simulators/:id/callbacks      webhooks/callbacks sent, each try with its answer
 *                                         (url, task_id, attempt, sent_at, status, detail), `?since=<ms>`
 *   POST   /simulators/:id/faults         queue a fault (`SimulatedFault`) for the next calls
 *   DELETE /simulators/:id/faults         clear queued faults
 *   POST   /simulators/:id/outcomes       how the next tasks end: {outcome, times}
 *   GET    /healthz
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import express from 'express';
import { ConfigError } from '../config/config.js';
import type { Clock } from '../core/clock.js';
import type { ProviderSimulator, SimulatedFault, SimulatedOutcome, VideoProvider } from '../core/upstream/provider.js';

/** What a replica needs to reach one simulator (the control API's `/endpoints` entries). */
export interface HostedSimulatorEndpoint {
  base_url: string;
  api_key: string;
  webhook_secret: string;
  run_time_ms: number;
}

export interface SimulatorHostOptions {
  providers: readonly VideoProvider[];
  clock: Clock;
  timing: { queuedMs: number; processingMs: number };
  host?: string;
  /** Port of the control API (0: any); the simulators take the next ports when it is not 0. */
  port?: number;
  /** Host name replicas and clients use to reach the simulators (default: `host`). */
  publicHost?: string;
}

export interface SimulatorHost {
  /** The control API's base URL. */
  url: string;
  simulators: Map<string, ProviderSimulator>;
  endpoints: Record<string, HostedSimulatorEndpoint>;
  close(): Promise<void>;
}

const FAULT_KINDS = new Set(['rate_limited', 'insufficient_credits', 'server_error', 'unavailable', 'unauthorized', 'invalid']);
const OUTCOMES = new Set<SimulatedOutcome>(['succeed', 'fail', 'content_policy']);

/** Reads a fault from a JSON body, keeping only the fields a `SimulatedFault` has. */
function faultFrom(body: Record<string, unknown>): SimulatedFault | string {
  const fault: SimulatedFault = {};
  if (body.on !== undefined) {
    if (body.on !== 'submit' && body.on !== 'status' && body.on !== 'any') return 'on must be submit, status or any';
    fault.on = body.on;
  }
  for (const field of ['times', 'status', 'delayMs'] as const) {
    const value = body[field];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) return `${field} must be a non-negative integer`;
    fault[field] = value;
  }
  if (body.kind !== undefined) {
    if (typeof body.kind !== 'string' || !FAULT_KINDS.has(body.kind)) return `kind must be one of ${[...FAULT_KINDS].join(', ')}`;
    fault.kind = body.kind as SimulatedFault['kind'];
  }
  if (body.transport !== undefined) {
    if (body.transport !== 'reset' && body.transport !== 'hang' && body.transport !== 'drop_after_accept') {
      return 'transport must be reset, hang or drop_after_accept';
    }
    fault.transport = body.transport;
  }
  if (body.headers !== undefined) fault.headers = body.headers as Record<string, string>;
  if (body.body !== undefined) fault.body = body.body;
  return fault;
}

/** The control API's port when `SIMULATORS_PORT` is not set. */
const DEFAULT_CONTROL_PORT = 9100;

/**
 * The control API's port from `SIMULATORS_PORT` (`npm run simulators`): unset, 9100; 0, any free
 * ports. The simulators take the `simulatorCount` ports after it, so a value leaving no room for
 * them is refused here, naming the variable, rather than by node for whichever port it reached.
 */
export function simulatorsPort(value: string | undefined, simulatorCount: number): number {
  const text = value?.trim() ?? '';
  if (text === '') return DEFAULT_CONTROL_PORT;
  const highest = 65_535 - simulatorCount;
  if (/^[0-9]+$/.test(text) && Number(text) <= highest) return Number(text);
  throw new ConfigError('SIMULATORS_PORT', [
    `SIMULATORS_PORT must be a whole number from 1 to ${highest} (the ${simulatorCount} simulators take the ports after it), or 0 for any free ports (got "${text}")`,
  ]);
}

export async function startSimulatorHost(options: SimulatorHostOptions): Promise<SimulatorHost> {
  const host = options.host ?? '127.0.0.1';
  const publicHost = options.publicHost ?? (host === '0.0.0.0' ? '127.0.0.1' : host);
  const simulators = new Map<string, ProviderSimulator>();
  const endpoints: Record<string, HostedSimulatorEndpoint> = {};
  const requests = new Map<string, { method: string; path: string; at: number }[]>();
  const controlPort = options.port ?? 0;
  let nextPort = controlPort === 0 ? 0 : controlPort + 1;
  try {
    for (const provider of options.providers) {
      const apiKey = `sim-${randomBytes(16).toString('hex')}`;
      const webhookSecret = randomBytes(24).toString('base64url');
      const port = nextPort;
      if (nextPort !== 0) nextPort += 1;
      const publicUrl = port === 0 ? undefined : `http://${publicHost}:${port}`;
      const simulator = provider.createSimulator({
        clock: options.clock,
        apiKey,
        webhookSecret,
        timing: options.timing,
        ...(publicUrl ? { publicUrl } : {}),
        ...(provider.resultLifetimeMs !== undefined ? { resultLifetimeMs: provider.resultLifetimeMs } : {}),
      });
      const listened = await simulator.listen(port, host);
      const baseUrl = publicUrl ?? listened;
      const log: { method: string; path: string; at: number }[] = [];
      simulator.onRequest((request) => log.push(request));
      requests.set(provider.id, log);
      simulators.set(provider.id, simulator);
      endpoints[provider.id] = {
        base_url: baseUrl,
        api_key: apiKey,
        webhook_secret: webhookSecret,
        run_time_ms: options.timing.queuedMs + options.timing.processingMs,
      };
    }
  } catch (error) {
    await Promise.all([...simulators.values()].map((simulator) => simulator.close()));
    throw error;
  }

  const app = express();
  app.disable('x-powered-by');
  app.use(express.json());
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/endpoints', (_req, res) => {
    res.json(endpoints);
  });
  const simulatorOf = (id: string, res: express.Response): ProviderSimulator | undefined => {
    const simulator = simulators.get(id);
    if (!simulator) res.status(404).json({ error: `no simulator ${id}` });
    return simulator;
  };
  app.get('/simulators/:id/requests', (req, res) => {
    if (!simulatorOf(req.params.id, res)) return;
    const since = Number(req.query.since ?? 0);
    res.json((requests.get(req.params.id) ?? []).filter((request) => request.at >= since));
  });
  app.get('/simulators/:id/tasks', (req, res) => {
    const simulator = simulatorOf(req.params.id, res);
    if (!simulator) return;
    res.json(simulator.tasks.map((task) => ({ id: task.id, path: task.path, body: task.body, created_at: task.createdAt })));
  });
  app.get('/simulators/:id/callbacks', (req, res) => {
    const simulator = simulatorOf(req.params.id, res);
    if (!simulator) return;
    const since = Number(req.query.since ?? 0);
    res.json((simulator.callbacks ?? []).filter((callback) => callback.sent_at >= since));
  });
  app.post('/simulators/:id/faults', (req, res) => {
    const simulator = simulatorOf(req.params.id, res);
    if (!simulator) return;
    const fault = faultFrom((req.body ?? {}) as Record<string, unknown>);
    if (typeof fault === 'string') {
      res.status(400).json({ error: fault });
      return;
    }
    simulator.injectFault(fault);
    res.status(204).end();
  });
  app.delete('/simulators/:id/faults', (req, res) => {
    const simulator = simulatorOf(req.params.id, res);
    if (!simulator) return;
    simulator.clearFaults();
    res.status(204).end();
  });
  app.post('/simulators/:id/outcomes', (req, res) => {
    const simulator = simulatorOf(req.params.id, res);
    if (!simulator) return;
    const { outcome, times } = (req.body ?? {}) as { outcome?: unknown; times?: unknown };
    if (typeof outcome !== 'string' || !OUTCOMES.has(outcome as SimulatedOutcome)) {
      res.status(400).json({ error: `outcome must be one of ${[...OUTCOMES].join(', ')}` });
      return;
    }
    simulator.setOutcome(outcome as SimulatedOutcome, typeof times === 'number' ? times : 1);
    res.status(204).end();
  });

  const server: Server = app.listen(controlPort, host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : controlPort;
  return {
    url: `http://${publicHost}:${port}`,
    simulators,
    endpoints,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...simulators.values()].map((simulator) => simulator.close()));
    },
  };
}

/** Reads the simulators' addresses and keys from a simulator host's control API. */
export async function fetchHostedEndpoints(url: string): Promise<Record<string, HostedSimulatorEndpoint>> {
  const response = await fetch(`${url.replace(/\/+$/, '')}/endpoints`, { signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`the simulator host at ${url} answered ${response.status}`);
  return (await response.json()) as Record<string, HostedSimulatorEndpoint>;
}
