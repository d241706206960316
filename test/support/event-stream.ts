/** Reads a task's `GET /v1/videos/{id}/events` stream as a client does, event by event. */
import { TENANT_KEY } from './harness.js';

export interface StreamEvent {
  id: string;
  event: string;
  status: string;
}

export interface OpenStream {
  /** Resolves once `count` events arrived (or the stream ended), with every event so far. */
  events(count: number): Promise<StreamEvent[]>;
  /** Resolves with every event once the server closed the stream. */
  ended(): Promise<StreamEvent[]>;
}

function parse(text: string): StreamEvent[] {
  return [...text.matchAll(/^id: (\d+)\nevent: (\w+)\ndata: (.*)$/gm)].map((match) => ({
    id: match[1]!,
    event: match[2]!,
    status: (JSON.parse(match[3]!) as { status: string }).status,
  }));
}

export async function openEventStream(baseUrl: string, id: string): Promise<OpenStream> {
  const response = await fetch(`${baseUrl}/v1/videos/${id}/events`, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const waiters: Array<() => void> = [];
  const done = (async () => {
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
      for (const wake of waiters.splice(0)) wake();
    }
    for (const wake of waiters.splice(0)) wake();
  })();
  let finished = false;
  void done.finally(() => (finished = true));
  return {
    async events(count) {
      while (parse(text).length < count && !finished) await new Promise<void>((resolve) => waiters.push(resolve));
      return parse(text);
    },
    async ended() {
      await done;
      return parse(text);
    },
  };
}
