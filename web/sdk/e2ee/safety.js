// @ts-check
/**
 * @file The call's safety number and the pairwise verification codes, as
 * media/e2ee/safety.go: six groups of five digits. The safety number is
 * the same on every participant's screen if and only if every participant
 * received the same Ed25519 identity keys for everyone:
 *
 *   enc = "sotto safety number v2" || u64(len(room)) || room
 *         || for each member, sorted by identity then key (bytewise):
 *            u64(len(identity)) || identity || u64(len(key)) || key
 *   d = SHA-256(enc); h = d; 5200 times: h = SHA-256(h || d)
 *   group i (0..5) = h[5i:5i+5] as a 40-bit big-endian integer mod 100000
 *
 * A verification code is the same construction over just two people and
 * no room, under its own label ("sotto verification code v1"): it stays
 * the same in every call for as long as neither changes identity key.
 *
 * Strings are UTF-8 and sorted by their UTF-8 bytes, as Go compares them
 * (JavaScript's own string order is by UTF-16 units, which differs).
 */

const LABEL = "sotto safety number v2";
const VERIFY_LABEL = "sotto verification code v1";
const ITERATIONS = 5200;
const GROUPS = 6;
const GROUP_BYTES = 5;
const GROUP_MOD = 100000;

/**
 * One participant as a safety number sees it.
 * @typedef {object} Member
 * @property {string} identity its name in the room, from its access token
 * @property {Uint8Array<ArrayBuffer>} publicKey its 32-byte Ed25519 identity public key
 */

const utf8 = new TextEncoder();

/**
 * Compares byte strings as Go's bytes.Compare.
 * @param {Uint8Array<ArrayBuffer>} a
 * @param {Uint8Array<ArrayBuffer>} b
 * @returns {number}
 */
function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) {
      return a[i] - b[i];
    }
  }
  return a.length - b.length;
}

/**
 * Returns the call's safety number for room and its members (every
 * participant, this one included): six groups of five decimal digits
 * separated by spaces. The order of members does not matter; a member
 * listed twice counts twice.
 * @param {string} room
 * @param {ReadonlyArray<Member>} members
 * @returns {Promise<string>}
 */
export function safetyNumber(room, members) {
  return digits(utf8.encode(LABEL), [utf8.encode(room)], members);
}

/**
 * Returns the verification code of two people, a and b, in either order:
 * six groups of five decimal digits separated by spaces, the same in
 * every room for as long as neither changes identity key. Each compares
 * it with the other once, over a channel they trust, and marks the other
 * verified.
 * @param {Member} a
 * @param {Member} b
 * @returns {Promise<string>}
 */
export function verificationCode(a, b) {
  return digits(utf8.encode(VERIFY_LABEL), [], [a, b]);
}

/**
 * The label, then each of fields with its u64 length, then the members
 * sorted (each identity and key with its u64 length), hashed into six
 * groups of five digits.
 * @param {Uint8Array<ArrayBuffer>} label
 * @param {Uint8Array<ArrayBuffer>[]} fields
 * @param {ReadonlyArray<Member>} members
 * @returns {Promise<string>}
 */
async function digits(label, fields, members) {
  const sorted = members
    .map((m) => ({ id: utf8.encode(m.identity), key: m.publicKey }))
    .sort((a, b) => compareBytes(a.id, b.id) || compareBytes(a.key, b.key));

  /** @type {Uint8Array<ArrayBuffer>[]} */
  const parts = [label];
  /** @param {Uint8Array<ArrayBuffer>} b */
  const withLength = (b) => {
    const n = new Uint8Array(8);
    new DataView(n.buffer).setBigUint64(0, BigInt(b.length));
    parts.push(n, b);
  };
  for (const f of fields) {
    withLength(f);
  }
  for (const m of sorted) {
    withLength(m.id);
    withLength(m.key);
  }
  let total = 0;
  for (const p of parts) {
    total += p.length;
  }
  const enc = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    enc.set(p, at);
    at += p.length;
  }

  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", enc));
  const buf = new Uint8Array(64);
  buf.set(d, 32);
  let h = d;
  for (let i = 0; i < ITERATIONS; i++) {
    buf.set(h, 0);
    h = new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
  }

  const groups = [];
  for (let i = 0; i < GROUPS; i++) {
    let v = 0;
    for (const b of h.subarray(i * GROUP_BYTES, (i + 1) * GROUP_BYTES)) {
      v = v * 256 + b; // 40 bits: exact in a Number
    }
    groups.push(String(v % GROUP_MOD).padStart(5, "0"));
  }
  return groups.join(" ");
}
