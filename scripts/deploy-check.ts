/**
 * `npm run deploy:check`: checks `deploy/docker-compose.yml` without a Docker engine, then runs
 * what it describes with local processes:
 *
 * 1. reads the compose file and `deploy/nginx.conf`: every service the deployment needs is there,
 *    each gateway waits for the migration to complete and is given the time its graceful stop
 *    may take before Docker kills it and every provider and storage variable config.yaml reads,
 *    every health check, build context,
 *    Dockerfile, mounted file and command it names exists (commands as the build compiles them);
 * 2. builds (`npm run build`, as the image does), runs the migration command once against the
 *    local PostgreSQL (in a schema of its own), starts the simulators and the three replicas
 *    with the compose file's environment (service names mapped to local addresses), and puts a
 *    balancer in front: nginx with the compose file's nginx.conf when nginx is installed, else
 *    the project's node balancer;
 * 3. walks a video through the balancer and checks every replica is ready and answers alike.
 *
 *   npm run deploy:check            # all of it
 *   npm run deploy:check -- --static  # only step 1
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { parse as parseYaml } from 'yaml';
import { startBalancer } from '../cluster/balancer.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');

interface ComposeService {
  build?: { context?: string; dockerfile?: string } | string;
  image?: string;
  command?: string[] | string;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition?: string }> | string[];
  healthcheck?: { test?: string[] | string };
  stop_grace_period?: string;
  volumes?: string[];
  ports?: string[];
}

export interface Deployment {
  services: Record<string, ComposeService>;
  gateways: string[];
  upstreams: string[];
}

/**
 * Longest a gateway's graceful stop takes with the shipped config.yaml: its drain, the longest
 * upstream `timeout_ms` (30 s) plus 5 s (`server.drain_timeout_ms` unset), then up to 4 s for the
 * listener to close and 5 s for what runs on the store after it. Docker kills a container 10 s
 * after SIGTERM unless its `stop_grace_period` says otherwise.
 */
const GRACEFUL_STOP_MS = 44_000;

/** Milliseconds of a Compose duration (`40s`, `1m30s`, `500ms`); NaN when unreadable. */
export function composeDurationMs(text: string): number {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)];
  if (parts.map((part) => part[0]).join('') !== text.trim()) return Number.NaN;
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
  return parts.reduce((sum, part) => sum + Number(part[1]) * unit[part[2] as keyof typeof unit], 0);
}

