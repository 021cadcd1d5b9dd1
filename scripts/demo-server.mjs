/**
 * Serves the demo page next to a development gateway. The page asks `/session` for a token of
 * tenant "acme" — minted here, with the development secret: never run this in production.
 */
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const PAGE = fileURLToPath(new URL('../demo/index.html', import.meta.url));

export async function startDemoServer({ port, host, wsUrl, mintToken }) {
  const server = createServer(async (request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    try {
      if (url.pathname === '/') {
        response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(await readFile(PAGE));
      } else if (url.pathname === '/session') {
        const user = (url.searchParams.get('user') ?? 'guest').replace(/[^A-Za-z0-9_-]/g, '').slice(0, 32) || 'guest';
        const token = await mintToken({ tenant: 'acme', user, ttl: '12h' });
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ wsUrl, token, user }));
      } else {
        response.writeHead(404).end();
      }
    } catch (error) {
      response.writeHead(500).end(String(error));
    }
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  return server;
}
