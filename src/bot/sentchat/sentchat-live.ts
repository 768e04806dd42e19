import pg from 'pg';
import type { Logger } from '../../app/logger.ts';
import { liveEvent, toWireChannel, toWireMessage, type LiveEvent, type SentchatStore } from './sentchat-store.ts';
import type { SentchatSessions } from './sentchat-sessions.ts';

/**
 * Live updates for the browsers connected to this process. One PostgreSQL connection LISTENs on
 * the schema's SENTchat channel; every committed change (from this process or a worker on another
 * machine) arrives as a small NOTIFY, the row is loaded once and sent to each socket allowed to
 * see it: same tenant, a member of a private channel, the one viewer of an ephemeral answer.
 *
 * If the LISTEN connection drops, it reconnects with backoff and tells every socket to `resync`
 * (re-read what it shows), since NOTIFYs sent meanwhile are lost. Sockets of ended or expired
 * sessions are closed with 4401 (at once on sign-out, within a minute on expiry), and those of
 * people who lost their role in the tenant with 4403 (within a minute).
 */
export interface LiveSocket {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  ping(): void;
  terminate(): void;
  on(event: 'close', listener: () => void): unknown;
  on(event: 'pong', listener: () => void): unknown;
  on(event: 'message', listener: (data: unknown) => void): unknown;
}

export interface LiveClient {
  socket: LiveSocket;
  sessionHash: string;
  /** The session's identity, for the periodic role check. */
  workspace: string;
  userId: string;
  tenantId: string;
  principalId: string;
}

/** What the browser gets. */
export type LiveMessage =
  | { type: 'ready' }
  | { type: 'resync' }
  | { type: 'message.new' | 'message.updated'; message: ReturnType<typeof toWireMessage> }
  | { type: 'channel.new' | 'channel.updated'; channel: ReturnType<typeof toWireChannel> };

const OPEN = 1;
export const SESSION_ENDED_CLOSE_CODE = 4401;
export const NOT_ALLOWED_CLOSE_CODE = 4403;
const SESSION_CHECK_MS = 60_000;
const HEARTBEAT_MS = 30_000;

