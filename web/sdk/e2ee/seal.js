// @ts-check
/**
 * @file Sealing a sender's media key to one recipient, bound to both
 * identities and to the room: media/e2ee/seal.go, version 1, byte for
 * byte (docs/E2EE.md has the construction and what it does not protect
 * against).
 *
 *   shared = X25519(sender_priv, recipient_pub)
 *   info   = "sotto e2ee v1 seal" || u16(len(room)) || room
 *            || u16(len(sender)) || sender || sender_pub
 *            || u16(len(recipient)) || recipient || recipient_pub
 *   key    = HKDF-SHA256(secret = shared, salt = 32 random bytes, info, L = 32)
 *   sealed = 0x01 || salt || nonce (12 random bytes) || AES-256-GCM(key, nonce, plaintext, aad = info)
 *
 * Names and the room are UTF-8; u16 is a 2-byte big-endian length.
 */

import { x25519 } from "./identity.js";

/** The first byte of every sealed message. */
export const SEAL_VERSION = 0x01;

const SEAL_LABEL = "sotto e2ee v1 seal";
const SALT_SIZE = 32;
const NONCE_SIZE = 12;
const TAG_SIZE = 16;
const HEADER_SIZE = 1 + SALT_SIZE + NONCE_SIZE;

/** How many bytes seal adds to the plaintext: version, salt, nonce and tag. */
export const SEAL_OVERHEAD = HEADER_SIZE + TAG_SIZE;

/**
 * A sealed message that cannot be opened: too short, an unknown version,
 * changed, or made for another room, name or key (Go's ErrSealOpen).
 */
export class SealOpenError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(`e2ee: cannot open sealed message: ${message}`);
    this.name = "SealOpenError";
  }
}

/** A room or name longer than the 65535 bytes a seal can bind (Go's ErrNameTooLong). */
export class NameTooLongError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(`e2ee: name longer than 65535 bytes: ${message}`);
    this.name = "NameTooLongError";
  }
}

const utf8 = new TextEncoder();

/**
 * The HKDF info of a seal, which is also the GCM additional data.
 * @param {string} room
 * @param {string} senderName
 * @param {Uint8Array<ArrayBuffer>} senderPub
 * @param {string} recipientName
 * @param {Uint8Array<ArrayBuffer>} recipientPub
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function sealInfo(room, senderName, senderPub, recipientName, recipientPub) {
  const label = utf8.encode(SEAL_LABEL);
  const r = utf8.encode(room);
  const s = utf8.encode(senderName);
  const t = utf8.encode(recipientName);
  for (const [what, v] of /** @type {const} */ ([["room", r], ["sender name", s], ["recipient name", t]])) {
    if (v.length > 0xffff) {
      throw new NameTooLongError(`${what} is ${v.length} bytes`);
    }
  }
  const out = new Uint8Array(label.length + 6 + r.length + s.length + t.length + senderPub.length + recipientPub.length);
  const dv = new DataView(out.buffer);
  let at = 0;
  /** @param {Uint8Array<ArrayBuffer>} b */
  const put = (b) => {
    out.set(b, at);
    at += b.length;
  };
  /** @param {Uint8Array<ArrayBuffer>} b */
  const putU16 = (b) => {
    dv.setUint16(at, b.length);
    at += 2;
    put(b);
  };
  put(label);
  putU16(r);
  putU16(s);
  put(senderPub);
  putU16(t);
  put(recipientPub);
  return out;
}

/**
 * The per-message AES-256-GCM key: HKDF-SHA256 of the shared secret.
 * @param {Uint8Array<ArrayBuffer>} shared
 * @param {Uint8Array<ArrayBuffer>} salt
 * @param {Uint8Array<ArrayBuffer>} info
 * @param {KeyUsage} usage
 * @returns {Promise<CryptoKey>}
 */
async function sealKey(shared, salt, info, usage) {
  const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
  shared.fill(0);
  return crypto.subtle.deriveKey({ name: "HKDF", hash: "SHA-256", salt, info }, ikm, { name: "AES-GCM", length: 256 }, false, [usage]);
}

/**
 * The private half and public key of an identity (an Identity fits).
 * @typedef {{privateKey: CryptoKey, publicKey: Uint8Array<ArrayBuffer>}} SealIdentity
 */

/**
 * Encrypts plaintext (a sender base key and its metadata) from sender,
 * known in the room as senderName, to the holder of recipientPub, known as
 * recipientName, in room. The result is SEAL_OVERHEAD bytes longer than
 * plaintext and opens only with open given the same room, names and the
 * matching keys. Throws a BadPublicKeyError for an unusable recipient key
 * and a NameTooLongError for an overlong room or name.
 * @param {SealIdentity} sender
 * @param {string} senderName
 * @param {Uint8Array<ArrayBuffer>} recipientPub 32 bytes
 * @param {string} recipientName
 * @param {string} room
 * @param {Uint8Array<ArrayBuffer>} plaintext
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
export async function seal(sender, senderName, recipientPub, recipientName, room, plaintext) {
  const shared = await x25519(sender.privateKey, recipientPub);
  const info = sealInfo(room, senderName, sender.publicKey, recipientName, recipientPub);
  const head = crypto.getRandomValues(new Uint8Array(HEADER_SIZE));
  head[0] = SEAL_VERSION;
  const salt = head.subarray(1, 1 + SALT_SIZE);
  const nonce = head.subarray(1 + SALT_SIZE);
  const key = await sealKey(shared, salt, info, "encrypt");
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: info, tagLength: 128 }, key, plaintext));
  const out = new Uint8Array(HEADER_SIZE + ct.length);
  out.set(head);
  out.set(ct, HEADER_SIZE);
  return out;
}

/**
 * Decrypts a message that seal made from the holder of senderPub, known
 * as senderName, to recipient, known as recipientName, in room. Anything
 * that does not open throws a SealOpenError; an unusable sender key a
 * BadPublicKeyError, an overlong room or name a NameTooLongError.
 * @param {SealIdentity} recipient
 * @param {string} recipientName
 * @param {Uint8Array<ArrayBuffer>} senderPub 32 bytes
 * @param {string} senderName
 * @param {string} room
 * @param {Uint8Array<ArrayBuffer>} sealed
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
export async function open(recipient, recipientName, senderPub, senderName, room, sealed) {
  if (sealed.length < SEAL_OVERHEAD) {
    throw new SealOpenError(`${sealed.length} bytes, want at least ${SEAL_OVERHEAD}`);
  }
  if (sealed[0] !== SEAL_VERSION) {
    throw new SealOpenError(`version 0x${sealed[0].toString(16).padStart(2, "0")}, want 0x01`);
  }
  const shared = await x25519(recipient.privateKey, senderPub);
  const info = sealInfo(room, senderName, senderPub, recipientName, recipient.publicKey);
  const salt = sealed.subarray(1, 1 + SALT_SIZE);
  const nonce = sealed.subarray(1 + SALT_SIZE, HEADER_SIZE);
  const key = await sealKey(shared, salt, info, "decrypt");
  try {
    const pt = await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: info, tagLength: 128 }, key, sealed.subarray(HEADER_SIZE));
    return new Uint8Array(pt);
  } catch {
    throw new SealOpenError("message authentication failed");
  }
}
