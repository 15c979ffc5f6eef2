// Files and voice notes: POST /api/files while in a chat, file/voice chat messages with URLs
// signed per viewer, GET /api/files/{id} access rules, type sniffing and size limits.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  RFC3339_UTC,
  TRANSPORTS,
  api,
  assertAckError,
  createGuest,
  emitAck,
  guestOnline,
  matchPair,
  serverFor,
  transportName,
  waitFor,
  waitForArgs,
} from './lib/server.js';

const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex'), Buffer.alloc(64, 7)]);
const OGG = Buffer.concat([Buffer.from('OggS', 'latin1'), Buffer.from([0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34]), Buffer.from('OpusHead', 'latin1'), Buffer.alloc(200, 1)]);
const EXE = Buffer.concat([Buffer.from([0x4d, 0x5a, 0x90, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00]), Buffer.alloc(128, 0)]);

/** POST /api/files with a multipart body. */
async function upload(url, token, bytes, { filename = 'upload.bin', duration, type = 'application/octet-stream' } = {}) {
  const form = new FormData();
  form.append('file', new Blob([bytes], { type }), filename);
  if (duration !== undefined) form.append('duration', String(duration));
  return api(url, 'POST', '/api/files', { token, body: form });
}

/** GET of a (relative) file URL: `{status, bytes, type, body}`. */
async function download(url, fileUrl) {
  const response = await fetch(url + fileUrl);
  const bytes = Buffer.from(await response.arrayBuffer());
  let body = null;
  if ((response.headers.get('content-type') ?? '').includes('application/json')) body = JSON.parse(bytes.toString('utf8'));
  return { status: response.status, bytes, type: response.headers.get('content-type'), body };
}

function assertSignedUrl(fileUrl, fileId, viewer) {
  assert.equal(typeof fileUrl, 'string');
  assert.ok(fileUrl.startsWith('/'), `relative URL: ${fileUrl}`);
  const parsed = new URL(fileUrl, 'http://x');
  assert.equal(parsed.pathname, `/api/files/${fileId}`);
  assert.equal(parsed.searchParams.get('u'), viewer, `signed for ${viewer}`);
  assert.match(parsed.searchParams.get('e') ?? '', /^\d+$/);
  assert.ok((parsed.searchParams.get('s') ?? '').length > 0);
}

function withParam(fileUrl, key, value) {
  const parsed = new URL(fileUrl, 'http://x');
  parsed.searchParams.set(key, value);
  return `${parsed.pathname}?${parsed.searchParams.toString()}`;
}

function tamperSignature(fileUrl) {
  const parsed = new URL(fileUrl, 'http://x');
  const signature = parsed.searchParams.get('s');
  const flipped = signature[3] === 'A' ? 'B' : 'A';
  return withParam(fileUrl, 's', signature.slice(0, 3) + flipped + signature.slice(4));
}

