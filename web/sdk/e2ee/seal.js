// @ts-check
/**
 * @file Key boxes: a sender's media key for one recipient, signed by the
 * sender's identity key and sealed with HPKE to the recipient's session
 * key, as media/e2ee's SealKeyBox and OpenKeyBox, byte for byte
 * (docs/E2EE.md, "Key messages", version 2):
 *
 *   body = 0x02 || u16(suite) || u64(kid) || u64(seq)
 *          || u16(len(room)) || room
 *          || u16(len(sender)) || sender || sender_identity_pub (32) || sender_session_id (16)
 *          || u16(len(recipient)) || recipient || recipient_identity_pub (32) || recipient_session_id (16)
 *          || u16(len(base_key)) || base_key
 *   sig  = Ed25519(sender_identity_priv, "sotto e2ee v2 key" || body)
 *   enc, ct = HPKE SealBase(recipient hpke_pub, info = "sotto e2ee v2 key", aad = "", body || sig)
 *   box  = 0x02 || enc (32) || ct
 *
 * Integers are big-endian; names and the room are UTF-8 as given.
 * Opening checks what the box itself can prove (it opens, the body
 * parses exactly, the signature verifies); whether the body fits the
 * message, room, sender and recipient is the key session's to check
 * (keys.js).
 */

import { BadPublicKeyError, PUBLIC_KEY_SIZE, SESSION_ID_SIZE, SIGNATURE_SIZE, concatBytes, equalBytes, verifySignature } from "./identity.js";
import { ENC_SIZE, TAG_SIZE, openBase, sealBase } from "./hpke.js";

/** The first byte of every key box, and of its body. */
export const KEY_BOX_VERSION = 0x02;

// Both the signature's label and the HPKE info.
const KEY_LABEL = "sotto e2ee v2 key";

/**
 * A key box that cannot be opened: too short, an unknown version,
 * changed, sealed to another key, a body that does not parse, or a
 * signature that does not verify under the sender's key (Go's ErrSealOpen).
 */
export class SealOpenError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(`e2ee: cannot open sealed message: ${message}`);
    this.name = "SealOpenError";
  }
}

/** A room or name longer than the 65535 bytes a body can carry (Go's ErrNameTooLong). */
export class NameTooLongError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(`e2ee: name longer than 65535 bytes: ${message}`);
    this.name = "NameTooLongError";
  }
}

/**
 * What a key box carries (Go's KeyBody). KID and seq are 64-bit: bigints
 * when parsed, a Number or a bigint when sealing.
 * @typedef {object} KeyBody
 * @property {number} suite the SFrame cipher suite
 * @property {bigint|number} kid
 * @property {bigint|number} seq the sender's key sequence number
 * @property {string} room
 * @property {string} sender the sender's identity in the room
 * @property {Uint8Array<ArrayBuffer>} senderKey its 32-byte Ed25519 identity key
 * @property {Uint8Array<ArrayBuffer>} senderSession its 16-byte session id
 * @property {string} recipient
 * @property {Uint8Array<ArrayBuffer>} recipientKey 32 bytes, Ed25519
 * @property {Uint8Array<ArrayBuffer>} recipientSession 16 bytes
 * @property {Uint8Array<ArrayBuffer>} baseKey the sender's base key for kid
 */

/**
 * A KeyBody as openKeyBox returns it: KID and seq as bigints.
 * @typedef {KeyBody & {kid: bigint, seq: bigint}} OpenedKeyBody
 */

/**
 * What signs a body: an Identity fits.
 * @typedef {{publicKey: Uint8Array<ArrayBuffer>, sign: (data: Uint8Array<ArrayBuffer>) => Promise<Uint8Array<ArrayBuffer>>}} Signer
 */

/**
 * What opens a box: the recipient's session key (a SessionKey fits).
 * @typedef {import("./hpke.js").KeyPair} Recipient
 */

const utf8 = new TextEncoder();
const strictUTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const U64_MAX = (1n << 64n) - 1n;

/**
 * @param {bigint|number} v
 * @param {string} what
 * @returns {bigint}
 */
