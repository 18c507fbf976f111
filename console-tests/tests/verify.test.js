// The page's verifier functions on their own, in Node's WebCrypto: cases the end-to-end tests
// only meet by chance (a random log key).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { parseVkey } from '../../crates/evident-server/console/verify.js';

/** A vkey text for `name` whose base64 part holds a `+` (keys are drawn until one does). */
function vkeyWithPlus(name) {
  for (;;) {
    const { publicKey } = generateKeyPairSync('ed25519');
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
    const material = Buffer.concat([Buffer.from([1]), raw]);
    const b64 = material.toString('base64');
    if (!b64.includes('+')) continue;
    const hash = createHash('sha256').update(`${name}\n`).update(material).digest().subarray(0, 4).toString('hex');
    return { text: `${name}+${hash}+${b64}`, raw };
  }
}

test('a vkey whose base64 part holds + is parsed (the first two + separate the parts)', async () => {
  const { text, raw } = vkeyWithPlus('evident.localhost/default');
  const vkey = await parseVkey(text);
  assert.equal(vkey.name, 'evident.localhost/default');
  assert.deepEqual(Buffer.from(vkey.key), raw);
});

test('a vkey with fewer than three parts, or a wrong hash, is refused', async () => {
  await assert.rejects(parseVkey('evident.localhost/default'), /name\+hash\+base64/);
  await assert.rejects(parseVkey('+abcd+AQ=='), /name\+hash\+base64/);
  const { text } = vkeyWithPlus('a');
  const wrong = text.replace(/^a\+[0-9a-f]{8}/, 'a+00000000');
  await assert.rejects(parseVkey(wrong), /does not match the key/);
});
