/** A log destination that keeps everything written to it, for tests that read what was logged. */
import { Writable } from 'node:stream';

/** Everything logged, as one text (`sink` is what the logger writes to: a gateway's `logTo`, a logger's `destination`). */
export function capturedLogs(): { sink: Writable; text: () => string } {
  let text = '';
  const sink = new Writable({
    write(chunk, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { sink, text: () => text };
}