for (const transports of TRANSPORTS) {
  describe(`files over ${transportName(transports)}`, () => {
    test('an image shared in a chat: upload, file message, downloads signed per viewer', async (t) => {
      const server = await serverFor(t);
      const { a, b, roomId } = await matchPair(server.url, transports);
      const outsider = await createGuest(server.url);
      const uploaded = await upload(server.url, a.token, PNG, { filename: 'cat.txt', type: 'text/plain' });
      assert.equal(uploaded.status, 201, JSON.stringify(uploaded.body));
      const file = uploaded.body.file;
      assert.deepEqual(Object.keys(file).sort(), ['expiresAt', 'fileId', 'fileSize', 'fileType', 'fileUrl', 'filename']);
      assert.equal(file.fileType, 'image', 'judged from the bytes, not the name or declared type');
      assert.equal(file.fileSize, PNG.length);
      assert.equal(file.filename, 'cat.txt');
      assert.match(file.expiresAt, RFC3339_UTC);
      assertSignedUrl(file.fileUrl, file.fileId, a.user.id);
      const own = await download(server.url, file.fileUrl);
      assert.equal(own.status, 200);
      assert.ok(own.bytes.equals(PNG), 'the uploader gets the same bytes');
      assert.match(own.type, /^image\/png/);

      const ack = await emitAck(a.socket, 'chat:message', { type: 'file', content: { fileId: file.fileId, fileUrl: '/evil' }, clientId: 'f1' });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      assert.equal(ack.message.status, 'sent');
      const [message, askAck] = await waitForArgs(b.socket, 'chat:message');
      assert.equal(message.type, 'file');
      assert.equal(message.roomId, roomId);
      assert.equal(message.senderId, a.user.id);
      assert.equal(message.status, 'delivered');
      assert.equal(typeof askAck, 'function');
      const content = message.content;
      assert.equal(content.fileId, file.fileId);
      assert.equal(content.filename, 'cat.txt');
      assert.equal(content.fileType, 'image');
      assert.equal(content.fileSize, PNG.length);
      assertSignedUrl(content.fileUrl, file.fileId, b.user.id);
      const partner = await download(server.url, content.fileUrl);
      assert.equal(partner.status, 200);
      assert.ok(partner.bytes.equals(PNG), 'the partner gets the same bytes');

      // Tampered signature, another viewer, no signature: 403.
      assert.equal((await download(server.url, tamperSignature(content.fileUrl))).status, 403, 'tampered signature');
      assert.equal((await download(server.url, withParam(content.fileUrl, 'u', outsider.user.id))).status, 403, 'signed for B, claimed by an outsider');
      assert.equal((await download(server.url, withParam(content.fileUrl, 'e', String(Number(new URL(content.fileUrl, 'http://x').searchParams.get('e')) + 1000)))).status, 403, 'expiry extended');
      const bare = await download(server.url, `/api/files/${file.fileId}`);
      assert.ok([403, 404].includes(bare.status), `no signature: ${bare.status}`);
      const denied = await download(server.url, tamperSignature(content.fileUrl));
      assert.equal(denied.body?.error?.code, 'forbidden');

      // The room closes: the files go.
      assert.equal((await emitAck(b.socket, 'chat:leave')).ok, true);
      await waitFor(a.socket, 'room:closed');
      for (const fileUrl of [file.fileUrl, content.fileUrl]) {
        const after = await download(server.url, fileUrl);
        assert.ok([403, 404].includes(after.status), `after the room closed: ${after.status}`);
      }
    });

    test('voice notes, and file references the room does not own', async (t) => {
      const server = await serverFor(t);
      const { a, b } = await matchPair(server.url, transports);
      const voice = await upload(server.url, b.token, OGG, { filename: 'note.ogg', duration: 3.5, type: 'audio/ogg' });
      assert.equal(voice.status, 201, JSON.stringify(voice.body));
      assert.equal(voice.body.file.fileType, 'voice');
      assert.equal(voice.body.file.duration, 3.5);
      const ack = await emitAck(b.socket, 'chat:message', { type: 'voice', content: { fileId: voice.body.file.fileId } });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      const message = await waitFor(a.socket, 'chat:message');
      assert.equal(message.type, 'voice');
      assert.equal(message.content.fileId, voice.body.file.fileId);
      assert.equal(message.content.fileType, 'voice');
      assert.equal(message.content.duration, 3.5);
      assertSignedUrl(message.content.fileUrl, voice.body.file.fileId, a.user.id);
      const fetched = await download(server.url, message.content.fileUrl);
      assert.equal(fetched.status, 200);
      assert.ok(fetched.bytes.equals(OGG));
      assert.match(fetched.type, /^audio\//);

      // Ogg without a duration is plain audio.
      const audio = await upload(server.url, a.token, OGG, { filename: 'song.ogg' });
      assert.equal(audio.status, 201);
      assert.equal(audio.body.file.fileType, 'audio');
      // A voice message must point at a voice upload.
      const image = await upload(server.url, a.token, PNG, { filename: 'x.png' });
      assert.equal(image.status, 201);
      const wrongKind = await emitAck(a.socket, 'chat:message', { type: 'voice', content: { fileId: image.body.file.fileId } });
      assert.equal(wrongKind.ok, false, `voice pointing at an image: ${JSON.stringify(wrongKind)}`);
      // Unknown ids and files of another room are refused.
      const unknown = await emitAck(a.socket, 'chat:message', { type: 'file', content: { fileId: 'file_does_not_exist' } });
      assert.equal(unknown.ok, false, `unknown file: ${JSON.stringify(unknown)}`);
      const other = await matchPair(server.url, transports);
      const foreign = await upload(server.url, other.a.token, PNG);
      assert.equal(foreign.status, 201);
      const stolen = await emitAck(a.socket, 'chat:message', { type: 'file', content: { fileId: foreign.body.file.fileId } });
      assert.equal(stolen.ok, false, `a file of another room: ${JSON.stringify(stolen)}`);
      assert.equal(typeof stolen.error.code, 'string');
      assertAckError(assert, await emitAck(a.socket, 'chat:message', { type: 'file', content: 'not-an-object' }), 'invalid_input', 'file content not an object');
      // Outside a chat, file messages fail with not_in_chat.
      const lonely = await guestOnline(server.url, transports);
      assertAckError(assert, await emitAck(lonely.socket, 'chat:message', { type: 'file', content: { fileId: image.body.file.fileId } }), 'not_in_chat', 'file message outside a chat');
    });

    test('chat:clear deletes the room\'s files', async (t) => {
      const server = await serverFor(t);
      const { a, b } = await matchPair(server.url, transports);
      const first = await upload(server.url, a.token, PNG);
      const second = await upload(server.url, b.token, OGG, { duration: 1 });
      assert.equal(first.status, 201);
      assert.equal(second.status, 201);
      const ack = await emitAck(b.socket, 'chat:clear');
      assert.deepEqual(ack, { ok: true, deletedFiles: 2 });
      await waitFor(a.socket, 'chat:cleared');
      for (const file of [first.body.file, second.body.file]) {
        const gone = await download(server.url, file.fileUrl);
        assert.ok([403, 404].includes(gone.status), `after chat:clear: ${gone.status}`);
      }
      const ref = await emitAck(a.socket, 'chat:message', { type: 'file', content: { fileId: first.body.file.fileId } });
      assert.equal(ref.ok, false, 'a cleared file can no longer be shared');
    });
  });
}

describe('files REST rules', () => {
  test('uploads need a token and a chat; executables are refused; types are sniffed', async (t) => {
    const server = await serverFor(t);
    const noAuth = await upload(server.url, undefined, PNG);
    assert.equal(noAuth.status, 401);
    assert.equal(noAuth.body.error.code, 'auth_required');
    const loner = await createGuest(server.url);
    const notInChat = await upload(server.url, loner.token, PNG);
    assert.equal(notInChat.status, 400);
    assert.equal(notInChat.body.error.code, 'not_in_chat');
    const { a } = await matchPair(server.url, ['websocket']);
    const exe = await upload(server.url, a.token, EXE, { filename: 'photo.png', type: 'image/png' });
    assert.equal(exe.status, 415);
    assert.equal(exe.body.error.code, 'unsupported_type');
    assert.equal(typeof exe.body.error.message, 'string');
    const pdf = await upload(server.url, a.token, Buffer.from('%PDF-1.4\n%âãÏÓ\n1 0 obj\n<<>>\nendobj\n', 'latin1'), { filename: 'doc.pdf' });
    assert.equal(pdf.status, 201);
    assert.equal(pdf.body.file.fileType, 'document');
    const mp4 = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypisom', 'latin1'), Buffer.alloc(64, 0)]);
    const video = await upload(server.url, a.token, mp4, { filename: 'v.mp4' });
    assert.equal(video.status, 201);
    assert.equal(video.body.file.fileType, 'video');
    const voiceFromImage = await upload(server.url, a.token, PNG, { duration: 2 });
    assert.ok(voiceFromImage.status >= 400 && voiceFromImage.status < 500, `an image is no voice note: ${voiceFromImage.status}`);
    const noFile = await api(server.url, 'POST', '/api/files', { token: a.token, body: (() => { const form = new FormData(); form.append('duration', '1'); return form; })() });
    assert.equal(noFile.status, 400);
    assert.equal(noFile.body.error.code, 'invalid_input');
  });

  test('uploads over FILES__MAX_BYTES are refused with 413 too_large', async (t) => {
    const server = await serverFor(t, { CHAT__FILES__MAX_BYTES: '100000' });
    const { a } = await matchPair(server.url, ['websocket']);
    const fits = await upload(server.url, a.token, Buffer.concat([PNG, Buffer.alloc(100000 - PNG.length, 1)]));
    assert.equal(fits.status, 201, 'exactly the limit fits');
    const tooBig = await upload(server.url, a.token, Buffer.concat([PNG, Buffer.alloc(100001 - PNG.length, 1)]));
    assert.equal(tooBig.status, 413);
    assert.equal(tooBig.body.error.code, 'too_large');
  });

  test('a 5 MiB upload works on the defaults', async (t) => {
    const server = await serverFor(t);
    const { a, b } = await matchPair(server.url, ['websocket']);
    const bytes = Buffer.concat([PNG, Buffer.alloc(5 * 1024 * 1024 - PNG.length, 9)]);
    const uploaded = await upload(server.url, a.token, bytes);
    assert.equal(uploaded.status, 201, JSON.stringify(uploaded.body));
    assert.equal(uploaded.body.file.fileSize, bytes.length);
    assert.equal((await emitAck(a.socket, 'chat:message', { type: 'file', content: { fileId: uploaded.body.file.fileId } })).ok, true);
    const message = await waitFor(b.socket, 'chat:message');
    const fetched = await download(server.url, message.content.fileUrl);
    assert.equal(fetched.status, 200);
    assert.ok(fetched.bytes.equals(bytes));
  });
});
