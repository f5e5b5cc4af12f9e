// The client port's HTTP/2 front: HPACK decoding (RFC 7541's own examples),
// and the repair of a request authority Node's parser would refuse — through
// a real listener and a real HTTP/2 client, on one connection and many.

import assert from 'node:assert/strict';
import * as http from 'node:http';
import http2 from 'node:http2';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';

import { isValidAuthority, repairAuthority, RequestStreamFilter } from '../../src/server/authorityRepair.js';
import { encodeLiteral, HpackDecoder, HpackError, huffmanDecode } from '../../src/server/hpack.js';
import { type ClientListener, listenClient } from '../../src/server/listen.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const pairs = (fields: ReturnType<HpackDecoder['decode']>): string[][] => fields.map((f) => [f.name, f.value]);

describe('HPACK decoding', () => {
  it('decodes RFC 7541 C.4: three requests with Huffman coding, sharing a dynamic table', () => {
    const d = new HpackDecoder();
    assert.deepEqual(pairs(d.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'))), [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
    ]);
    assert.deepEqual(pairs(d.decode(hex('8286 84be 5886 a8eb 1064 9cbf'))), [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
      ['cache-control', 'no-cache'],
    ]);
    assert.deepEqual(pairs(d.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'))), [
      [':method', 'GET'],
      [':scheme', 'https'],
      [':path', '/index.html'],
      [':authority', 'www.example.com'],
      ['custom-key', 'custom-value'],
    ]);
  });

  it('decodes RFC 7541 C.2: literals without Huffman coding, indexed and not', () => {
    const d = new HpackDecoder();
    const [withIndexing] = d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'));
    assert.deepEqual([withIndexing!.name, withIndexing!.value, withIndexing!.representation], ['custom-key', 'custom-header', 'incremental']);
    const [never] = d.decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74'));
    assert.deepEqual([never!.name, never!.value, never!.representation], ['password', 'secret', 'never-indexed']);
    // The first entry is now index 62.
    assert.deepEqual(pairs(d.decode(hex('be'))), [['custom-key', 'custom-header']]);
  });

  it('evicts by size as the encoder does, and honours table size updates', () => {
    const d = new HpackDecoder();
    const field = (value: string): Buffer => encodeLiteral({ name: 'k', value, received: value, representation: 'incremental', nameIndex: 0, start: 0, end: 0 }, value);
    // Each entry: 1 + 2000 + 32 octets; the third pushes out the first.
    d.decode(Buffer.concat([field('a'.repeat(2000)), field('b'.repeat(2000)), field('c'.repeat(2000))]));
    assert.equal(d.decode(hex('be'))[0]!.value[0], 'c');
    assert.equal(d.decode(hex('bf'))[0]!.value[0], 'b');
    assert.throws(() => d.decode(hex('c0')), HpackError);
    d.decode(hex('20')); // size 0 empties the table
    assert.throws(() => d.decode(hex('be')), HpackError);
    assert.throws(() => d.decode(hex('3fe21f')), /above the limit/); // 4097
  });

  it('refuses bad padding, truncation and an out-of-range index with HpackError', () => {
    assert.throws(() => huffmanDecode(hex('00')), HpackError); // zero padding bits
    assert.throws(() => huffmanDecode(hex('ffffffff')), HpackError); // EOS
    for (const bad of ['41', '418c', 'ff', 'bf', '00']) assert.throws(() => new HpackDecoder().decode(hex(bad)), HpackError, bad);
  });
});

