// @ts-check
/**
 * @file Roster views: each member's signed view of who is in the call, as
 * media/e2ee's SignRoster, ParseRoster, SameParticipants and Diff, byte
 * for byte (docs/E2EE.md, "Admission and rosters"):
 *
 *   body = 0x01
 *          || u16(len(room)) || room
 *          || u16(len(member)) || member || member_identity_pub (32)
 *          || u64(view_seq)
 *          || u16(count)                        at most 4096
 *          || count entries, sorted by name, then identity key (bytewise,
 *             UTF-8), no (name, key) pair twice, the member's own among them:
 *               u16(len(name)) || name || identity_pub (32) || u64(key_seq)
 *   sig  = Ed25519(member_identity_priv, "sotto e2ee v2 roster" || body)
 *   roster = "sotto-roster-v1:" || base64url(body || sig)
 *
 * Sorting makes the byte form of a set unique, so two members with the
 * same view list it the same way. Names are compared by their UTF-8
 * bytes, as Go compares strings, never by JavaScript's < (UTF-16 code
 * units, which orders characters beyond the BMP differently). Whether a
 * view is this room's, and newer than the last one from that member, is
 * the caller's to check. As in admission.js, a room or name that is not
 * valid UTF-8 is refused (Go takes any bytes).
 */

import { BadPublicKeyError, PUBLIC_KEY_SIZE, checkIdentityKey, concatBytes, equalBytes, verifySignature } from "./identity.js";
import { NameTooLongError } from "./seal.js";
import { BodyReader, compareBytes, decodeSigned, decodeUTF8, encodeSigned, keyReason, toU64, u16Prefixed, u64Bytes, utf8Of } from "./admission.js";

/** The first byte of a roster view's body. */
export const ROSTER_VERSION = 0x01;

/** The most participants one view lists. */
export const MAX_ROSTER_ENTRIES = 4096;

const ROSTER_PREFIX = "sotto-roster-v1:";
const ROSTER_LABEL = "sotto e2ee v2 roster";

// The fixed part of one entry: a name's length, a key and a key sequence number.
const ENTRY_SIZE = 2 + PUBLIC_KEY_SIZE + 8;

const U64_MAX = (1n << 64n) - 1n;

const utf8 = new TextEncoder();

/**
 * A roster view that cannot be used (Go's ErrBadRoster): without the
 * "sotto-roster-v1:" prefix, not canonical unpadded base64url, badly
 * formed (a field cut short, bytes left over, another version, more than
 * 4096 entries, entries out of order or repeated, the member missing from
 * its own list, a room or name that is not UTF-8), a key that is not a
 * usable identity key, or a signature that does not verify under the
 * member's key inside.
 */
export class BadRosterError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(`e2ee: bad roster: ${message}`);
    this.name = "BadRosterError";
  }
}

/**
 * What signs a view: an Identity fits.
 * @typedef {import("./seal.js").Signer} Signer
 */

/**
 * One admitted participant in a member's view (Go's RosterEntry). keySeq
 * is 64-bit: a bigint when parsed, a Number or a bigint when signing.
 * @typedef {object} RosterEntry
 * @property {string} name the participant's identity, as its token names it
 * @property {Uint8Array<ArrayBuffer>} key its 32-byte Ed25519 identity key
 * @property {bigint|number} keySeq the latest key sequence number the member accepted from it; 0 if none
 */

/**
 * A RosterEntry as parseRoster returns it.
 * @typedef {object} ParsedRosterEntry
 * @property {string} name
 * @property {Uint8Array<ArrayBuffer>} key
 * @property {bigint} keySeq
 */

/**
 * One member's view of who is in the call (Go's RosterView), as
 * signRoster takes it: entries in any order, memberKey left out or the
 * signer's.
 * @typedef {object} RosterView
 * @property {string} room
 * @property {string} member the member whose view this is, as its token names it
 * @property {Uint8Array<ArrayBuffer>} [memberKey] its 32-byte Ed25519 identity key, which signs the view
 * @property {bigint|number} viewSeq the member's view sequence number, higher for every change
 * @property {RosterEntry[]} entries the admitted participants, the member included
 */

/**
 * A view as parseRoster returns it: the entries sorted by name, then key.
 * @typedef {object} ParsedRosterView
 * @property {string} room
 * @property {string} member
 * @property {Uint8Array<ArrayBuffer>} memberKey
 * @property {bigint} viewSeq
 * @property {ParsedRosterEntry[]} entries
 */

