import type { Server } from 'node:http';

export interface DemoServerOptions {
  readonly port: number;
  readonly host: string;
  /** The gateway's WebSocket URL, handed to the page. */
  readonly wsUrl: string;
  readonly mintToken: (claims: { tenant: string; user: string; ttl: string }) => Promise<string>;
}

export function startDemoServer(options: DemoServerOptions): Promise<Server>;