export class SentchatLive {
  private readonly clients = new Set<LiveClient & { alive: boolean }>();
  private listener: pg.Client | undefined;
  private closed = false;
  private reconnectDelay = 500;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly deps: {
      databaseUrl: string;
      channel: string;
      store: SentchatStore;
      sessions: SentchatSessions;
      logger: Logger;
      /** Whether a socket's person may still read this tenant (a revoked role closes the socket too). */
      stillAllowed: (client: LiveClient) => Promise<boolean>;
    },
  ) {}

  async start(): Promise<void> {
    await this.connect();
    const check = setInterval(() => void this.checkSessions(), SESSION_CHECK_MS);
    const beat = setInterval(() => this.heartbeat(), HEARTBEAT_MS);
    check.unref();
    beat.unref();
    this.timers.push(check, beat);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.deps.databaseUrl, application_name: 'sentreflex-sentchat-live' });
    const lost = (err?: Error) => {
      if (this.listener !== client) return;
      this.listener = undefined;
      client.end().catch(() => undefined);
      if (this.closed) return;
      this.deps.logger.warn({ err }, 'SENTchat live updates: lost the LISTEN connection; reconnecting');
      this.scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', (n) => {
      if (n.channel !== this.deps.channel || !n.payload) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(n.payload);
      } catch {
        return;
      }
      const e = liveEvent.safeParse(parsed);
      if (e.success) void this.dispatch(e.data).catch((err: unknown) => this.deps.logger.error({ err, event: e.data.type }, 'SENTchat live update failed'));
    });
    await client.connect();
    // The channel name is ours (sentchat_<hex>), never user input; quoted as an identifier anyway.
    await client.query(`LISTEN "${this.deps.channel.replace(/"/g, '')}"`);
    this.listener = client;
    this.reconnectDelay = 500;
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.closed) return;
    const delay = this.reconnectDelay;
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, 30_000);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect()
        .then(() => this.broadcast({ type: 'resync' }, () => true))
        .catch((err: unknown) => {
          this.deps.logger.warn({ err }, 'SENTchat live updates: reconnect failed');
          this.scheduleReconnect();
        });
    }, delay);
    this.reconnectTimer.unref();
  }

  add(client: LiveClient): void {
    const entry = { ...client, alive: true };
    this.clients.add(entry);
    client.socket.on('close', () => this.clients.delete(entry));
    client.socket.on('pong', () => {
      entry.alive = true;
    });
    this.send(entry, { type: 'ready' });
  }

  get size(): number {
    return this.clients.size;
  }

  private send(client: LiveClient, message: LiveMessage): void {
    if (client.socket.readyState !== OPEN) return;
    try {
      client.socket.send(JSON.stringify(message));
    } catch {
      // A socket that fails mid-send is closing; its close handler removes it.
    }
  }

  private broadcast(message: LiveMessage, to: (c: LiveClient) => boolean): void {
    for (const c of this.clients) if (to(c)) this.send(c, message);
  }

  private async dispatch(e: LiveEvent): Promise<void> {
    switch (e.type) {
      case 'session.ended':
        for (const c of this.clients) if (c.sessionHash === e.session) c.socket.close(SESSION_ENDED_CLOSE_CODE, 'signed out');
        return;
      case 'channel': {
        const channel = await this.deps.store.getChannel(e.id);
        if (!channel) return;
        const members = channel.private ? await this.deps.store.memberIds(channel.id) : undefined;
        this.broadcast({ type: e.op === 'new' ? 'channel.new' : 'channel.updated', channel: toWireChannel(channel) }, (c) => c.tenantId === channel.tenant_id && (!members || members.has(c.principalId)));
        return;
      }
      case 'message': {
        const message = await this.deps.store.getMessage(e.id);
        if (!message) return;
        const channel = await this.deps.store.getChannel(message.channel_id);
        if (!channel) return;
        const members = channel.private ? await this.deps.store.memberIds(channel.id) : undefined;
        this.broadcast(
          { type: e.op === 'new' ? 'message.new' : 'message.updated', message: toWireMessage(message) },
          (c) => c.tenantId === channel.tenant_id && (!members || members.has(c.principalId)) && (message.visible_to === null || message.visible_to === c.principalId),
        );
        return;
      }
    }
  }

  private async checkSessions(): Promise<void> {
    try {
      const valid = await this.deps.sessions.stillValid([...new Set([...this.clients].map((c) => c.sessionHash))]);
      const allowed = new Map<string, boolean>();
      for (const c of [...this.clients]) {
        if (!valid.has(c.sessionHash)) {
          c.socket.close(SESSION_ENDED_CLOSE_CODE, 'session expired');
          continue;
        }
        if (!allowed.has(c.sessionHash)) allowed.set(c.sessionHash, await this.deps.stillAllowed(c));
        if (!allowed.get(c.sessionHash)) c.socket.close(NOT_ALLOWED_CLOSE_CODE, 'no role here any more');
      }
    } catch (err) {
      this.deps.logger.warn({ err }, 'SENTchat: checking open sessions failed');
    }
  }

  /** Proxies drop idle connections; a socket that missed a whole beat is gone and is cut. */
  private heartbeat(): void {
    for (const c of this.clients) {
      if (!c.alive) {
        c.socket.terminate();
        this.clients.delete(c);
        continue;
      }
      c.alive = false;
      try {
        c.socket.ping();
      } catch {
        // closing already
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    for (const t of this.timers) clearInterval(t);
    for (const c of this.clients) c.socket.close(1001, 'server stopping');
    this.clients.clear();
    const l = this.listener;
    this.listener = undefined;
    await l?.end().catch(() => undefined);
  }
}
