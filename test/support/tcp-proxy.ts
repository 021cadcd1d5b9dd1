/**
 * A client's network path to the gateways (or a service's to NATS), for fault tests: what a load
 * balancer and the network between do. Each connection goes to the preferred gateway, or, when that one refuses
 * (it died), to the next one that accepts, like a balancer whose health check caught up.
 *
 * `partition()` cuts the path without closing anything, as a broken link does: bytes are held
 * (TCP would retransmit them), closes are not passed on, and new connections hang. `heal()`
 * lets it all through again; a side that gave up meanwhile is then closed on the other end.
 *
 *   const proxy = await TcpProxy.start(() => system.gateways.map((g) => portOf(g.url)), 0);
 *   new DifferentialSyncClient({ websocketUrl: proxy.wsUrl, ... });
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

/** Where a new connection may go, most preferred first. */
export type Targets = () => readonly number[];

interface Link {
  readonly downstream: Socket;
  upstream: Socket | undefined;
}

export class TcpProxy {
  private readonly links = new Set<Link>();
  private cut = false;
  private readonly held: (() => void)[] = [];

  private constructor(
    private readonly server: Server,
    private readonly targets: Targets,
    private readonly preferred: number,
  ) {
    server.on('connection', (socket) => this.accept(socket));
  }

  /** Listens on a free loopback port; `preferred` is the index in `targets()` tried first. */
  static async start(targets: Targets, preferred = 0): Promise<TcpProxy> {
    const server = createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new TcpProxy(server, targets, preferred);
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  /** The gateways' WebSocket endpoint through this path. */
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  get partitioned(): boolean {
    return this.cut;
  }

  /** Holds every byte and close on open connections, and every new connection, until `heal()`. */
  partition(): void {
    this.cut = true;
    for (const { downstream, upstream } of this.links) {
      downstream.pause();
      upstream?.pause();
    }
  }

  heal(): void {
    this.cut = false;
    for (const link of this.links) {
      link.downstream.resume();
      link.upstream?.resume();
    }
    for (const release of this.held.splice(0)) release();
  }

  /** Closes every open connection on both ends at once, as a crash or a reset does. */
  reset(): void {
    for (const link of [...this.links]) this.drop(link);
  }

  async close(): Promise<void> {
    for (const { downstream, upstream } of this.links) {
      downstream.destroy();
      upstream?.destroy();
    }
    await new Promise((resolve) => this.server.close(resolve));
  }

  private accept(downstream: Socket): void {
    const link: Link = { downstream, upstream: undefined };
    this.links.add(link);
    downstream.on('error', () => undefined);
    downstream.on('close', () => this.whenFlowing(() => this.drop(link)));
    this.whenFlowing(() => {
      if (downstream.destroyed) return this.drop(link);
      const ports = this.targets();
      const order = ports.map((_, k) => ports[(this.preferred + k) % ports.length]!);
      void this.open(link, order);
    });
  }

  /** Connects to the first port that accepts; with none left, closes the client's connection. */
  private async open(link: Link, ports: readonly number[]): Promise<void> {
    for (const port of ports) {
      const upstream = await connectTo(port);
      if (!upstream) continue;
      if (link.downstream.destroyed) {
        upstream.destroy();
        return;
      }
      link.upstream = upstream;
      this.forward(link.downstream, upstream, link);
      this.forward(upstream, link.downstream, link);
      if (!this.cut) link.downstream.resume();
      return;
    }
    this.drop(link);
  }

  private forward(from: Socket, to: Socket, link: Link): void {
    from.on('data', (chunk: Buffer) => {
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => !this.cut && from.resume());
      }
    });
    from.on('end', () => this.whenFlowing(() => to.end()));
    from.on('close', () => this.whenFlowing(() => this.drop(link)));
  }

  private drop(link: Link): void {
    link.downstream.destroy();
    link.upstream?.destroy();
    this.links.delete(link);
  }

  /** Runs `action` now, or at `heal()` while the path is cut. */
  private whenFlowing(action: () => void): void {
    if (this.cut) this.held.push(action);
    else action();
  }
}

function connectTo(port: number): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      socket.on('error', () => undefined);
      resolve(socket);
    });
    socket.once('error', () => resolve(undefined));
  });
}

/** The port of a `ws://host:port/...` or `http://host:port` URL. */
export function portOf(url: string): number {
  return Number(new URL(url).port);
}
