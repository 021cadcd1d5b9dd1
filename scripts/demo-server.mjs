/**
 * Serves the demo app next to a development gateway. The app asks `/session` for a token of
 * tenant "acme" — minted here, with the development secret: never run this in production.
 */
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';

const FILES = new Map([
  ['/', { path: '../demo/index.html', type: 'text/html; charset=utf-8' }],
  ['/app.css', { path: '../demo/app.css', type: 'text/css; charset=utf-8' }],
  ['/app.js', { path: '../demo/dist/app.js', type: 'text/javascript; charset=utf-8' }],
  ['/app.js.map', { path: '../demo/dist/app.js.map', type: 'application/json' }],
]);

export async function startDemoServer({ port, host, wsUrl, mintToken }) {
  const server = createServer(async (request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    try {
      const file = FILES.get(url.pathname);
      if (file) {
        const body = await readFile(new URL(file.path, import.meta.url));
        // Always revalidate: after a rebuild, a reload must get the new app.
        response.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' }).end(body);
      } else if (url.pathname === '/session') {
        const user = (url.searchParams.get('user') ?? 'guest').replace(/[^A-Za-z0-9_-]/g, '').slice(0, 32) || 'guest';
        const token = await mintToken({ tenant: 'acme', user, ttl: '12h' });
        response
          .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
          .end(JSON.stringify({ wsUrl, token, user }));
      } else {
        response.writeHead(404).end();
      }
    } catch (error) {
      response.writeHead(error?.code === 'ENOENT' ? 404 : 500).end(String(error));
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return server;
}
