import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import type { WelcomePayload } from '@syncline/contracts';
import {
  Connection,
  ConnectionError,
  browserOnlineSignal,
  type ConnectionEvents,
  type ConnectionOptions,
  type ConnectionState,
  type OnlineSignal,
} from './connection.js';
import type { WebSocketLike } from './transport.js';

const WELCOME: WelcomePayload = {
  protocolVersion: 1,
  connectionId: 'GCEgMiGlMswz',
  gatewayId: 'gateway-7671bdd7',
  userId: 'alice',
  tenant: 'example',
  serverTime: 1_795_567_429_338,
  heartbeatIntervalMs: 30_000,
  maxFrameBytes: 65_536,
};

interface SentFrame {
  type: string;
  id: string;
  payload: unknown;
  timestamp: number;
}

/** A socket the test drives by hand: nothing happens unless a test says so. */
class FakeSocket implements WebSocketLike {
  readyState = 0;
  protocol = '';
  readonly sent: string[] = [];
  closedWith: { code: number | undefined; reason: string | undefined } | undefined;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;

  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {}

  send(data: string): void {
    this.sent.push(data);
  }

  /** Like a real socket, closing does not call `onclose` at once; tests deliver it with `serverClose`. */
  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  open(): void {
    this.readyState = 1;
    this.protocol = 'syncline.v1';
    this.onopen?.({});
  }

  receive(frame: unknown): void {
    this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }

  acceptWelcome(payload: WelcomePayload = WELCOME): void {
    this.open();
    this.receive({ type: 'welcome', payload, timestamp: payload.serverTime });
  }

  serverClose(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
    this.onerror?.({});
  }

  frames(): SentFrame[] {
    return this.sent.map((data) => JSON.parse(data) as SentFrame);
  }
}

class FakeOnlineSignal implements OnlineSignal {
  readonly listeners = new Set<(online: boolean) => void>();

  constructor(private online = true) {}

  isOnline(): boolean {
    return this.online;
  }

  subscribe(listener: (online: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  set(online: boolean): void {
    this.online = online;
    for (const listener of [...this.listeners]) listener(online);
  }
}

type Recorded = { [K in keyof ConnectionEvents]: { event: K; payload: ConnectionEvents[K] } }[keyof ConnectionEvents];

const EVENT_NAMES: ReadonlyArray<keyof ConnectionEvents> = [
  'state',
  'connected',
  'disconnected',
  'welcome',
  'frame',
  'error',
  'reconnect:scheduled',
  'reconnect:failed',
  'pong',
];

function setup(options: Partial<ConnectionOptions> = {}) {
  const sockets: FakeSocket[] = [];
  const connection = new Connection({
    url: 'wss://sync.example.com/ws',
    token: 'jwt-1',
    webSocketFactory: (url, protocols) => {
      const socket = new FakeSocket(url, protocols);
      sockets.push(socket);
      return socket;
    },
    // With 0.5, attempt n waits 1000 + 0.5 × (min(30000, 1000 × 2^n) − 1000): 1500, 2500, 4500, …
    random: () => 0.5,
    ...options,
  });
  const events: Recorded[] = [];
  for (const event of EVENT_NAMES) {
    connection.on(event, (payload) => events.push({ event, payload } as Recorded));
  }
  const of = <K extends keyof ConnectionEvents>(event: K): Array<ConnectionEvents[K]> =>
    events.filter((e) => e.event === event).map((e) => e.payload as ConnectionEvents[K]);
  const socket = (index = sockets.length - 1): FakeSocket => {
    const found = sockets[index];
    if (!found) throw new Error(`no socket #${index}`);
    return found;
  };
  return { connection, sockets, events, of, socket, states: () => of('state').map((s) => s.state) };
}

/** Lets promise continuations (a token provider, a rejection) run; timers stay frozen. */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ConnectionError);
    return (error as ConnectionError).code;
  }
  throw new Error('expected a rejection');
}

