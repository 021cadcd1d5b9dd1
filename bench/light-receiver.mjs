// A receiver lighter than the SDK, for the fan-out scenario of `npm run bench`: many WebSocket
// connections over plain TCP sockets, speaking just enough of RFC 6455 to open, subscribe, answer
// pings and count the `delta` frames it gets, without decoding them. One process holds thousands
// of sockets and counts a hundred thousand frames a second, so the gateway is what is measured.
//
// Driven by its parent over IPC:
//   { cmd: 'open', url, token, count, entityType }  → { opened, subscribed, failed }
//   { cmd: 'write', url, token, entityType, rate, seconds } → { sent, delivered, seconds (first to last delta) }
//   { cmd: 'close' }
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

const sockets = [];
let delivered = 0;
let counting = false;
let firstAt = 0;
let lastAt = 0;

function frame(opcode, payload) {
  // Client frames are masked (RFC 6455 §5.3).
  const data = Buffer.from(payload);
  const mask = randomBytes(4);
  const length = data.length;
  const header = length < 126 ? Buffer.from([0x80 | opcode, 0x80 | length]) : Buffer.alloc(4);
  if (length >= 126) {
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(length, 2);
  }
  for (let i = 0; i < length; i++) data[i] ^= mask[i % 4];
  return Buffer.concat([header, mask, data]);
}

const DELTA = Buffer.from('{"type":"delta"');

/** Opens one WebSocket; `onFrame(opcode, payload)` sees every complete frame. */
function openSocket(url, token, onFrame) {
  const { hostname, port, pathname } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    socket.setNoDelay(true);
    let buffer = Buffer.alloc(0);
    let upgraded = false;
    socket.once('error', reject);
    socket.on('connect', () => {
      socket.write(
        `GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Protocol: syncline.v1, bearer.${token}\r\n\r\n`,
      );
    });
    socket.on('data', (chunk) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!buffer.subarray(0, 12).toString().includes('101')) {
          reject(new Error(buffer.subarray(0, end).toString()));
          socket.destroy();
          return;
        }
        upgraded = true;
        buffer = buffer.subarray(end + 4);
        resolve(socket);
      }
      let offset = 0;
      while (buffer.length - offset >= 2) {
        const opcode = buffer[offset] & 0x0f;
        let length = buffer[offset + 1] & 0x7f;
        let start = offset + 2;
        if (length === 126) {
          if (buffer.length - offset < 4) break;
          length = buffer.readUInt16BE(offset + 2);
          start = offset + 4;
        } else if (length === 127) {
          if (buffer.length - offset < 10) break;
          length = Number(buffer.readBigUInt64BE(offset + 2));
          start = offset + 10;
        }
        if (buffer.length < start + length) break;
        onFrame(socket, opcode, buffer.subarray(start, start + length));
        offset = start + length;
      }
      buffer = offset === buffer.length ? Buffer.alloc(0) : buffer.subarray(offset);
    });
  });
}

function onFrame(socket, opcode, payload) {
  if (opcode === 0x9) socket.write(frame(0xa, payload));
  else if (opcode === 0x1 && counting && payload.subarray(0, DELTA.length).equals(DELTA)) {
    lastAt = performance.now();
    if (delivered++ === 0) firstAt = lastAt;
  } else if (opcode === 0x1 && payload.includes('"subscribed"')) socket.emit('subscribed');
}

async function open({ url, token, count, entityType }) {
  let failed = 0;
  let subscribed = 0;
  for (let i = 0; i < count; i += 250) {
    const batch = Array.from({ length: Math.min(250, count - i) }, () =>
      openSocket(url, token, onFrame).then(
        (socket) =>
          new Promise((resolve) => {
            socket.once('subscribed', () => {
              subscribed++;
              resolve();
            });
            socket.write(
              frame(
                0x1,
                JSON.stringify({
                  type: 'subscribe',
                  id: 's',
                  payload: { entityTypes: [entityType] },
                  timestamp: Date.now(),
                }),
              ),
            );
            sockets.push(socket);
          }),
        () => {
          failed++;
        },
      ),
    );
    await Promise.all(batch);
  }
  return { opened: sockets.length, subscribed, failed };
}

/** One more connection writes `rate` mutations a second; every subscribed socket counts its deltas. */
async function write({ url, token, entityType, rate, seconds }) {
  const writer = await openSocket(url, token, () => undefined);
  delivered = 0;
  counting = true;
  const started = performance.now();
  let sent = 0;
  const total = rate * seconds;
  await new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
      for (; sent < due; sent++) {
        const payload = {
          mutationId: `fan-${randomBytes(8).toString('hex')}`,
          entityType,
          entityId: `e-${sent % 10}`,
          op: 'patch',
          data: { n: sent },
          baseVersion: 0,
          vectorClock: { fanout: sent + 1 },
          hlc: `${String(Date.now()).padStart(15, '0')}:${String(sent % 100000).padStart(5, '0')}:fanout`,
        };
        writer.write(frame(0x1, JSON.stringify({ type: 'mutate', payload, timestamp: Date.now() })));
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 5);
    };
    tick();
  });
  // The last deltas are still on their way: the window closes a second after the last send.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  counting = false;
  writer.destroy();
  // The rate over the span deliveries arrived in: the sending schedule, not the wait after it.
  return { sent, delivered, seconds: Math.max(lastAt - firstAt, 1) / 1000 };
}

process.on('message', async (message) => {
  try {
    if (message.cmd === 'open') process.send({ ok: true, result: await open(message) });
    else if (message.cmd === 'write') process.send({ ok: true, result: await write(message) });
    else if (message.cmd === 'close') {
      for (const socket of sockets) socket.destroy();
      process.send({ ok: true, result: {} }, () => process.exit(0));
    }
  } catch (error) {
    process.send({ ok: false, error: String(error?.stack ?? error) });
  }
});