describe('authority repair', () => {
  it('knows the characters of RFC 3986 §3.2 and keeps the length', () => {
    assert.ok(isValidAuthority('127.0.0.1:2379'));
    assert.ok(isValidAuthority('[::1]:2379'));
    assert.ok(!isValidAuthority('http://127.0.0.1:2379'));
    assert.equal(repairAuthority('http://127.0.0.1:2379'), 'http:__127.0.0.1:2379');
    assert.equal(repairAuthority('#initially=[a;b]'), '_initially=[a;b]');
  });

  it('drops the first SETTINGS ACK only, and passes other frames through as they arrive', () => {
    const f = new RequestStreamFilter();
    const settings = hex('000000 04 00 00000000');
    const ack = hex('000000 04 01 00000000');
    const ping = hex('000008 06 00 00000000 0102030405060708');
    const out = Buffer.concat([settings, ack, ping, ack].flatMap((frame) => f.push(frame)));
    assert.deepEqual(out, Buffer.concat([settings, ping, ack]));
    assert.ok(f.settingsAckDropped);
    // A DATA frame cut anywhere comes out whole and in order.
    const data = hex('000005 00 01 00000001 68656c6c6f');
    const pieces = [data.subarray(0, 4), data.subarray(4, 11), data.subarray(11)];
    assert.deepEqual(Buffer.concat(pieces.flatMap((p) => f.push(p))), data);
  });
});

describe('HTTP/2 through the client listener', () => {
  let listener: ClientListener;
  const seen: string[] = [];

  before(async () => {
    const h2 = http2.createServer();
    h2.on('stream', (stream, headers) => {
      seen.push(String(headers[':authority']));
      stream.respond({ ':status': 200 });
      stream.end(`ok ${headers[':path']}`);
    });
    const h1 = http.createServer((_req, res) => res.end('http/1.1'));
    listener = await listenClient(new URL('http://127.0.0.1:0'), h2, h1);
  });
  after(async () => {
    await listener.close();
  });

  const requests = async (authority: string | undefined, count: number): Promise<string[]> => {
    const client = http2.connect(`http://127.0.0.1:${listener.port}`);
    client.on('error', () => {});
    try {
      const answers: string[] = [];
      for (let i = 0; i < count; i++) {
        answers.push(
          await new Promise<string>((resolve, reject) => {
            const headers: http2.OutgoingHttpHeaders = { ':path': `/r${i}`, 'x-pad': 'v'.repeat(i * 700) };
            if (authority !== undefined) headers[':authority'] = authority;
            const req = client.request(headers);
            let body = '';
            req.setEncoding('utf8');
            req.on('data', (c: string) => (body += c));
            req.on('end', () => resolve(body));
            req.on('error', reject);
            req.end();
          }),
        );
      }
      return answers;
    } finally {
      client.close();
    }
  };

  it('serves a client with a valid authority on the socket itself', async () => {
    seen.length = 0;
    assert.deepEqual(await requests(undefined, 3), ['ok /r0', 'ok /r1', 'ok /r2']);
    assert.deepEqual(seen, Array(3).fill(`127.0.0.1:${listener.port}`));
    assert.deepEqual(listener.connections, { http1: 0, http2: 1, http2Filtered: 0 });
  });

  it("repairs etcdctl's URL authority on every request of a connection (through the dynamic table too)", async () => {
    seen.length = 0;
    // Node's client would send this one as nghttp2 refuses it: an authority with "//".
    const url = `http://127.0.0.1:${listener.port}`;
    const answers = await requests(url, 12);
    assert.deepEqual(answers, Array.from({ length: 12 }, (_, i) => `ok /r${i}`));
    assert.deepEqual(seen, Array(12).fill(repairAuthority(url)));
    assert.deepEqual(listener.connections, { http1: 0, http2: 2, http2Filtered: 1 });
  });

  it('still serves HTTP/1.1 and a client that sends nothing after its preface for a while', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      http.get(`http://127.0.0.1:${listener.port}/x`, (res) => {
        let b = '';
        res.on('data', (c) => (b += c));
        res.on('end', () => resolve(b));
      }).on('error', reject);
    });
    assert.equal(body, 'http/1.1');
    // A raw client: preface and SETTINGS, then silence; the listener answers with its SETTINGS at once.
    const socket = net.connect(listener.port, '127.0.0.1');
    const first = await new Promise<Buffer>((resolve) => {
      socket.once('data', resolve);
      socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), hex('000000 04 00 00000000')]));
    });
    assert.equal(first[3], 0x04);
    socket.destroy();
  });
});