/**
 * An entry with its name's UTF-8 bytes, for comparing.
 * @template {{name: string, key: Uint8Array}} E
 * @typedef {{e: E, name: Uint8Array<ArrayBuffer>}} Keyed
 */

/**
 * Go's compareEntries: by name, then key, bytewise.
 * @param {{name: Uint8Array, e: {key: Uint8Array}}} a
 * @param {{name: Uint8Array, e: {key: Uint8Array}}} b
 * @returns {number}
 */
function compareKeyed(a, b) {
  return compareBytes(a.name, b.name) || compareBytes(a.e.key, b.e.key);
}

/**
 * Refuses entries not strictly increasing by (name, key), and a list
 * without the member itself (Go's checkRosterOrder). Returns the reason,
 * or null.
 * @param {Keyed<{name: string, key: Uint8Array}>[]} es
 * @param {Uint8Array} member the member's name, UTF-8
 * @param {string} memberName
 * @param {Uint8Array} memberKey
 * @returns {string|null}
 */
function orderProblem(es, member, memberName, memberKey) {
  let self = false;
  for (let i = 0; i < es.length; i++) {
    if (i > 0) {
      const c = compareKeyed(es[i - 1], es[i]);
      if (c === 0) {
        return `participant ${JSON.stringify(es[i].e.name)} listed twice`;
      }
      if (c > 0) {
        return `participant ${JSON.stringify(es[i].e.name)} listed out of order`;
      }
    }
    if (equalBytes(es[i].name, member) && equalBytes(es[i].e.key, memberKey)) {
      self = true;
    }
  }
  return self ? null : `member ${JSON.stringify(memberName)} is not in its own roster`;
}

/**
 * Checks every distinct key once (a view may list one key many times, and
 * the check is BigInt arithmetic); throws what fail makes of the first
 * refusal.
 * @param {{name: string, key: Uint8Array<ArrayBuffer>}[]} es
 * @param {(name: string, reason: string) => Error} fail
 * @returns {Promise<void>}
 */
async function checkEntryKeys(es, fail) {
  /** @type {Set<string>} */
  const good = new Set();
  for (const e of es) {
    const k = String.fromCharCode(...e.key);
    if (good.has(k)) {
      continue;
    }
    try {
      await checkIdentityKey(e.key);
    } catch (err) {
      throw fail(e.name, keyReason(err));
    }
    good.add(k);
  }
}

/**
 * The text form of view, signed by member (Go's SignRoster):
 * "sotto-roster-v1:" then, in unpadded base64url, the body and the
 * signature. view.memberKey, when given, must be member's public key; the
 * entries (at most 4096, each with a usable identity key, no (name, key)
 * pair twice, the member itself among them) may come in any order: they
 * are signed sorted, and the caller's array is left as it was. Throws a
 * TypeError for a missing signer, another member key, entries listed
 * twice or without the member, and a room or name that is not a
 * well-formed string; a BadPublicKeyError for an unusable key; a
 * NameTooLongError for a room or name over 65535 bytes; a RangeError for
 * more than 4096 entries and a sequence number that is not a u64.
 * @param {Signer} member
 * @param {RosterView} view
 * @returns {Promise<string>}
 */