function u64(v, what) {
  const b = typeof v === "bigint" ? v : Number.isSafeInteger(v) ? BigInt(v) : -1n;
  if (b < 0n || b > U64_MAX) {
    throw new RangeError(`e2ee: key box: ${what} ${v} is not a 64-bit unsigned integer`);
  }
  return b;
}

/**
 * The body's bytes. Throws a NameTooLongError for a room or name over
 * 65535 bytes, a BadPublicKeyError for identity keys of the wrong size,
 * and a RangeError for a base key over 65535 bytes, session ids of the
 * wrong size and numbers out of range.
 * @param {KeyBody} b
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function encodeKeyBody(b) {
  if (!Number.isInteger(b.suite) || b.suite < 0 || b.suite > 0xffff) {
    throw new RangeError(`e2ee: key box: cipher suite ${b.suite} is not a 16-bit integer`);
  }
  const kid = u64(b.kid, "KID");
  const seq = u64(b.seq, "seq");
  const room = utf8.encode(b.room);
  const sender = utf8.encode(b.sender);
  const recipient = utf8.encode(b.recipient);
  for (const [what, v] of /** @type {const} */ ([["room", room], ["sender name", sender], ["recipient name", recipient]])) {
    if (v.length > 0xffff) {
      throw new NameTooLongError(`${what} is ${v.length} bytes`);
    }
  }
  if (b.senderKey.length !== PUBLIC_KEY_SIZE || b.recipientKey.length !== PUBLIC_KEY_SIZE) {
    throw new BadPublicKeyError(`identity keys must be ${PUBLIC_KEY_SIZE} bytes`);
  }
  if (b.baseKey.length > 0xffff) {
    throw new RangeError(`e2ee: key box: base key of ${b.baseKey.length} bytes, more than 65535`);
  }
  for (const [what, v, n] of /** @type {const} */ ([
    ["sender session id", b.senderSession, SESSION_ID_SIZE],
    ["recipient session id", b.recipientSession, SESSION_ID_SIZE],
  ])) {
    if (v.length !== n) {
      throw new RangeError(`e2ee: key box: ${what} of ${v.length} bytes, want ${n}`);
    }
  }
  const out = new Uint8Array(
    1 + 2 + 8 + 8 + 2 + room.length + 2 + sender.length + PUBLIC_KEY_SIZE + SESSION_ID_SIZE + 2 + recipient.length + PUBLIC_KEY_SIZE + SESSION_ID_SIZE + 2 + b.baseKey.length,
  );
  const dv = new DataView(out.buffer);
  let at = 0;
  out[at++] = KEY_BOX_VERSION;
  dv.setUint16(at, b.suite);
  at += 2;
  dv.setBigUint64(at, kid);
  at += 8;
  dv.setBigUint64(at, seq);
  at += 8;
  /** @param {Uint8Array<ArrayBuffer>} v */
  const put = (v) => {
    out.set(v, at);
    at += v.length;
  };
  /** @param {Uint8Array<ArrayBuffer>} v */
  const putLen = (v) => {
    dv.setUint16(at, v.length);
    at += 2;
    put(v);
  };
  putLen(room);
  putLen(sender);
  put(b.senderKey);
  put(b.senderSession);
  putLen(recipient);
  put(b.recipientKey);
  put(b.recipientSession);
  putLen(b.baseKey);
  return out;
}

/**
 * Parses a body exactly: version 2, every field in full, nothing left
 * over, names and the room valid UTF-8. Throws a SealOpenError.
 * @param {Uint8Array<ArrayBuffer>} body
 * @returns {OpenedKeyBody}
 */