/** Where a compiled `dist/src/x.js` comes from. */
function sourceOf(compiled: string): string {
  return compiled.replace(/^dist\//, '').replace(/\.js$/, '.ts');
}

/** Reads the compose file and checks it; returns the deployment and what is wrong with it. */
export function checkDeployment(root = ROOT): { deployment: Deployment; problems: string[] } {
  const deploy = join(root, 'deploy');
  const problems: string[] = [];
  const compose = parseYaml(readFileSync(join(deploy, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services?: Record<string, ComposeService> };
  const services = compose.services ?? {};
  const gateways = Object.keys(services).filter((name) => /^gateway-\d+$/.test(name));
  for (const name of ['postgres', 'migrate', 'balancer']) if (!services[name]) problems.push(`service ${name} is missing`);
  if (gateways.length !== 3) problems.push(`expected three gateway replicas, found ${gateways.length}`);

  for (const [name, service] of Object.entries(services)) {
    const build = typeof service.build === 'string' ? { context: service.build } : service.build;
    if (build) {
      const context = resolve(deploy, build.context ?? '.');
      if (!existsSync(context)) problems.push(`${name}: build context ${build.context} does not exist`);
      if (!existsSync(join(context, build.dockerfile ?? 'Dockerfile'))) problems.push(`${name}: ${build.dockerfile ?? 'Dockerfile'} does not exist`);
    }
    const command = Array.isArray(service.command) ? service.command : service.command?.split(' ');
    if (command?.[0] === 'node' && command[1]) {
      if (command[1].startsWith('dist/')) {
        if (!existsSync(join(root, sourceOf(command[1])))) problems.push(`${name}: ${command[1]} is built from ${sourceOf(command[1])}, which does not exist`);
      } else if (!existsSync(join(root, command[1]))) {
        problems.push(`${name}: ${command[1]} does not exist`);
      }
    }
    for (const volume of service.volumes ?? []) {
      const source = volume.split(':')[0] ?? '';
      if ((source.startsWith('./') || source.startsWith('../')) && !existsSync(resolve(deploy, source))) {
        problems.push(`${name}: mounted file ${source} does not exist`);
      }
    }
  }
  for (const name of ['postgres', 'balancer', ...gateways]) {
    if (services[name] && !services[name]!.healthcheck?.test) problems.push(`${name} has no health check`);
  }
  for (const name of gateways) {
    const dependsOn = services[name]!.depends_on;
    const migrate = !Array.isArray(dependsOn) ? dependsOn?.migrate : undefined;
    if (migrate?.condition !== 'service_completed_successfully') problems.push(`${name} does not wait for the migration to complete`);
    if (!services[name]!.environment?.DATABASE_URL?.startsWith('postgres://')) problems.push(`${name} has no PostgreSQL DATABASE_URL`);
    const grace = services[name]!.stop_grace_period;
    if (!grace || !(composeDurationMs(grace) >= GRACEFUL_STOP_MS)) {
      problems.push(`${name}: stop_grace_period ${grace ?? '(Docker default 10s)'} is shorter than its graceful stop (${GRACEFUL_STOP_MS / 1000}s); Docker would kill the drain`);
    }
  }
  // What config.yaml reads for the providers and storage must reach the replicas: a variable
  // left out is silently its default there (an aggregator's KLING_LEGACY_API_KEY without its
  // KLING_LEGACY_BASE_URL would be sent to Kling's own API).
  const configFile = join(root, 'config.yaml');
  if (existsSync(configFile)) {
    const uncommented = readFileSync(configFile, 'utf8').replace(/#.*$/gm, '');
    const variables = new Set([...uncommented.matchAll(/\$\{((?:FREEPIK|KLING3API|KLING_LEGACY|S3|STORAGE)_[A-Z0-9_]+)/g)].map((match) => match[1]!));
    for (const name of gateways) {
      const missing = [...variables].filter((variable) => !(variable in (services[name]!.environment ?? {})));
      if (missing.length > 0) problems.push(`${name} is not given ${missing.join(', ')} (config.yaml reads them)`);
    }
  }
  const migrateDepends = services.migrate?.depends_on;
  if (Array.isArray(migrateDepends) || migrateDepends?.postgres?.condition !== 'service_healthy') {
    problems.push('migrate does not wait for a healthy postgres');
  }

  const nginx = readFileSync(join(deploy, 'nginx.conf'), 'utf8');
  const upstreams = [...nginx.matchAll(/^\s*server\s+([\w.-]+):(\d+)/gm)].map((match) => `${match[1]}:${match[2]}`);
  for (const name of gateways) if (!upstreams.includes(`${name}:8080`)) problems.push(`nginx.conf does not send traffic to ${name}:8080`);
  for (const upstream of upstreams) if (!gateways.includes(upstream.split(':')[0]!)) problems.push(`nginx.conf names ${upstream}, which is no gateway service`);
  if (!/proxy_buffering\s+off/.test(nginx)) problems.push('nginx.conf buffers answers: event streams would stall');
  return { deployment: { services, gateways, upstreams }, problems };
}

const children: ChildProcess[] = [];

function run(command: string, args: string[], env: Record<string, string>, logFile: string): ChildProcess {
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  child.on('exit', () => writeFileSync(logFile, log));
  children.push(child);
  return child;
}

async function waitFor(url: string, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(1_000) })).ok) return;
    } catch {
      // Not up yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} did not answer ${url} within ${timeoutMs / 1000} s`);
}

/** The compose file's environment for a gateway, with service names mapped to this machine. */
function localEnvironment(
  service: ComposeService,
  local: { databaseUrl: string; simulatorsUrl: string; publicUrl: string; storagePath: string },
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(service.environment ?? {})) {
    // Compose interpolation: keep the default of ${VAR:-default}.
    env[key] = String(value).replace(/\$\{(\w+):-([^}]*)\}/g, (_, name: string, fallback: string) => process.env[name] ?? fallback);
  }
  return {
    ...env,
    DATABASE_URL: local.databaseUrl,
    SIMULATORS_URL: local.simulatorsUrl,
    PUBLIC_URL: local.publicUrl,
    LOG_LEVEL: 'warn',
    // The volume every replica mounts: one local directory they share.
    ...(env.STORAGE_PATH ? { STORAGE_PATH: local.storagePath } : {}),
  };
}