export async function signRoster(member, view) {
  if (!member || typeof member.sign !== "function" || !(member.publicKey instanceof Uint8Array)) {
    throw new TypeError("e2ee: roster: no identity");
  }
  const own = member.publicKey;
  const memberKey = view.memberKey ?? own;
  if (!(memberKey instanceof Uint8Array) || !equalBytes(memberKey, own)) {
    throw new TypeError("e2ee: roster: the view's memberKey is not the member's identity key");
  }
  if (!Array.isArray(view.entries)) {
    throw new TypeError("e2ee: roster: the view's entries are not an array");
  }
  if (view.entries.length > MAX_ROSTER_ENTRIES) {
    throw new RangeError(`e2ee: roster: ${view.entries.length} participants in a roster, at most ${MAX_ROSTER_ENTRIES}`);
  }
  const room = utf8Of(view.room, "room", "roster");
  const memberName = utf8Of(view.member, "member name", "roster");
  if (room.length > 0xffff || memberName.length > 0xffff) {
    throw new NameTooLongError("room or member name");
  }
  const viewSeq = toU64(view.viewSeq, U64_MAX, "view seq", "roster");
  /** @type {{e: {name: string, key: Uint8Array<ArrayBuffer>, keySeq: bigint}, name: Uint8Array<ArrayBuffer>}[]} */
  const es = view.entries.map((e) => {
    const name = utf8Of(e?.name, "participant name", "roster");
    if (name.length > 0xffff) {
      throw new NameTooLongError(`participant name is ${name.length} bytes`);
    }
    if (!(e.key instanceof Uint8Array)) {
      throw new TypeError(`e2ee: roster: participant ${JSON.stringify(e.name)}: the key is not bytes`);
    }
    return { e: { name: e.name, key: e.key.slice(), keySeq: toU64(e.keySeq, U64_MAX, "key seq", "roster") }, name };
  });
  await checkEntryKeys(
    es.map((x) => x.e),
    (name, reason) => new BadPublicKeyError(`roster: participant ${JSON.stringify(name)}: ${reason}`),
  );
  es.sort(compareKeyed);
  const problem = orderProblem(es, memberName, view.member, memberKey);
  if (problem !== null) {
    throw new TypeError(`e2ee: roster: ${problem}`);
  }
  if (memberKey.length !== PUBLIC_KEY_SIZE) {
    throw new BadPublicKeyError(`identity keys must be ${PUBLIC_KEY_SIZE} bytes`);
  }
  const body = concatBytes(
    new Uint8Array([ROSTER_VERSION]),
    u16Prefixed(room),
    u16Prefixed(memberName),
    memberKey.slice(),
    u64Bytes(viewSeq),
    new Uint8Array([es.length >> 8, es.length & 0xff]),
    ...es.flatMap((x) => [u16Prefixed(x.name), x.e.key, u64Bytes(x.e.keySeq)]),
  );
  const sig = await member.sign(concatBytes(utf8.encode(ROSTER_LABEL), body));
  return encodeSigned(ROSTER_PREFIX, body, sig);
}

/**
 * Parses a body exactly (Go's unmarshalRoster): every field present,
 * nothing left over, at most 4096 entries, the room and names UTF-8.
 * Checks neither the order nor the keys nor any signature.
 * @param {Uint8Array<ArrayBuffer>} body
 * @returns {{view: ParsedRosterView, member: Uint8Array<ArrayBuffer>, names: Uint8Array<ArrayBuffer>[]}}
 */
function decodeRoster(body) {
  const r = new BodyReader(body);
  const version = r.byte();
  if (version !== ROSTER_VERSION) {
    throw new BadRosterError(`body version 0x${version.toString(16).padStart(2, "0")}, want 0x01`);
  }
  const room = r.u16bytes();
  const member = r.u16bytes();
  const memberKey = r.bytes(PUBLIC_KEY_SIZE);
  const viewSeq = r.u64();
  const count = r.u16();
  if (r.short || !room || !member || !memberKey) {
    throw new BadRosterError("body is cut short");
  }
  if (count > MAX_ROSTER_ENTRIES) {
    throw new BadRosterError(`${count} participants, at most ${MAX_ROSTER_ENTRIES}`);
  }
  // Each entry takes at least ENTRY_SIZE bytes: a count the rest cannot
  // hold allocates nothing.
  if (count > Math.floor(r.left / ENTRY_SIZE)) {
    throw new BadRosterError(`${count} participants in ${r.left} bytes: body is cut short`);
  }
  /** @type {{name: Uint8Array<ArrayBuffer>, key: Uint8Array<ArrayBuffer>, keySeq: bigint}[]} */
  const raw = [];
  for (let i = 0; i < count; i++) {
    const name = r.u16bytes();
    const key = r.bytes(PUBLIC_KEY_SIZE);
    const keySeq = r.u64();
    if (r.short || !name || !key) {
      throw new BadRosterError("body is cut short");
    }
    raw.push({ name, key, keySeq });
  }
  if (r.left !== 0) {
    throw new BadRosterError(`${r.left} bytes after the body`);
  }
  /**
   * @param {string} what
   * @param {Uint8Array<ArrayBuffer>} b
   */
  const text = (what, b) => {
    const s = decodeUTF8(b);
    if (s === null) {
      throw new BadRosterError(`${what} is not UTF-8`);
    }
    return s;
  };
  const view = {
    room: text("room", room),
    member: text("member name", member),
    memberKey,
    viewSeq,
    entries: raw.map((e) => ({ name: text("participant name", e.name), key: e.key, keySeq: e.keySeq })),
  };
  return { view, member, names: raw.map((e) => e.name) };
}