export function parseKeyBody(body) {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let at = 0;
  /** @param {number} n */
  const need = (n) => {
    if (at + n > body.length) {
      throw new SealOpenError(`key body ends early (${body.length} bytes)`);
    }
  };
  /** @param {number} n */
  const take = (n) => {
    need(n);
    const v = body.slice(at, at + n);
    at += n;
    return v;
  };
  const takeLen = () => {
    need(2);
    const n = dv.getUint16(at);
    at += 2;
    return take(n);
  };
  /** @param {string} what */
  const takeString = (what) => {
    try {
      return strictUTF8.decode(takeLen());
    } catch (err) {
      if (err instanceof SealOpenError) {
        throw err;
      }
      throw new SealOpenError(`key body: ${what} is not UTF-8`);
    }
  };
  need(1 + 2 + 8 + 8);
  if (body[0] !== KEY_BOX_VERSION) {
    throw new SealOpenError(`key body version 0x${body[0].toString(16).padStart(2, "0")}, want 0x02`);
  }
  const suite = dv.getUint16(1);
  const kid = dv.getBigUint64(3);
  const seq = dv.getBigUint64(11);
  at = 19;
  const room = takeString("room");
  const sender = takeString("sender name");
  const senderKey = take(PUBLIC_KEY_SIZE);
  const senderSession = take(SESSION_ID_SIZE);
  const recipient = takeString("recipient name");
  const recipientKey = take(PUBLIC_KEY_SIZE);
  const recipientSession = take(SESSION_ID_SIZE);
  const baseKey = takeLen();
  if (at !== body.length) {
    baseKey.fill(0);
    throw new SealOpenError(`key body has ${body.length - at} bytes left over`);
  }
  return { suite, kid, seq, room, sender, senderKey, senderSession, recipient, recipientKey, recipientSession, baseKey };
}

/**
 * Signs body as sender and seals it to recipientHPKE, the recipient's
 * session public key (from its announcement): box = 0x02 || enc || ct.
 * The body's senderKey must be sender's public key. Throws a
 * BadPublicKeyError for an unusable recipient key, a NameTooLongError,
 * BadPublicKeyError or RangeError for a body that cannot be encoded.
 * @param {Signer} sender
 * @param {Uint8Array<ArrayBuffer>} recipientHPKE 32 bytes, X25519
 * @param {KeyBody} body
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
export async function sealKeyBox(sender, recipientHPKE, body) {
  if (!equalBytes(body.senderKey, sender.publicKey)) {
    throw new TypeError("e2ee: seal: the body's senderKey is not the sender's identity key");
  }
  const label = utf8.encode(KEY_LABEL);
  const b = encodeKeyBody(body);
  const signed = concatBytes(label, b);
  const sig = await sender.sign(signed);
  signed.fill(0);
  const pt = concatBytes(b, sig);
  b.fill(0);
  try {
    const { enc, ct } = await sealBase(recipientHPKE, label, new Uint8Array(0), pt);
    return concatBytes(new Uint8Array([KEY_BOX_VERSION]), enc, ct);
  } finally {
    pt.fill(0);
  }
}

/**
 * Opens a box with recipient's session key and verifies its signature
 * under senderKey, the sender's Ed25519 identity key; returns the body.
 * Anything else throws a SealOpenError.
 * @param {Recipient} recipient
 * @param {Uint8Array<ArrayBuffer>} senderKey 32 bytes
 * @param {Uint8Array<ArrayBuffer>} box
 * @returns {Promise<OpenedKeyBody>}
 */
export async function openKeyBox(recipient, senderKey, box) {
  if (box.length < 1 + ENC_SIZE + TAG_SIZE + SIGNATURE_SIZE) {
    throw new SealOpenError(`${box.length} bytes, want at least ${1 + ENC_SIZE + TAG_SIZE + SIGNATURE_SIZE}`);
  }
  if (box[0] !== KEY_BOX_VERSION) {
    throw new SealOpenError(`version 0x${box[0].toString(16).padStart(2, "0")}, want 0x02`);
  }
  const label = utf8.encode(KEY_LABEL);
  let pt;
  try {
    pt = await openBase(box.slice(1, 1 + ENC_SIZE), recipient, label, new Uint8Array(0), box.slice(1 + ENC_SIZE));
  } catch (err) {
    throw new SealOpenError(String(/** @type {Error} */ (err).message ?? err));
  }
  try {
    const body = pt.slice(0, pt.length - SIGNATURE_SIZE);
    const sig = pt.slice(pt.length - SIGNATURE_SIZE);
    const signed = concatBytes(label, body);
    const ok = await verifySignature(senderKey, signed, sig);
    signed.fill(0);
    if (!ok) {
      body.fill(0);
      throw new SealOpenError("signature does not verify under the sender's identity key");
    }
    try {
      return parseKeyBody(body);
    } finally {
      body.fill(0);
    }
  } finally {
    pt.fill(0);
  }
}
