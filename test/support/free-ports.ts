import { createServer, type AddressInfo, type Server } from 'node:net';

const PORT_RANGE_START = 20_000;
const PORT_RANGE_SIZE = 12_000;

/**
 * Ports below Linux's ephemeral range (32768 and up), so that no outgoing connection can hold a
 * server's port while it is down for a restart. Each is checked free by binding it, all are
 * held together so they are distinct, then released for the servers to bind.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let attempt = 0; servers.length < count; attempt++) {
      if (attempt > count * 50) throw new Error(`found only ${servers.length} of ${count} free ports`);
      const server = await listenOn(PORT_RANGE_START + Math.floor(Math.random() * PORT_RANGE_SIZE));
      if (server) servers.push(server);
    }
    return servers.map((server) => (server.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

function listenOn(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}
