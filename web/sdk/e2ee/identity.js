// @ts-check
/**
 * @file A participant's identity key for one session, as
 * media/e2ee/identity.go: a fresh X25519 key pair whose private half is a
 * non-extractable WebCrypto key (it never leaves the browser, not even to
 * this code), and whose public half travels in the join message's
 * public_key field as "x25519:" followed by unpadded base64url.
 */

/** The length in bytes of an identity public key. */
export const PUBLIC_KEY_SIZE = 32;

const PUBLIC_KEY_PREFIX = "x25519:";

/**
 * An identity public key that cannot be used: a text form without the
 * "x25519:" prefix or with bad base64, a length other than 32 bytes, or a
 * low-order point (Go's ErrBadPublicKey).
 */
export class BadPublicKeyError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(`e2ee: bad identity public key: ${message}`);
    this.name = "BadPublicKeyError";
  }
}

/**
 * One participant's identity key pair for one session. The private key
 * is a non-extractable CryptoKey usable for X25519 deriveBits only.
 */
export class Identity {
  /**
   * Use Identity.generate.
   * @param {CryptoKey} privateKey
   * @param {Uint8Array<ArrayBuffer>} publicKey
   */
  constructor(privateKey, publicKey) {
    /** @readonly */
    this.privateKey = privateKey;
    /** @readonly @private */
    this.pub = publicKey.slice();
  }

  /**
   * Makes a fresh X25519 identity; the private key is not extractable.
   * @returns {Promise<Identity>}
   */
  static async generate() {
    const pair = /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]));
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return new Identity(pair.privateKey, raw);
  }

  /**
   * A copy of the 32-byte public key.
   * @returns {Uint8Array<ArrayBuffer>}
   */
  get publicKey() {
    return this.pub.slice();
  }

  /**
   * The text form for the join message: "x25519:" and 43 characters of
   * unpadded base64url.
   * @returns {string}
   */
  get encodedPublicKey() {
    return encodePublicKey(this.pub);
  }
}

/**
 * The text form of a public key: "x25519:" followed by its 32 bytes in
 * unpadded base64url (RFC 4648 section 5).
 * @param {Uint8Array<ArrayBuffer>} key
 * @returns {string}
 */
export function encodePublicKey(key) {
  return PUBLIC_KEY_PREFIX + base64urlEncode(key);
}

/**
 * The inverse of encodePublicKey: returns the 32 key bytes, or throws a
 * BadPublicKeyError for a wrong prefix, base64 that is not canonical
 * unpadded base64url, a wrong length, or a low-order point.
 * @param {string} s
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
export async function parsePublicKey(s) {
  if (typeof s !== "string" || !s.startsWith(PUBLIC_KEY_PREFIX)) {
    throw new BadPublicKeyError(`missing "${PUBLIC_KEY_PREFIX}" prefix`);
  }
  const enc = s.slice(PUBLIC_KEY_PREFIX.length);
  let key;
  try {
    key = base64urlDecode(enc);
  } catch (err) {
    throw new BadPublicKeyError(String(/** @type {Error} */ (err).message));
  }
  // Only the canonical form is accepted, so each key has one text form.
  if (base64urlEncode(key) !== enc) {
    throw new BadPublicKeyError("not canonical unpadded base64url");
  }
  await checkPublicKey(key);
  return key;
}

/**
 * Refuses keys of the wrong length and low-order points. A low-order
 * point sends every clamped scalar to the identity, so X25519 with it is
 * all zeros, which WebCrypto's deriveBits refuses: the check is one
 * X25519 with a throwaway key (Go's checkPublicKey does the same).
 * @param {Uint8Array<ArrayBuffer>} key
 * @returns {Promise<void>}
 */
export async function checkPublicKey(key) {
  if (key.length !== PUBLIC_KEY_SIZE) {
    throw new BadPublicKeyError(`${key.length} bytes, want ${PUBLIC_KEY_SIZE}`);
  }
  const probe = /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]));
  await x25519(probe.privateKey, key);
}

/**
 * X25519(priv, peer): the 32-byte shared secret, or a BadPublicKeyError
 * for a peer key that is not 32 bytes or is a low-order point (the
 * all-zero secret WebCrypto refuses).
 * @param {CryptoKey} priv
 * @param {Uint8Array<ArrayBuffer>} peer
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
export async function x25519(priv, peer) {
  if (peer.length !== PUBLIC_KEY_SIZE) {
    throw new BadPublicKeyError(`${peer.length} bytes, want ${PUBLIC_KEY_SIZE}`);
  }
  let pub;
  try {
    pub = await crypto.subtle.importKey("raw", peer, { name: "X25519" }, true, []);
  } catch (err) {
    throw new BadPublicKeyError(String(/** @type {Error} */ (err).message));
  }
  try {
    return new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: pub }, priv, 256));
  } catch {
    throw new BadPublicKeyError("low-order point");
  }
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * Unpadded base64url (RFC 4648 section 5), as Go's
 * base64.RawURLEncoding.EncodeToString.
 * @param {Uint8Array<ArrayBuffer>} b
 * @returns {string}
 */
export function base64urlEncode(b) {
  let s = "";
  let i = 0;
  for (; i + 3 <= b.length; i += 3) {
    const v = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    s += B64URL[v >> 18] + B64URL[(v >> 12) & 63] + B64URL[(v >> 6) & 63] + B64URL[v & 63];
  }
  if (b.length - i === 1) {
    const v = b[i] << 16;
    s += B64URL[v >> 18] + B64URL[(v >> 12) & 63];
  } else if (b.length - i === 2) {
    const v = (b[i] << 16) | (b[i + 1] << 8);
    s += B64URL[v >> 18] + B64URL[(v >> 12) & 63] + B64URL[(v >> 6) & 63];
  }
  return s;
}

/**
 * Decodes unpadded base64url as Go's base64.RawURLEncoding.DecodeString
 * does: line breaks are skipped, padding and characters outside the
 * alphabet are refused, and so is a length that leaves a lone character;
 * non-zero trailing bits are tolerated (callers that need the canonical
 * form re-encode and compare). Throws an Error.
 * @param {string} s
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function base64urlDecode(s) {
  const clean = String(s).replace(/[\r\n]/g, "");
  if (clean.length % 4 === 1) {
    throw new Error("illegal base64 data: bad length");
  }
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let n = 0;
  for (let i = 0; i < clean.length; i++) {
    const v = B64URL.indexOf(clean[i]);
    if (v < 0) {
      throw new Error(`illegal base64 data at input byte ${i}`);
    }
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, n);
}
