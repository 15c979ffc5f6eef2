// A minimal Redis client (RESP2 over TCP) for tests that read what the server stored: every
// reply comes back with its strings as Buffers, so binary values can be searched too.
import { connect as tcpConnect } from 'node:net';

/** Parses one reply from `buffer` at `offset`: `{value, next}`, or null when incomplete. */
function parse(buffer, offset) {
  const end = buffer.indexOf('\r\n', offset);
  if (end < 0) return null;
  const kind = String.fromCharCode(buffer[offset]);
  const line = buffer.subarray(offset + 1, end);
  const after = end + 2;
  switch (kind) {
    case '+':
      return { value: Buffer.from(line), next: after };
    case '-':
      return { value: new Error(line.toString('utf8')), next: after };
    case ':':
      return { value: Number(line.toString('ascii')), next: after };
    case '$': {
      const length = Number(line.toString('ascii'));
      if (length < 0) return { value: null, next: after };
      if (buffer.length < after + length + 2) return null;
      return { value: Buffer.from(buffer.subarray(after, after + length)), next: after + length + 2 };
    }
    case '*': {
      const count = Number(line.toString('ascii'));
      if (count < 0) return { value: null, next: after };
      const items = [];
      let next = after;
      for (let index = 0; index < count; index += 1) {
        const item = parse(buffer, next);
        if (!item) return null;
        items.push(item.value);
        next = item.next;
      }
      return { value: items, next };
    }
    default:
      throw new Error(`unexpected RESP reply type ${JSON.stringify(kind)}`);
  }
}

/** Connects to Redis on 127.0.0.1:`port`; resolves `{command(...args), close()}`. */
export function respClient(port) {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1');
    const waiting = [];
    let buffer = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      let offset = 0;
      for (;;) {
        const reply = parse(buffer, offset);
        if (!reply) break;
        offset = reply.next;
        const waiter = waiting.shift();
        if (reply.value instanceof Error) waiter?.reject(reply.value);
        else waiter?.resolve(reply.value);
      }
      buffer = buffer.subarray(offset);
    });
    socket.once('error', (error) => {
      for (const waiter of waiting.splice(0)) waiter.reject(error);
      reject(error);
    });
    socket.once('connect', () =>
      resolve({
        command(...args) {
          const parts = [`*${args.length}\r\n`];
          for (const arg of args) {
            const data = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg));
            parts.push(`$${data.length}\r\n`, data, '\r\n');
          }
          return new Promise((resolveReply, rejectReply) => {
            waiting.push({ resolve: resolveReply, reject: rejectReply });
            socket.write(Buffer.concat(parts.map((part) => (Buffer.isBuffer(part) ? part : Buffer.from(part)))));
          });
        },
        close() {
          socket.destroy();
        },
      }),
    );
  });
}

function flatten(value, into = []) {
  if (Buffer.isBuffer(value)) into.push(value);
  else if (Array.isArray(value)) for (const item of value) flatten(item, into);
  else if (value !== null && value !== undefined) into.push(Buffer.from(String(value)));
  return into;
}

/**
 * Every key of the Redis on `port` (SCAN), with its type and every byte string it holds
 * (GET, HGETALL, SMEMBERS, ZRANGE … WITHSCORES, LRANGE, XRANGE): `[{key, type, parts}]`,
 * keys and parts as Buffers.
 */
export async function dumpRedis(port) {
  const client = await respClient(port);
  try {
    const keys = [];
    let cursor = '0';
    do {
      const [next, batch] = await client.command('SCAN', cursor, 'COUNT', 1000);
      cursor = next.toString('ascii');
      keys.push(...batch);
    } while (cursor !== '0');
    const entries = [];
    for (const key of keys) {
      const type = (await client.command('TYPE', key)).toString('ascii');
      const read = {
        string: () => client.command('GET', key),
        hash: () => client.command('HGETALL', key),
        set: () => client.command('SMEMBERS', key),
        zset: () => client.command('ZRANGE', key, 0, -1, 'WITHSCORES'),
        list: () => client.command('LRANGE', key, 0, -1),
        stream: () => client.command('XRANGE', key, '-', '+'),
        none: async () => null, // expired between SCAN and TYPE
      }[type];
      if (!read) throw new Error(`key ${key} has a type this dump does not read: ${type}`);
      entries.push({ key, type, parts: flatten(await read()) });
    }
    return entries;
  } finally {
    client.close();
  }
}