/**
 * The inverse of signRoster (Go's ParseRoster): the view, its entries
 * sorted, or a BadRosterError for a wrong prefix, base64 that is not
 * canonical unpadded base64url, a body that does not parse exactly (cut
 * short, bytes left over, another version, more than 4096 entries, a room
 * or name that is not UTF-8), a member key that is not a point or of small
 * order, a signature that does not verify under it, entries out of order
 * or listed twice, the member missing from its own list, or an entry key
 * that is not usable. Whether the view is this room's, and newer than the
 * last one from that member, is the caller's to check.
 * @param {string} s
 * @returns {Promise<ParsedRosterView>}
 */
export async function parseRoster(s) {
  const { body, sig } = decodeSigned(ROSTER_PREFIX, s, (m) => new BadRosterError(m));
  const { view, member, names } = decodeRoster(body);
  try {
    await checkIdentityKey(view.memberKey);
  } catch (err) {
    throw new BadRosterError(`member ${keyReason(err)}`);
  }
  // The signature before the entries' keys: checking up to 4096 points
  // costs more than one verification, and only a member can make a view
  // that gets that far.
  if (!(await verifySignature(view.memberKey, concatBytes(utf8.encode(ROSTER_LABEL), body), sig))) {
    throw new BadRosterError("signature does not verify under the member's identity key");
  }
  const problem = orderProblem(
    view.entries.map((e, i) => ({ e, name: names[i] })),
    member,
    view.member,
    view.memberKey,
  );
  if (problem !== null) {
    throw new BadRosterError(problem);
  }
  await checkEntryKeys(view.entries, (name, reason) => new BadRosterError(`participant ${JSON.stringify(name)}: ${reason}`));
  return view;
}

/**
 * A sorted copy of es without repeated (name, key) pairs, the first of
 * each kept (Go's sortedEntries).
 * @template {{name: string, key: Uint8Array}} E
 * @param {E[]} es
 * @returns {Keyed<E>[]}
 */
function sortedEntries(es) {
  const out = es.map((e) => ({ e, name: utf8.encode(e.name) }));
  out.sort(compareKeyed); // stable
  return out.filter((x, i) => i === 0 || compareKeyed(out[i - 1], x) !== 0);
}

/**
 * The entries a lists and b does not, and those b lists and a does not,
 * by (name, identity key), each sorted by name, then key (Go's Diff): the
 * names an alert shows. Key sequence numbers, rooms, members and view
 * numbers are not compared; an entry listed twice on one side counts once
 * (the first listed is returned). The entries returned are copies.
 * @template {{name: string, key: Uint8Array}} E
 * @param {{entries: E[]}} a
 * @param {{entries: E[]}} b
 * @returns {{onlyA: E[], onlyB: E[]}}
 */
export function diffRosters(a, b) {
  const as = sortedEntries(a.entries);
  const bs = sortedEntries(b.entries);
  /** @type {E[]} */
  const onlyA = [];
  /** @type {E[]} */
  const onlyB = [];
  /** @param {E} e */
  const copy = (e) => /** @type {E} */ ({ ...e, key: e.key.slice() });
  let i = 0;
  let j = 0;
  while (i < as.length || j < bs.length) {
    const c = i === as.length ? 1 : j === bs.length ? -1 : compareKeyed(as[i], bs[j]);
    if (c < 0) {
      onlyA.push(copy(as[i++].e));
    } else if (c > 0) {
      onlyB.push(copy(bs[j++].e));
    } else {
      i++;
      j++;
    }
  }
  return { onlyA, onlyB };
}

/**
 * Whether a and b list the same participants: the same (name, identity
 * key) pairs, whatever their key sequence numbers, rooms, members and view
 * numbers (Go's SameParticipants).
 * @param {{entries: {name: string, key: Uint8Array}[]}} a
 * @param {{entries: {name: string, key: Uint8Array}[]}} b
 * @returns {boolean}
 */
export function sameParticipants(a, b) {
  const { onlyA, onlyB } = diffRosters(a, b);
  return onlyA.length === 0 && onlyB.length === 0;
}
