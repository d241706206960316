/**
 * A loopback port where a connection is certainly refused. A port freed a moment ago is not:
 * CI runs test files side by side, and any of them may be handed that port for its own server
 * (or the kernel for an outgoing connection) before the test connects. Port 2 is below the range
 * the kernel hands out for port 0 (32768-60999 by default), no test listens on it, and fetch
 * connects to it (unlike port 1, which it refuses itself).
 */
export const REFUSED_PORT = 2;

/** `http://127.0.0.1:2`: nothing answers, every connection is refused (ECONNREFUSED). */
export const REFUSED_URL = `http://127.0.0.1:${REFUSED_PORT}`;
