/**
 * Reads a task's `GET /v1/videos/{id}/events` stream as a client does, event by event, with the
 * parser the typed client uses (eventsource-parser).
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { TENANT_KEY } from './harness.js';

export interface StreamEvent {
  id: string;
  event: string;
  /** The task's status in the event's data. */
  status: string;
  /** The event's data, parsed. */
  data: any;
}

export interface OpenStream {
  /** The answer's status: 200 for a stream; anything else was read whole and has no events. */
  status: number;
  headers: Headers;
  /** Resolves once `count` events arrived (or the stream ended), with every event so far. */
  events(count: number): Promise<StreamEvent[]>;
  /** Resolves with every event once the server closed the stream (or the client aborted it). */
  ended(): Promise<StreamEvent[]>;
  /** What arrived after the last complete event: `''` when the stream ended between events. */
  rest(): string;
}

export interface StreamOptions {
  /** More request headers (`last-event-id`, another `authorization`). */
  headers?: Record<string, string>;
  /** Aborting it ends the stream as a client dropping it would. */
  signal?: AbortSignal;
  /** Called with each event as it arrives. */
  onEvent?: (event: StreamEvent) => void;
}

export async function openEventStream(baseUrl: string, id: string, options: StreamOptions = {}): Promise<OpenStream> {
  const response = await fetch(`${baseUrl}/v1/videos/${id}/events`, {
    headers: { authorization: `Bearer ${TENANT_KEY}`, ...options.headers },
    signal: options.signal,
  });
  const events: StreamEvent[] = [];
  /** The text after the last blank line: what a stream ending now would leave unfinished. */
  let buffer = '';
  const waiters: Array<() => void> = [];
  let finished = false;
  const parser = createParser({
    onEvent(message: EventSourceMessage) {
      const data = JSON.parse(message.data);
      const event = { id: message.id!, event: message.event!, status: data.status, data };
      events.push(event);
      options.onEvent?.(event);
    },
  });
  const done = (async () => {
    if (response.status !== 200) {
      await response.text();
      return;
    }
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const chunk = await reader.read().catch(() => ({ done: true as const, value: undefined }));
      if (chunk.done) break;
      const text = decoder.decode(chunk.value, { stream: true });
      buffer += text;
      const end = buffer.lastIndexOf('\n\n');
      if (end >= 0) buffer = buffer.slice(end + 2);
      parser.feed(text);
      for (const wake of waiters.splice(0)) wake();
    }
  })().finally(() => {
    finished = true;
    for (const wake of waiters.splice(0)) wake();
  });
  return {
    status: response.status,
    headers: response.headers,
    async events(count) {
      while (events.length < count && !finished) await new Promise<void>((resolve) => waiters.push(resolve));
      return [...events];
    },
    async ended() {
      await done;
      return [...events];
    },
    rest: () => buffer,
  };
}
