// match:search / match:searching / match:found, filters, match:cancel / match:cancelled,
// match:next (partner gets room:closed partner_left; not re-paired with that partner next).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  TRANSPORTS,
  api,
  assertAckError,
  assertPublicUser,
  emitAck,
  expectNone,
  guestOnline,
  matchPair,
  serverFor,
  transportName,
  waitFor,
} from './lib/server.js';

async function search(guest, filters) {
  const ack = await emitAck(guest.socket, 'match:search', filters === undefined ? {} : { filters });
  assert.equal(ack.ok, true, `match:search acked ${JSON.stringify(ack)}`);
  assert.deepEqual(await waitFor(guest.socket, 'match:searching'), {});
}

for (const transports of TRANSPORTS) {
  describe(`matching over ${transportName(transports)}`, () => {
    test('two searchers are paired; the one who waited longer is the initiator', async (t) => {
      const server = await serverFor(t);
      const a = await guestOnline(server.url, transports, { gender: 'female', language: 'en', location: 'Paris', deviceId: 'dev-a' });
      const b = await guestOnline(server.url, transports, { gender: 'male', language: 'fr', location: 'Lyon', deviceId: 'dev-b' });
      await search(a);
      await expectNone(a.socket, 'match:found', 200);
      let me = await api(server.url, 'GET', '/api/guest/me', { token: a.token });
      assert.equal(me.body.user.isSearching, true, 'marked searching');
      // B is paired at once, and still gets match:searching first.
      const ack = await emitAck(b.socket, 'match:search', {});
      assert.equal(ack.ok, true);
      assert.deepEqual(await waitFor(b.socket, 'match:searching'), {});
      const [foundA, foundB] = await Promise.all([waitFor(a.socket, 'match:found'), waitFor(b.socket, 'match:found')]);
      for (const found of [foundA, foundB]) {
        assert.deepEqual(Object.keys(found).sort(), ['initiator', 'partner', 'roomId']);
        assert.equal(typeof found.roomId, 'string');
        assert.ok(found.roomId.length > 0);
        assertPublicUser(assert, found.partner, 'match:found partner');
      }
      assert.equal(foundA.roomId, foundB.roomId, 'one room');
      assert.equal(foundA.partner.id, b.user.id);
      assert.equal(foundA.partner.username, b.user.username);
      assert.equal(foundA.partner.gender, 'male');
      assert.equal(foundA.partner.language, 'fr');
      assert.equal(foundA.partner.location, 'Lyon');
      assert.equal(foundB.partner.id, a.user.id);
      assert.equal(foundA.initiator, true, 'A waited longer');
      assert.equal(foundB.initiator, false);
      me = await api(server.url, 'GET', '/api/guest/me', { token: a.token });
      assert.equal(me.body.user.inChat, true);
      assert.equal(me.body.user.isSearching, false);
      assert.equal(me.body.user.connectedUser, b.user.id);
      // Searching while in a chat is refused.
      assertAckError(assert, await emitAck(a.socket, 'match:search', {}), 'invalid_input', 'match:search in a chat');
    });

    test('filters: case-insensitive, both sides must accept, any/all/"" mean none', async (t) => {
      const server = await serverFor(t);
      const alice = await guestOnline(server.url, transports, { gender: 'female', language: 'en', location: 'Paris' });
      const bob = await guestOnline(server.url, transports, { gender: 'male', language: 'en', location: 'Paris' });
      const carol = await guestOnline(server.url, transports, { gender: 'female', language: 'fr', location: 'Paris' });
      const dave = await guestOnline(server.url, transports, { gender: 'male', language: 'fr', location: 'Rome' });
      // Alice wants a man speaking EN (case differs from the profile value).
      await search(alice, { gender: 'MALE', language: 'EN', location: 'any' });
      // Carol accepts anyone, but Alice's filter refuses her (language fr).
      await search(carol, { gender: 'all', language: '', location: 'ANY' });
      await expectNone(alice.socket, 'match:found', 200);
      await expectNone(carol.socket, 'match:found', 0);
      // Dave would accept Alice, but Alice refuses him (fr); Dave wants a woman in Paris: Carol.
      await search(dave, { gender: 'female', location: 'paris' });
      const davePair = await waitFor(dave.socket, 'match:found');
      assert.equal(davePair.partner.id, carol.user.id, 'Dave is paired with Carol, not Alice');
      assert.equal((await waitFor(carol.socket, 'match:found')).partner.id, dave.user.id);
      // Bob is a man speaking en: Alice accepts him.
      await search(bob);
      assert.equal((await waitFor(bob.socket, 'match:found')).partner.id, alice.user.id);
      assert.equal((await waitFor(alice.socket, 'match:found')).partner.id, bob.user.id);
    });

    test('a searcher whose own filter refuses the waiting user is not paired with them', async (t) => {
      const server = await serverFor(t);
      const alice = await guestOnline(server.url, transports, { gender: 'female' });
      const bob = await guestOnline(server.url, transports, { gender: 'male' });
      const carl = await guestOnline(server.url, transports, { gender: 'male' });
      await search(alice); // accepts anyone
      await search(bob, { gender: 'male' }); // Alice would take Bob, but Bob wants a man
      await expectNone(alice.socket, 'match:found', 200);
      await expectNone(bob.socket, 'match:found', 0);
      // Carl (no filter) is accepted by Alice (oldest), so he goes to Alice, not to Bob.
      await search(carl);
      assert.equal((await waitFor(carl.socket, 'match:found')).partner.id, alice.user.id);
      await expectNone(bob.socket, 'match:found', 200);
      assertAckError(assert, await emitAck(bob.socket, 'match:search', { filters: 'male' }), 'invalid_input', 'filters not an object');
      assertAckError(assert, await emitAck(bob.socket, 'match:search', { filters: { gender: 5 } }), 'invalid_input', 'filter not a string');
    });

    test('match:cancel stops searching and emits match:cancelled', async (t) => {
      const server = await serverFor(t);
      const a = await guestOnline(server.url, transports);
      const b = await guestOnline(server.url, transports);
      const c = await guestOnline(server.url, transports);
      await search(a);
      const ack = await emitAck(a.socket, 'match:cancel');
      assert.equal(ack.ok, true);
      assert.deepEqual(await waitFor(a.socket, 'match:cancelled'), {});
      const me = await api(server.url, 'GET', '/api/guest/me', { token: a.token });
      assert.equal(me.body.user.isSearching, false);
      // Had A still been queued, B would be paired with A at once; B waits instead, then C pairs with B.
      await search(b);
      await search(c);
      assert.equal((await waitFor(c.socket, 'match:found')).partner.id, b.user.id);
      assert.equal((await waitFor(b.socket, 'match:found')).partner.id, c.user.id);
      await expectNone(a.socket, 'match:found', 200);
    });

    test('match:next closes the room for the partner and searches again', async (t) => {
      const server = await serverFor(t);
      const { a, b, roomId } = await matchPair(server.url, transports);
      const c = await guestOnline(server.url, transports);
      await search(c);
      const ack = await emitAck(a.socket, 'match:next', {});
      assert.equal(ack.ok, true);
      assert.deepEqual(await waitFor(b.socket, 'room:closed'), { roomId, reason: 'partner_left' });
      assert.deepEqual(await waitFor(a.socket, 'match:searching'), {});
      const found = await waitFor(a.socket, 'match:found');
      assert.equal(found.partner.id, c.user.id, 'A is paired with the waiting C');
      assert.notEqual(found.roomId, roomId);
      assert.equal(found.initiator, false, 'C waited longer');
      assert.equal((await waitFor(c.socket, 'match:found')).initiator, true);
      await expectNone(a.socket, 'room:closed', 200);
      const me = await api(server.url, 'GET', '/api/guest/me', { token: b.token });
      assert.equal(me.body.user.inChat, false);
      assertAckError(assert, await emitAck(b.socket, 'chat:message', { type: 'text', content: 'anyone?' }), 'not_in_chat', 'B after room:closed');
    });

    test('after match:next the partner just left is skipped while someone else fits', async (t) => {
      const server = await serverFor(t);
      // A (female) and B (male) chat; B moves on wanting a woman. C (male) also wants a woman, so
      // B and C cannot be paired together; both accept A.
      const { a, b, roomId } = await matchPair(server.url, transports, { profileA: { gender: 'female' }, profileB: { gender: 'male' } });
      assert.equal((await emitAck(b.socket, 'match:next', { filters: { gender: 'female' } })).ok, true);
      assert.deepEqual(await waitFor(a.socket, 'room:closed'), { roomId, reason: 'partner_left' });
      await waitFor(b.socket, 'match:searching');
      const c = await guestOnline(server.url, transports, { gender: 'male' });
      await search(c, { gender: 'female' });
      await expectNone(c.socket, 'match:found', 200);
      // A searches: B waited longer, but A was B's partner just now: A gets C.
      await search(a);
      assert.equal((await waitFor(a.socket, 'match:found')).partner.id, c.user.id);
      assert.equal((await waitFor(c.socket, 'match:found')).partner.id, a.user.id);
      await expectNone(b.socket, 'match:found', 200);
      // B is still searching and pairs with the next woman.
      const d = await guestOnline(server.url, transports, { gender: 'female' });
      await search(d);
      assert.equal((await waitFor(d.socket, 'match:found')).partner.id, b.user.id);
    });

    test('after match:next the two are never paired again on their next pairing, even when nobody else waits', async (t) => {
      const server = await serverFor(t);
      const { a, b, roomId } = await matchPair(server.url, transports);
      assert.equal((await emitAck(a.socket, 'match:next')).ok, true);
      assert.deepEqual(await waitFor(b.socket, 'room:closed'), { roomId, reason: 'partner_left' });
      // A searches again (match:next); B searches too: both wait rather than meet again.
      await search(b);
      await expectNone(a.socket, 'match:found', 300);
      await expectNone(b.socket, 'match:found', 300);
      // A newcomer is paired with one of them, and the other with the next one.
      const c = await guestOnline(server.url, transports, {});
      await search(c);
      const foundC = await waitFor(c.socket, 'match:found');
      assert.ok([a.user.id, b.user.id].includes(foundC.partner.id), 'the newcomer meets one of the two');
      const d = await guestOnline(server.url, transports, {});
      await search(d);
      const foundD = await waitFor(d.socket, 'match:found');
      assert.ok([a.user.id, b.user.id].includes(foundD.partner.id) && foundD.partner.id !== foundC.partner.id, 'the other meets the next');
    });
  });
}
