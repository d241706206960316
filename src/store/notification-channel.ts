/**
 * PostgreSQL `LISTEN/NOTIFY` between the replicas of one database: one listening connection per
 * replica, reconnected with back-off when it drops (and checked by a heartbeat, since a dead TCP
 * connection can stay silent). Messages sent while a replica was not listening are lost, so
 * after every reconnect the `onReconnect` listeners run: they re-read whatever they follow.
 * Carries opaque text; what the messages mean is the caller's.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';

/** Longest wait between two reconnect tries. */
const MAX_RECONNECT_DELAY_MS = 5_000;
const FIRST_RECONNECT_DELAY_MS = 100;
/** A query on the listening connection this often proves it still works. */
const HEARTBEAT_MS = 10_000;
/** NOTIFY payloads must stay under 8000 bytes. */
export const MAX_NOTIFICATION_BYTES = 7_900;

export interface NotificationChannelOptions {
  /** `postgres://…` of the database. */
  url: string;
  /** The schema the store lives in: each schema has its own channel (NOTIFY is database-wide). */
  schema?: string;
  /** Sends one NOTIFY (through the store's pool, so sending needs no connection of its own). */
  send: (channel: string, payload: string) => Promise<void>;
  /** Where send and connection errors are reported. */
  onError?: (error: unknown, what: string) => void;
  /** How often the listening connection is checked (tests shorten it). */
  heartbeatMs?: number;
}

/** The longest channel name NOTIFY takes (a PostgreSQL identifier; LISTEN cuts a longer one short, NOTIFY refuses it). */
const MAX_CHANNEL_NAME = 63;

/** The channel name of a schema's replicas. */
export function channelNameOf(schema: string | undefined): string {
  const name = schema ? `kling_gateway_${schema}` : 'kling_gateway';
  if (name.length <= MAX_CHANNEL_NAME) return name;
  // A long schema name: its start and a digest of all of it, so schemas that differ only at the end keep channels apart.
  const digest = createHash('sha256').update(schema!).digest('hex').slice(0, 16);
  return `${name.slice(0, MAX_CHANNEL_NAME - digest.length - 1)}_${digest}`;
}

export class PostgresNotificationChannel {
  readonly channel: string;
  private client: pg.Client | undefined;
  private readonly listeners = new Set<(message: string) => void>();
  private readonly reconnectListeners = new Set<() => void>();
  private reconnectDelay = FIRST_RECONNECT_DELAY_MS;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;
  private connecting: Promise<void> | undefined;
  private everConnected = false;

  constructor(private readonly options: NotificationChannelOptions) {
    this.channel = channelNameOf(options.schema);
  }

  /** Whether the listening connection is up right now. */
  get listening(): boolean {
    return this.client !== undefined;
  }

  /** Connects and starts listening; resolves once listening (or rejects on the first failure, then keeps trying). */
  start(): Promise<void> {
    this.connecting ??= this.connect();
    return this.connecting;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.url, keepAlive: true });
    client.on('notification', (message) => {
      if (message.channel !== this.channel || message.payload === undefined) return;
      for (const listener of this.listeners) listener(message.payload);
    });
    const lost = (error?: unknown) => {
      if (this.client !== client) return;
      this.client = undefined;
      if (error) this.options.onError?.(error, 'the listening connection dropped');
      client.end().catch(() => undefined);
      this.scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    try {
      await client.connect();
      await client.query(`LISTEN ${this.channel}`);
    } catch (error) {
      client.end().catch(() => undefined);
      this.connecting = undefined;
      if (!this.closed) this.scheduleReconnect();
      throw error;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.reconnectDelay = FIRST_RECONNECT_DELAY_MS;
    this.startHeartbeat(client, lost);
    const reconnected = this.everConnected;
    this.everConnected = true;
    // Messages sent while nobody listened here are gone: whoever follows something re-reads it.
    if (reconnected) for (const listener of this.reconnectListeners) listener();
  }

  private startHeartbeat(client: pg.Client, lost: (error?: unknown) => void): void {
    clearInterval(this.heartbeat);
    let answered = true;
    this.heartbeat = setInterval(() => {
      if (this.client !== client) return;
      // A path that died without a reset leaves the query unanswered, not failed: a heartbeat
      // still unanswered at the next one means the connection is gone.
      if (!answered) return lost(new Error('the listening connection stopped answering'));
      answered = false;
      client.query('SELECT 1').then(
        () => (answered = true),
        (error) => lost(error),
      );
    }, this.options.heartbeatMs ?? HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const delay = this.reconnectDelay;
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, MAX_RECONNECT_DELAY_MS);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connecting = this.connect().catch((error) => this.options.onError?.(error, 'could not listen for other replicas'));
    }, delay);
    this.reconnectTimer.unref();
  }

  /** Calls `listener` with every message on this channel (from any replica, this one included). */
  subscribe(listener: (message: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Calls `listener` after each reconnect (messages may have been missed meanwhile). */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /** Sends `message` to every replica listening on this channel (this one included). */
  async publish(message: string): Promise<void> {
    if (Buffer.byteLength(message) > MAX_NOTIFICATION_BYTES) throw new Error('notification too large');
    await this.options.send(this.channel, message);
  }

  /** Drops the listening connection as if the network had (for tests of the reconnect). */
  dropConnection(): void {
    const client = this.client;
    if (!client) return;
    client.emit('error', new Error('connection dropped on purpose'));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeat);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
