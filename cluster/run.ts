/**
 * `npm run cluster`: PostgreSQL-backed gateway replicas on several ports, the simulators in a
 * process of their own, and a round-robin balancer in front, until Ctrl-C.
 *
 *   DATABASE_URL   PostgreSQL (default postgres://postgres@127.0.0.1:5432/test?schema=kling_cluster)
 *   REPLICAS       how many replicas (default 3)
 *   PORT           first replica's port (default 8081; the others follow)
 *   BALANCER_PORT  the balancer's port (default 8080)
 */
import { Cluster } from './cluster.js';

const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test?schema=kling_cluster';
if (!databaseUrl.startsWith('postgres')) {
  console.error('npm run cluster: DATABASE_URL must be a postgres:// URL (replicas share one PostgreSQL)');
  process.exit(78);
}
const replicas = Number(process.env.REPLICAS ?? 3);
const cluster = await Cluster.start({
  replicas,
  databaseUrl,
  basePort: Number(process.env.PORT ?? 8081),
  balancerPort: Number(process.env.BALANCER_PORT ?? 8080),
  env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
});
console.log(`balancer     ${cluster.balancer.url}   (send requests here; key: dev-key)`);
for (const replica of cluster.replicas) console.log(`replica ${replica.index}    ${replica.url}`);
console.log(`simulators   ${cluster.simulatorsUrl}   (control API: /endpoints, /simulators/<id>/requests, /faults)`);
console.log(`logs         ${cluster.logDirectory}`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.log('stopping the cluster');
  await cluster.stop();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
