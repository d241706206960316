/**
 * A loopback port for a server a test stops and starts again on the same port (a restart, as
 * `npm start` on its configured port is). A port picked by listening on port 0 is one the kernel
 * hands out again, to any process: CI runs test files side by side, and while the server was
 * down another file's server (port 0) or outgoing connection could take it, failing the restart
 * with EADDRINUSE. This one is below the range the kernel hands out, so only a server asking for
 * that very port could take it.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The first port of the kernel's range for port 0 and outgoing connections (32768 on Linux unless set). */
function ephemeralStart(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

/** A free port below the kernel's range (0, any port, on a machine whose range leaves no room below it). */
export async function restartablePort(): Promise<number> {
  const low = 20_000;
  const high = ephemeralStart();
  if (high - low < 1_000) return 0;
  for (let tries = 0; tries < 50; tries++) {
    const port = low + Math.floor(Math.random() * (high - low));
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port from ${low} to ${high}`);
}