/** Every `state` event must continue from the one before: the proof that one setter owns the state. */
function expectChained(connection: Connection, states: ReadonlyArray<ConnectionEvents['state']>): void {
  let previous: ConnectionState = 'disconnected';
  for (const change of states) {
    expect(change.previous).toBe(previous);
    expect(change.state).not.toBe(change.previous);
    previous = change.state;
  }
  expect(connection.state).toBe(previous);
}

beforeEach(() => {
  jest.useFakeTimers();
});

afterEach(() => {
  jest.useRealTimers();
});

describe('Connection: connecting', () => {
  it('offers the protocol and the token as sub-protocols and resolves with the welcome', async () => {
    const { connection, socket, of, states, events } = setup();
    const connecting = connection.connect();

    expect(socket().url).toBe('wss://sync.example.com/ws');
    expect(socket().protocols).toEqual(['syncline.v1', 'bearer.jwt-1']);
    expect(connection.state).toBe('connecting');
    socket().acceptWelcome();

    await expect(connecting).resolves.toEqual(WELCOME);
    expect(of('state')).toEqual([
      { state: 'connecting', previous: 'disconnected' },
      { state: 'connected', previous: 'connecting' },
    ]);
    expect(events.map((e) => e.event)).toEqual(['state', 'state', 'welcome', 'connected', 'frame']);
    expect(of('connected')).toEqual([{ welcome: WELCOME, reconnected: false }]);
    expect(connection.isConnected).toBe(true);
    expect(connection.welcome).toEqual(WELCOME);
    expect(states()).toEqual(['connecting', 'connected']);
  });

  it('returns the pending attempt while connecting and the welcome once connected', async () => {
    const { connection, sockets, socket } = setup();
    const first = connection.connect();
    expect(connection.connect()).toBe(first);
    socket().acceptWelcome();
    await first;

    await expect(connection.connect()).resolves.toEqual(WELCOME);
    expect(sockets).toHaveLength(1);
  });

  it('asks the token provider anew before every attempt', async () => {
    let issued = 0;
    const token = jest.fn(async () => `jwt-${++issued}`);
    const { connection, sockets, socket } = setup({ token });
    const connecting = connection.connect();
    expect(sockets).toHaveLength(0);
    await flush();
    socket().acceptWelcome();
    await connecting;

    socket().serverClose(1006);
    jest.advanceTimersByTime(1_500);
    await flush();

    expect(token).toHaveBeenCalledTimes(2);
    expect(sockets.map((s) => s.protocols[1])).toEqual(['bearer.jwt-1', 'bearer.jwt-2']);
  });

  it('reports a token provider that fails, and tries again', async () => {
    const { connection, of } = setup({ token: () => Promise.reject(new Error('refresh failed')) });

    expect(await codeOf(connection.connect())).toBe('TOKEN_UNAVAILABLE');
    expect(of('error')[0]).toMatchObject({
      code: 'TOKEN_UNAVAILABLE',
      message: 'the token provider failed: refresh failed',
    });
    expect(connection.state).toBe('reconnecting');
    expect(of('reconnect:scheduled')).toEqual([{ attempt: 1, delay: 1_500 }]);
  });

  it('gives up at once when the WebSocket cannot even be created', async () => {
    const { connection, of } = setup({
      webSocketFactory: () => {
        throw new SyntaxError('invalid URL');
      },
    });

    expect(await codeOf(connection.connect())).toBe('CONNECTION_FAILED');
    expect(connection.state).toBe('error');
    expect(of('reconnect:scheduled')).toEqual([]);
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('Connection: connection timeout', () => {
  it('fails without a welcome within 10 s, then schedules a reconnection', async () => {
    const { connection, sockets, socket, of } = setup();
    const connecting = connection.connect();
    socket().open();

    jest.advanceTimersByTime(9_999);
    expect(of('error')).toEqual([]);
    jest.advanceTimersByTime(1);

    expect(await codeOf(connecting)).toBe('CONNECTION_TIMEOUT');
    expect(of('error')).toEqual([{ code: 'CONNECTION_TIMEOUT', message: 'no welcome within 10000 ms' }]);
    expect(socket().closedWith).toEqual({ code: 1000, reason: 'connection timeout' });
    expect(connection.state).toBe('reconnecting');
    expect(of('reconnect:scheduled')).toEqual([{ attempt: 1, delay: 1_500 }]);
    expect(of('disconnected')).toEqual([]); // it never was connected

    jest.advanceTimersByTime(1_500);
    expect(sockets).toHaveLength(2);
    socket().acceptWelcome();
    expect(of('connected')).toEqual([{ welcome: WELCOME, reconnected: false }]);
    expect(connection.reconnectAttempts).toBe(0);
  });

  it('honours a custom timeout', async () => {
    const { connection } = setup({ connectionTimeout: 2_000 });
    const connecting = connection.connect();
    jest.advanceTimersByTime(2_000);
    expect(await codeOf(connecting)).toBe('CONNECTION_TIMEOUT');
  });
});

describe('Connection: reconnecting', () => {
  it('reconnects after the server goes away, then reports the welcome as a reconnection', async () => {
    const { connection, sockets, socket, of } = setup();
    const connecting = connection.connect();
    socket().acceptWelcome();
    await connecting;

    socket().serverClose(4001, 'gateway shutting down');

    expect(connection.state).toBe('reconnecting');
    expect(of('disconnected')).toEqual([{ code: 4001, reason: 'gateway shutting down', willReconnect: true }]);
    expect(of('reconnect:scheduled')).toEqual([{ attempt: 1, delay: 1_500 }]);
    expect(connection.reconnectAttempts).toBe(1);
    expect(connection.send({ type: 'ping', payload: {} })).toBeUndefined();

    jest.advanceTimersByTime(1_499);
    expect(sockets).toHaveLength(1);
    jest.advanceTimersByTime(1);
    expect(sockets).toHaveLength(2);
    expect(connection.state).toBe('reconnecting');
    socket().acceptWelcome({ ...WELCOME, connectionId: 'BqtyDeOiN-UH' });

    expect(connection.state).toBe('connected');
    expect(of('connected').map((c) => c.reconnected)).toEqual([false, true]);
    expect(connection.welcome?.connectionId).toBe('BqtyDeOiN-UH');
    expect(connection.reconnectAttempts).toBe(0);
    expect(of('state')).toEqual([
      { state: 'connecting', previous: 'disconnected' },
      { state: 'connected', previous: 'connecting' },
      { state: 'reconnecting', previous: 'connected', reason: 'the connection closed (4001: gateway shutting down)' },
      { state: 'connected', previous: 'reconnecting' },
    ]);
  });

  it('backs off exponentially with jitter between failed attempts, and starts over after a welcome', async () => {
    const { connection, socket, of } = setup();
    void connection.connect().catch(() => undefined);

    for (const delay of [1_500, 2_500, 4_500, 8_500]) {
      socket().serverClose(1006);
      jest.advanceTimersByTime(delay);
    }
    expect(of('reconnect:scheduled')).toEqual([
      { attempt: 1, delay: 1_500 },
      { attempt: 2, delay: 2_500 },
      { attempt: 3, delay: 4_500 },
      { attempt: 4, delay: 8_500 },
    ]);
    socket().acceptWelcome();
    socket().serverClose(1006);
    expect(of('reconnect:scheduled').at(-1)).toEqual({ attempt: 1, delay: 1_500 });
    expect(of('error').map((e) => e.code)).toEqual(Array(4).fill('CONNECTION_CLOSED'));
  });

  it('gives up after maxRetries failed attempts', async () => {
    const { connection, sockets, socket, of } = setup({ maxRetries: 2 });
    const connecting = connection.connect();
    socket().serverClose(1006);
    expect(await codeOf(connecting)).toBe('CONNECTION_CLOSED');

    jest.advanceTimersByTime(1_500);
    socket().serverClose(1006);
    jest.advanceTimersByTime(2_500);
    socket().serverClose(1006);

    expect(sockets).toHaveLength(3);
    expect(of('reconnect:scheduled').map((s) => s.attempt)).toEqual([1, 2]);
    expect(of('reconnect:failed')).toEqual([{ attempts: 2 }]);
    expect(connection.state).toBe('error');
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(600_000);
    expect(sockets).toHaveLength(3);
  });

  it('can be connected again from the error state', async () => {
    const { connection, socket, of } = setup({ maxRetries: 0 });
    void connection.connect().catch(() => undefined);
    socket().serverClose(1006);
    expect(connection.state).toBe('error');
    expect(of('reconnect:failed')).toEqual([{ attempts: 0 }]);

    const again = connection.connect();
    expect(connection.state).toBe('connecting');
    socket().acceptWelcome();
    await expect(again).resolves.toEqual(WELCOME);
  });

  it('tries at once when connect() is called while waiting for the next attempt', async () => {
    const { connection, sockets, socket } = setup();
    void connection.connect().catch(() => undefined);
    socket().serverClose(1006);
    expect(connection.state).toBe('reconnecting');

    const now = connection.connect();
    expect(sockets).toHaveLength(2);
    expect(jest.getTimerCount()).toBe(1); // the connection timeout; the backoff wait is gone
    socket().acceptWelcome();
    await expect(now).resolves.toEqual(WELCOME);
  });

  it('stays down after an unintentional close when autoReconnect is off', async () => {
    const { connection, socket, of } = setup({ autoReconnect: false });
    const connecting = connection.connect();
    socket().acceptWelcome();
    await connecting;

    socket().serverClose(1006);
    expect(connection.state).toBe('disconnected');
    expect(of('disconnected')).toEqual([{ code: 1006, reason: '', willReconnect: false }]);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('fails a first attempt for good when autoReconnect is off', async () => {
    const { connection, socket } = setup({ autoReconnect: false });
    const connecting = connection.connect();
    socket().serverClose(1006);
    expect(await codeOf(connecting)).toBe('CONNECTION_CLOSED');
    expect(connection.state).toBe('error');
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('Connection: authentication and protocol failures', () => {
  it('does not retry an AUTH_INVALID handshake error', async () => {
    const { connection, sockets, socket, of } = setup();
    const connecting = connection.connect();
    socket().open();
    socket().receive({ type: 'error', payload: { code: 'AUTH_INVALID', message: 'token expired' }, timestamp: 1 });
    socket().serverClose(4401, 'token expired');

    expect(await codeOf(connecting)).toBe('AUTH_INVALID');
    expect(of('error')).toEqual([{ code: 'AUTH_INVALID', message: 'token expired' }]);
    expect(of('frame')).toEqual([]);
    expect(connection.state).toBe('error');
    expect(of('reconnect:scheduled')).toEqual([]);
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(600_000);
    expect(sockets).toHaveLength(1);
  });

  it('does not retry after a 4401 close during a reconnection', async () => {
    const { connection, sockets, socket, of } = setup();
    const connecting = connection.connect();
    socket().acceptWelcome();
    await connecting;
    socket().serverClose(1006);
    jest.advanceTimersByTime(1_500);

    socket().serverClose(4401, 'token expired');

    expect(of('error').at(-1)).toEqual({
      code: 'AUTH_INVALID',
      message: 'authentication failed (4401: token expired)',
    });
    expect(connection.state).toBe('error');
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(600_000);
    expect(sockets).toHaveLength(2);
  });

  it('does not retry an unsupported protocol (4400)', async () => {
    const { connection, socket } = setup();
    const connecting = connection.connect();
    socket().serverClose(4400, 'offer the "syncline.v1" sub-protocol');
    expect(await codeOf(connecting)).toBe('UNSUPPORTED_PROTOCOL');
    expect(connection.state).toBe('error');
    expect(jest.getTimerCount()).toBe(0);
  });

  it('retries a handshake error that is not final', async () => {
    const { connection, socket, of } = setup();
    const connecting = connection.connect();
    socket().receive({ type: 'error', payload: { code: 'UNAVAILABLE', message: 'try later' }, timestamp: 1 });
    expect(await codeOf(connecting)).toBe('UNAVAILABLE');
    expect(connection.state).toBe('reconnecting');
    expect(of('reconnect:scheduled')).toHaveLength(1);
  });
});

describe('Connection: heartbeat', () => {
  it('pings every interval and reports the round trip of each pong', async () => {
    const { connection, socket, of } = setup();
    const connecting = connection.connect();
    socket().acceptWelcome();
    await connecting;

    jest.advanceTimersByTime(29_999);
    expect(socket().frames()).toEqual([]);
    jest.advanceTimersByTime(1);
    const [ping] = socket().frames();
    expect(ping).toEqual({ type: 'ping', id: expect.any(String), payload: {}, timestamp: Date.now() });

    jest.advanceTimersByTime(42);
    socket().receive({ type: 'pong', id: ping?.id, payload: { serverTime: Date.now() }, timestamp: Date.now() });
    expect(of('pong')).toEqual([{ rttMs: 42 }]);
    expect(of('frame').map((f) => f.type)).toEqual(['welcome', 'pong']);

    jest.advanceTimersByTime(30_000);
    expect(socket().frames()).toHaveLength(2);
    expect(connection.state).toBe('connected');
  });

  it('treats a missing pong as a lost connection and reconnects', async () => {
    const { connection, sockets, socket, of } = setup();
    const connecting = connection.connect();
    socket().acceptWelcome();
    await connecting;

    jest.advanceTimersByTime(30_000 + 4_999);
    expect(connection.state).toBe('connected');
    jest.advanceTimersByTime(1);

    expect(of('error')).toEqual([{ code: 'HEARTBEAT_TIMEOUT', message: 'no pong within 5000 ms' }]);
    expect(socket().closedWith).toEqual({ code: 1000, reason: 'heartbeat timeout' });
    expect(connection.state).toBe('reconnecting');
    expect(of('disconnected')).toEqual([{ code: 1006, reason: 'heartbeat timeout', willReconnect: true }]);
    jest.advanceTimersByTime(1_500);
    expect(sockets).toHaveLength(2);
  });

  it('ignores a pong that comes after its timeout', async () => {
    const { connection, socket, of } = setup({ heartbeatInterval: 1_000, heartbeatTimeout: 100 });
    const connecting = connection.connect();
    socket().acceptWelcome();
    await connecting;
    jest.advanceTimersByTime(1_100);
    const late = socket();
    late.receive({ type: 'pong', id: late.frames()[0]?.id, payload: { serverTime: 1 }, timestamp: 1 });
    expect(of('pong')).toEqual([]);
  });

  it('exposes ping() with the round trip in ms', async () => {
    const { connection, socket } = setup({ heartbeatInterval: 0 });
    await expect(connection.ping()).rejects.toMatchObject({ code: 'NOT_CONNECTED' });
    const connecting = connection.connect();
    socket().acceptWelcome();
    await connecting;

    const rtt = connection.ping();
    jest.advanceTimersByTime(17);
    const id = socket().frames()[0]?.id;
    socket().receive({ type: 'pong', id, payload: { serverTime: 1 }, timestamp: 1 });
    await expect(rtt).resolves.toBe(17);
    expect(jest.getTimerCount()).toBe(0); // heartbeat off, and the pong cleared its timeout
  });
});

describe('Connection: disconnect()', () => {
  it('clears every timer, closes with 1000 and never reconnects', async () => {
    const { connection, sockets, socket, of } = setup();
    const connecting = connection.connect();
    socket().acceptWelcome();
    await connecting;
    jest.advanceTimersByTime(30_000); // a ping is waiting for its pong
    const pending = codeOf(connection.ping());
    expect(jest.getTimerCount()).toBeGreaterThan(1);

    connection.disconnect();

    expect(jest.getTimerCount()).toBe(0);
    expect(socket().closedWith).toEqual({ code: 1000, reason: 'client disconnect' });
    expect(connection.state).toBe('disconnected');
    expect(of('disconnected')).toEqual([{ code: 1000, reason: 'client disconnect', willReconnect: false }]);
    expect(await pending).toBe('NOT_CONNECTED');

    socket().serverClose(1000); // the close arriving afterwards changes nothing
    jest.advanceTimersByTime(600_000);
    expect(sockets).toHaveLength(1);
    expect(of('reconnect:scheduled')).toEqual([]);
    expect(connection.state).toBe('disconnected');
  });

  it('cancels a pending connect()', async () => {
    const { connection, socket } = setup();
    const connecting = connection.connect();
    connection.disconnect();
    expect(await codeOf(connecting)).toBe('DISCONNECTED');
    expect(socket().closedWith?.code).toBe(1000);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('cancels the wait for the next attempt', () => {
    const { connection, sockets, socket } = setup();
    void connection.connect().catch(() => undefined);
    socket().serverClose(1006);
    expect(jest.getTimerCount()).toBe(1);

    connection.disconnect();
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(600_000);
    expect(sockets).toHaveLength(1);
  });

  it('opens no socket for a token that arrives after it', async () => {
    let release: (token: string) => void = () => undefined;
    const { connection, sockets } = setup({ token: () => new Promise<string>((resolve) => (release = resolve)) });
    const connecting = connection.connect();
    connection.disconnect();
    release('late-token');
    await flush();
    expect(sockets).toHaveLength(0);
    expect(await codeOf(connecting)).toBe('DISCONNECTED');
  });

  it('wins over the rest of a welcome when a listener calls it', async () => {
    const { connection, socket, of } = setup();
    connection.on('welcome', () => connection.disconnect());
    const connecting = connection.connect();
    socket().acceptWelcome();
    await connecting;

    expect(connection.state).toBe('disconnected');
    expect(of('connected')).toEqual([]);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('dispose() also drops the online subscription and the listeners', async () => {
    const signal = new FakeOnlineSignal();
    const { connection } = setup({ onlineSignal: signal });
    void connection.connect().catch(() => undefined);
    expect(signal.listeners.size).toBe(1);

    connection.dispose();
    expect(signal.listeners.size).toBe(0);
    expect(connection.listenerCount()).toBe(0);
    expect(await codeOf(connection.connect())).toBe('DISPOSED');
  });
});

describe('Connection: online and offline', () => {
  it('closes while offline, makes no attempt, and reconnects at once when back online', async () => {
    const signal = new FakeOnlineSignal();
    const { connection, sockets, socket, of } = setup({ onlineSignal: signal });
    const connecting = connection.connect();
    socket().acceptWelcome();
    await connecting;

    signal.set(false);
    expect(socket().closedWith).toEqual({ code: 1000, reason: 'offline' });
    expect(connection.state).toBe('reconnecting');
    expect(of('disconnected')).toEqual([{ code: 1006, reason: 'offline', willReconnect: true }]);
    expect(of('error')).toEqual([]);
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(600_000);
    expect(sockets).toHaveLength(1);

    signal.set(true);
    expect(sockets).toHaveLength(2);
    expect(connection.reconnectAttempts).toBe(0);
    socket().acceptWelcome();
    expect(of('connected').map((c) => c.reconnected)).toEqual([false, true]);
  });

  it('stops the backoff while offline and starts again from the first attempt', () => {
    const signal = new FakeOnlineSignal();
    const { connection, sockets, socket, of } = setup({ onlineSignal: signal });
    void connection.connect().catch(() => undefined);
    socket().serverClose(1006);
    jest.advanceTimersByTime(1_500);
    socket().serverClose(1006);
    expect(connection.reconnectAttempts).toBe(2);

    signal.set(false);
    expect(jest.getTimerCount()).toBe(0);
    signal.set(true);
    expect(sockets).toHaveLength(3);
    expect(connection.reconnectAttempts).toBe(0);
    socket().serverClose(1006);
    expect(of('reconnect:scheduled').at(-1)).toEqual({ attempt: 1, delay: 1_500 });
  });

  it('rejects connect() with OFFLINE while offline and connects when the network is back', async () => {
    const signal = new FakeOnlineSignal(false);
    const { connection, sockets, socket, of } = setup({ onlineSignal: signal });

    expect(await codeOf(connection.connect())).toBe('OFFLINE');
    expect(connection.state).toBe('reconnecting');
    expect(of('state')).toEqual([{ state: 'reconnecting', previous: 'disconnected', reason: 'offline' }]);
    expect(sockets).toHaveLength(0);
    expect(jest.getTimerCount()).toBe(0);

    signal.set(true);
    socket().acceptWelcome();
    expect(connection.state).toBe('connected');
  });

  it('aborts an attempt in progress when the network goes away', async () => {
    const signal = new FakeOnlineSignal();
    const { connection } = setup({ onlineSignal: signal });
    const connecting = connection.connect();
    signal.set(false);
    expect(await codeOf(connecting)).toBe('OFFLINE');
    expect(connection.state).toBe('reconnecting');
    expect(jest.getTimerCount()).toBe(0);
  });

  it('does not start on its own after disconnect()', () => {
    const signal = new FakeOnlineSignal();
    const { connection, sockets } = setup({ onlineSignal: signal });
    void connection.connect().catch(() => undefined);
    connection.disconnect();
    signal.set(false);
    signal.set(true);
    expect(sockets).toHaveLength(1);
    expect(connection.state).toBe('disconnected');
  });
});

describe('Connection: stale sockets', () => {
  it('ignores everything a replaced socket still delivers', async () => {
    const { connection, sockets, socket, of } = setup();
    const connecting = connection.connect();
    socket().acceptWelcome();
    await connecting;
    const old = socket();
    old.serverClose(1006);
    jest.advanceTimersByTime(1_500);
    socket().acceptWelcome();
    const before = { frames: of('frame').length, states: of('state').length };

    old.receive({ type: 'delta', payload: {}, timestamp: 1 });
    old.receive({ type: 'welcome', payload: WELCOME, timestamp: 1 });
    old.receive('not json');
    old.serverClose(4401, 'token expired');

    expect(of('frame')).toHaveLength(before.frames);
    expect(of('state')).toHaveLength(before.states);
    expect(of('error')).toEqual([]);
    expect(connection.state).toBe('connected');
    expect(sockets).toHaveLength(2);
  });

  it('ignores a timed-out attempt that answers late', () => {
    const { connection, socket, of } = setup();
    void connection.connect().catch(() => undefined);
    const slow = socket();
    jest.advanceTimersByTime(10_000);
    jest.advanceTimersByTime(1_500);
    const next = socket();

    slow.acceptWelcome();
    slow.serverClose(1006);
    expect(connection.state).toBe('reconnecting');
    expect(of('connected')).toEqual([]);

    next.acceptWelcome();
    expect(connection.state).toBe('connected');
    expect(of('reconnect:scheduled')).toHaveLength(1);
  });
});

describe('Connection: frames', () => {
  async function connected() {
    const harness = setup();
    const connecting = harness.connection.connect();
    harness.socket().acceptWelcome();
    await connecting;
    return harness;
  }

  it('sends nothing before the welcome', () => {
    const { connection, socket } = setup();
    expect(connection.send({ type: 'subscribe', payload: { entityTypes: ['tasks'] } })).toBeUndefined();
    void connection.connect().catch(() => undefined);
    socket().open();
    expect(connection.send({ type: 'subscribe', payload: { entityTypes: ['tasks'] } })).toBeUndefined();
    expect(socket().sent).toEqual([]);
  });

  it('serializes the envelope with a timestamp, keeping or generating the id', async () => {
    const { connection, socket } = await connected();
    const generated = connection.send({ type: 'subscribe', payload: { entityTypes: ['tasks'] } });
    const another = connection.send({ type: 'unsubscribe', payload: { entityTypes: ['tasks'] } });
    const chosen = connection.send({ type: 'mutate', id: 'mut:web-a:000001', payload: {} });

    expect(typeof generated).toBe('string');
    expect(another).not.toBe(generated);
    expect(chosen).toBe('mut:web-a:000001');
    expect(socket().frames()).toEqual([
      { type: 'subscribe', id: generated, payload: { entityTypes: ['tasks'] }, timestamp: Date.now() },
      { type: 'unsubscribe', id: another, payload: { entityTypes: ['tasks'] }, timestamp: Date.now() },
      { type: 'mutate', id: 'mut:web-a:000001', payload: {}, timestamp: Date.now() },
    ]);
  });

  it('emits every frame it receives', async () => {
    const { socket, of } = await connected();
    const delta = { type: 'delta', payload: { entityType: 'tasks', entityId: 'task-1', version: 2 }, timestamp: 5 };
    const ack = { type: 'ack', id: '2', payload: { status: 'accepted' }, timestamp: 6 };
    socket().receive(delta);
    socket().receive(ack);
    expect(of('frame').slice(1)).toEqual([delta, ack]);
  });

  it('reports frames that are not JSON objects with a type, and stays connected', async () => {
    const { connection, socket, of } = await connected();
    for (const data of ['{"type":', '[1]', '"welcome"', '{"type":3}', 'null']) socket().receive(data);
    socket().onmessage?.({ data: new Uint8Array([1, 2]) });

    expect(of('error').map((e) => e.code)).toEqual(Array(6).fill('PROTOCOL_ERROR'));
    expect(of('frame')).toHaveLength(1);
    expect(connection.state).toBe('connected');
  });
});

describe('Connection: one state machine', () => {
  it('reports every change once, each continuing from the previous one', async () => {
    const signal = new FakeOnlineSignal();
    const { connection, socket, of } = setup({ onlineSignal: signal, maxRetries: 1 });

    const connecting = connection.connect();
    socket().acceptWelcome();
    await connecting;
    socket().serverClose(4001, 'slow consumer: resume with your cursor');
    jest.advanceTimersByTime(1_500);
    socket().acceptWelcome();
    signal.set(false);
    signal.set(true);
    socket().acceptWelcome();
    jest.advanceTimersByTime(35_000); // heartbeat timeout
    jest.advanceTimersByTime(1_500);
    socket().serverClose(1006); // the only retry fails: give up
    void connection.connect().catch(() => undefined);
    connection.disconnect();

    expectChained(connection, of('state'));
    expect(of('state').map((s) => s.state)).toEqual([
      'connecting',
      'connected',
      'reconnecting',
      'connected',
      'reconnecting',
      'connected',
      'reconnecting',
      'error',
      'connecting',
      'disconnected',
    ]);
    expect(of('reconnect:failed')).toEqual([{ attempts: 1 }]);
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('browserOnlineSignal', () => {
  it('is undefined outside a browser', () => {
    expect(browserOnlineSignal()).toBeUndefined();
  });

  it('follows navigator.onLine and the online and offline events', () => {
    const target = new EventTarget();
    const scope = globalThis as unknown as Record<string, unknown>;
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
    const navigator = { onLine: true };
    Object.defineProperty(globalThis, 'navigator', { value: navigator, configurable: true, writable: true });
    scope['addEventListener'] = target.addEventListener.bind(target);
    scope['removeEventListener'] = target.removeEventListener.bind(target);
    try {
      const signal = browserOnlineSignal();
      expect(signal?.isOnline()).toBe(true);
      const seen: boolean[] = [];
      const stop = signal?.subscribe((online) => seen.push(online));
      navigator.onLine = false;
      target.dispatchEvent(new Event('offline'));
      expect(signal?.isOnline()).toBe(false);
      target.dispatchEvent(new Event('online'));
      stop?.();
      target.dispatchEvent(new Event('offline'));
      expect(seen).toEqual([false, true]);
    } finally {
      delete scope['addEventListener'];
      delete scope['removeEventListener'];
      if (saved) Object.defineProperty(globalThis, 'navigator', saved);
      else delete scope['navigator'];
    }
  });
});
