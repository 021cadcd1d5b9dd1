#!/usr/bin/env node
/**
 * The demo page for docker-compose.yml: serves the order board and answers its `/session` with a
 * token of tenant "acme", signed with JWT_SECRET, and the proxy's public WebSocket URL.
 *
 * It hands a token to anyone who asks: it belongs to a development stack only. JWT_SECRET has no
 * fallback here, so it never signs with a secret the gateways do not share.
 */
import { startDemoServer } from '../../scripts/demo-server.mjs';
import { mintToken } from '../../scripts/mint-token.mjs';

const secret = process.env.JWT_SECRET;
if (!secret || secret.length < 32) {
  console.error('demo: JWT_SECRET (at least 32 characters, the gateways\u2019 secret) is required');
  process.exit(78);
}
const port = Number(process.env.DEMO_PORT ?? 3001);
// What the browser connects to: the proxy as the host publishes it, not a name inside the network.
const wsUrl = process.env.DEMO_WS_URL ?? 'ws://localhost:8080/ws';

const server = await startDemoServer({
  port,
  host: '0.0.0.0',
  wsUrl,
  mintToken: (claims) => mintToken({ ...claims, secret }),
});
console.log(JSON.stringify({ level: 30, time: Date.now(), msg: 'demo ready', port, wsUrl }));

const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