async function main(): Promise<void> {
  const { deployment, problems } = checkDeployment();
  if (problems.length > 0) {
    console.error(`deploy/ is not consistent:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    process.exit(1);
  }
  console.log(`== compose file: postgres, migrate, ${deployment.gateways.join(', ')}, balancer; files and commands exist`);
  if (process.argv.includes('--static')) return;

  const work = mkdtempSync(join(tmpdir(), 'kling-deploy-'));
  const schema = `kg_deploy_${randomBytes(4).toString('hex')}`;
  const baseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const databaseUrl = `${baseUrl}?schema=${schema}`;
  try {
    console.log('== build (as the image does)');
    const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
    if (build.status !== 0) throw new Error('npm run build failed');

    console.log('== migrate, once (the compose file\'s migrate command)');
    const migrateCommand = deployment.services.migrate!.command as string[];
    const migrate = spawnSync(migrateCommand[0]!, migrateCommand.slice(1), { cwd: ROOT, env: { ...process.env, DATABASE_URL: databaseUrl }, encoding: 'utf8' });
    process.stdout.write(migrate.stdout);
    if (migrate.status !== 0) throw new Error(`migration failed: ${migrate.stderr}`);

    console.log('== simulators');
    const simulators = run('node', ['dist/src/simulators.js'], { SIMULATORS_PORT: '0' }, join(work, 'simulators.log'));
    const simulatorsUrl = await new Promise<string>((resolveUrl, reject) => {
      simulators.stdout?.on('data', (chunk: Buffer) => {
        const line = chunk.toString().split('\n').find((candidate) => candidate.startsWith('{'));
        if (line) resolveUrl((JSON.parse(line) as { url: string }).url);
      });
      simulators.once('exit', () => reject(new Error('the simulators exited')));
    });

    const ports = [18581, 18582, 18583];
    const balancerPort = 18580;
    const publicUrl = `http://127.0.0.1:${balancerPort}`;
    console.log(`== ${deployment.gateways.length} replicas on ports ${ports.join(', ')}`);
    deployment.gateways.forEach((name, index) => {
      const env = localEnvironment(deployment.services[name]!, { databaseUrl, simulatorsUrl, publicUrl, storagePath: join(work, 'outputs') });
      run('node', ['dist/src/main.js'], { ...env, PORT: String(ports[index]), HOST: '127.0.0.1' }, join(work, `${name}.log`));
    });
    await Promise.all(ports.map((port, index) => waitFor(`http://127.0.0.1:${port}/readyz`, deployment.gateways[index]!)));

    const nginx = spawnSync('nginx', ['-v'], { encoding: 'utf8' });
    let stopBalancer: () => Promise<void>;
    if (nginx.status === 0) {
      console.log('== balancer: nginx with deploy/nginx.conf');
      let conf = readFileSync(join(DEPLOY, 'nginx.conf'), 'utf8').replace(/listen 8080;/, `listen 127.0.0.1:${balancerPort};`);
      deployment.gateways.forEach((name, index) => (conf = conf.replace(`${name}:8080`, `127.0.0.1:${ports[index]}`)));
      conf = `pid ${join(work, 'nginx.pid')};\nerror_log ${join(work, 'nginx-error.log')};\n${conf.replace('http {', `http {\n  access_log off;\n  client_body_temp_path ${work};\n  proxy_temp_path ${work};`)}`;
      writeFileSync(join(work, 'nginx.conf'), conf);
      const server = run('nginx', ['-c', join(work, 'nginx.conf'), '-g', 'daemon off;'], {}, join(work, 'nginx.log'));
      stopBalancer = async () => {
        server.kill('SIGQUIT');
      };
    } else {
      console.log('== balancer: no nginx here; the node balancer (cluster/balancer.ts) with the same upstreams');
      const balancer = await startBalancer(() => ports.map((port) => `http://127.0.0.1:${port}`), balancerPort);
      stopBalancer = () => balancer.close();
    }
    await waitFor(`${publicUrl}/healthz`, 'the balancer');

    console.log('== one video through the balancer');
    const headers = { authorization: 'Bearer dev-key', 'content-type': 'application/json' };
    const created = (await (
      await fetch(`${publicUrl}/v1/videos`, { method: 'POST', headers, body: JSON.stringify({ model: 'kling-v3', prompt: 'a harbour at dawn', duration: 5 }) })
    ).json()) as { id: string; status: string };
    const done = (await (await fetch(`${publicUrl}/v1/videos/${created.id}?wait=30`, { headers })).json()) as { status: string; provider: string };
    console.log(`task ${created.id}: ${done.status} on ${done.provider}`);
    if (done.status !== 'succeeded') throw new Error(`expected succeeded, got ${done.status}`);
    const views = await Promise.all(
      ports.map(async (port) => ((await (await fetch(`http://127.0.0.1:${port}/v1/videos/${created.id}`, { headers })).json()) as { status: string }).status),
    );
    if (views.some((status) => status !== 'succeeded')) throw new Error(`replicas disagree about the task: ${views.join(', ')}`);
    await stopBalancer();
    console.log('OK: the compose deployment builds, migrates once and serves through a balancer');
  } finally {
    for (const child of children) child.kill('SIGTERM');
    const client = new pg.Client({ connectionString: baseUrl });
    await client.connect().then(() => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)).finally(() => client.end()).catch(() => undefined);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    for (const child of children) child.kill('SIGKILL');
    console.error(`deploy check failed: ${error instanceof Error ? error.message : error}`);
    process.exit(1);
  });
}
