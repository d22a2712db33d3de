// @ts-check
/**
 * @file A participant's keys, as media/e2ee/identity.go (docs/E2EE.md,
 * "Key management"):
 *
 *   - its identity key, an Ed25519 key pair that lasts as long as the
 *     caller keeps it (a page may store the CryptoKeys in IndexedDB): the
 *     safety number and the verification codes are computed over its
 *     public half, and it signs everything the participant says about
 *     keys;
 *   - a session key for each call session, a fresh X25519 key pair that
 *     only receives sealed keys (HPKE, hpke.js), with a 16-byte random
 *     session id.
 *
 * Both private keys are non-extractable WebCrypto keys: they never leave
 * the browser, not even to this code. The join message's public_key
 * carries both public keys and the session id, signed by the identity key:
 *
 *   announce   = identity_pub (32) || hpke_pub (32) || session_id (16)
 *   sig        = Ed25519(identity_priv, "sotto e2ee v2 announce" || announce)
 *   public_key = "sotto-e2ee-v2:" || base64url(announce || sig)
 */

/** The length in bytes of an Ed25519 identity public key, and of an X25519 session public key. */
export const PUBLIC_KEY_SIZE = 32;
/** The length in bytes of a session id. */
export const SESSION_ID_SIZE = 16;
/** The length in bytes of an Ed25519 signature. */
export const SIGNATURE_SIZE = 64;

const ANNOUNCE_PREFIX = "sotto-e2ee-v2:";
const ANNOUNCE_LABEL = "sotto e2ee v2 announce";
const ANNOUNCE_SIZE = 2 * PUBLIC_KEY_SIZE + SESSION_ID_SIZE;

/**
 * A public key or announcement that cannot be used: a text form without
 * the "sotto-e2ee-v2:" prefix or with bad base64, a wrong length, a bad
 * signature, an Ed25519 key that is not a point or is of small order, or
 * a low-order X25519 key (Go's ErrBadPublicKey).
 */
export class BadPublicKeyError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(`e2ee: bad public key: ${message}`);
    this.name = "BadPublicKeyError";
  }
}

const utf8 = new TextEncoder();

/**
 * @param {...Uint8Array<ArrayBuffer>} parts
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function concatBytes(...parts) {
  let n = 0;
  for (const p of parts) {
    n += p.length;
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Whether two byte strings are equal.
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 * @returns {boolean}
 */
export function equalBytes(a, b) {
  if (a.length !== b.length) {
    return false;
  }
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    d |= a[i] ^ b[i];
  }
  return d === 0;
}

/**
 * One participant's long-lived identity key pair: an Ed25519 private key
 * usable for signing only, non-extractable, and its public key.
 */
export class Identity {
  /**
   * Use Identity.generate or Identity.fromKeys.
   * @param {CryptoKey} privateKey
   * @param {Uint8Array<ArrayBuffer>} publicKey 32 bytes
   */
  constructor(privateKey, publicKey) {
    /** @readonly */
    this.privateKey = privateKey;
    /** @readonly @private */
    this.pub = publicKey.slice();
  }

  /**
   * Makes a fresh Ed25519 identity; the private key is not extractable.
   * @returns {Promise<Identity>}
   */
  static async generate() {
    const pair = /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]));
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return new Identity(pair.privateKey, raw);
  }

  /**
   * An identity from keys kept elsewhere (CryptoKeys survive a round trip
   * through IndexedDB, non-extractable as they were): an Ed25519 private
   * key that can sign, and its public key, raw or as a CryptoKey. Rejects
   * keys of another kind, and a pair whose halves do not match (a probe
   * signature does not verify).
   * @param {CryptoKey} privateKey
   * @param {CryptoKey|Uint8Array<ArrayBuffer>} publicKey
   * @returns {Promise<Identity>}
   */
  static async fromKeys(privateKey, publicKey) {
    if (privateKey.type !== "private" || privateKey.algorithm.name !== "Ed25519" || !privateKey.usages.includes("sign")) {
      throw new TypeError("e2ee: an identity needs an Ed25519 private key usable for signing");
    }
    const raw = publicKey instanceof Uint8Array ? publicKey.slice() : new Uint8Array(await crypto.subtle.exportKey("raw", publicKey));
    await checkIdentityKey(raw);
    const id = new Identity(privateKey, raw);
    const probe = crypto.getRandomValues(new Uint8Array(32));
    if (!(await verifySignature(raw, probe, await id.sign(probe)))) {
      throw new TypeError("e2ee: the identity's public key is not its private key's");
    }
    return id;
  }

  /**
   * A copy of the 32-byte Ed25519 public key.
   * @returns {Uint8Array<ArrayBuffer>}
   */
  get publicKey() {
    return this.pub.slice();
  }

  /**
   * The 64-byte Ed25519 signature of data.
   * @param {Uint8Array<ArrayBuffer>} data
   * @returns {Promise<Uint8Array<ArrayBuffer>>}
   */
  async sign(data) {
    return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, this.privateKey, data));
  }
}

/**
 * One call session's key: a fresh X25519 key pair that receives sealed
 * keys (the private key usable for deriveBits only, non-extractable) and
 * a 16-byte random session id.
 */
export class SessionKey {
  /**
   * Use SessionKey.generate.
   * @param {CryptoKey} privateKey
   * @param {Uint8Array<ArrayBuffer>} publicKey 32 bytes
   * @param {Uint8Array<ArrayBuffer>} id 16 bytes
   */
  constructor(privateKey, publicKey, id) {
    /** @readonly */
    this.privateKey = privateKey;
    /** @readonly @private */
    this.pub = publicKey.slice();
    /** @readonly @private */
    this.sid = id.slice();
  }

  /**
   * Makes a fresh session key and id.
   * @returns {Promise<SessionKey>}
   */
  static async generate() {
    const pair = /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]));
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return new SessionKey(pair.privateKey, raw, crypto.getRandomValues(new Uint8Array(SESSION_ID_SIZE)));
  }

  /**
   * A copy of the 32-byte X25519 public key.
   * @returns {Uint8Array<ArrayBuffer>}
   */
  get publicKey() {
    return this.pub.slice();
  }

  /**
   * A copy of the 16-byte session id.
   * @returns {Uint8Array<ArrayBuffer>}
   */
  get id() {
    return this.sid.slice();
  }
}

/**
 * What an announcement says: whose identity key, which session key and
 * session id (Go's Announcement).
 * @typedef {object} Announcement
 * @property {Uint8Array<ArrayBuffer>} identity the 32-byte Ed25519 identity public key
 * @property {Uint8Array<ArrayBuffer>} hpke the 32-byte X25519 session public key
 * @property {Uint8Array<ArrayBuffer>} sessionId 16 bytes
 */

/**
 * The join message's public_key for identity and sessionKey:
 * "sotto-e2ee-v2:" and 192 characters of unpadded base64url.
 * @param {Identity} identity
 * @param {SessionKey} sessionKey
 * @returns {Promise<string>}
 */
export async function announce(identity, sessionKey) {
  const body = concatBytes(identity.publicKey, sessionKey.publicKey, sessionKey.id);
  const sig = await identity.sign(concatBytes(utf8.encode(ANNOUNCE_LABEL), body));
  return ANNOUNCE_PREFIX + base64urlEncode(concatBytes(body, sig));
}

/**
 * The inverse of announce: returns what the announcement says, or throws
 * a BadPublicKeyError for a wrong prefix, base64 that is not canonical
 * unpadded base64url, a wrong length, an identity key that is not a point
 * or is of small order, a low-order session key, or a signature that does
 * not verify.
 * @param {string} s
 * @returns {Promise<Announcement>}
 */
export async function parseAnnouncement(s) {
  if (typeof s !== "string" || !s.startsWith(ANNOUNCE_PREFIX)) {
    throw new BadPublicKeyError(`missing "${ANNOUNCE_PREFIX}" prefix`);
  }
  const enc = s.slice(ANNOUNCE_PREFIX.length);
  let raw;
  try {
    raw = base64urlDecode(enc);
  } catch (err) {
    throw new BadPublicKeyError(String(/** @type {Error} */ (err).message));
  }
  // Only the canonical form is accepted, so each announcement has one text form.
  if (base64urlEncode(raw) !== enc) {
    throw new BadPublicKeyError("not canonical unpadded base64url");
  }
  if (raw.length !== ANNOUNCE_SIZE + SIGNATURE_SIZE) {
    throw new BadPublicKeyError(`${raw.length} bytes, want ${ANNOUNCE_SIZE + SIGNATURE_SIZE}`);
  }
  const body = raw.slice(0, ANNOUNCE_SIZE);
  const identity = body.slice(0, PUBLIC_KEY_SIZE);
  const hpke = body.slice(PUBLIC_KEY_SIZE, 2 * PUBLIC_KEY_SIZE);
  const sessionId = body.slice(2 * PUBLIC_KEY_SIZE);
  // The checks and their words are Go's (ParseAnnouncement), in its order.
  await checkIdentityKey(identity);
  await checkSessionKey(hpke);
  if (!(await verifySignature(identity, concatBytes(utf8.encode(ANNOUNCE_LABEL), body), raw.slice(ANNOUNCE_SIZE)))) {
    throw new BadPublicKeyError("announcement signature does not verify");
  }
  return { identity, hpke, sessionId };
}

/**
 * Whether sig is identityKey's Ed25519 signature of data. A key WebCrypto
 * cannot import verifies nothing.
 * @param {Uint8Array<ArrayBuffer>} identityKey 32 bytes
 * @param {Uint8Array<ArrayBuffer>} data
 * @param {Uint8Array<ArrayBuffer>} sig
 * @returns {Promise<boolean>}
 */
export async function verifySignature(identityKey, data, sig) {
  if (identityKey.length !== PUBLIC_KEY_SIZE || sig.length !== SIGNATURE_SIZE) {
    return false;
  }
  try {
    const key = await crypto.subtle.importKey("raw", identityKey, { name: "Ed25519" }, false, ["verify"]);
    return await crypto.subtle.verify({ name: "Ed25519" }, key, sig, data);
  } catch {
    return false;
  }
}

// Edwards25519 (RFC 8032 section 5.1), only what checkIdentityKey needs:
// decoding a point and multiplying it by the cofactor. BigInt arithmetic,
// which is not constant time; it only ever sees public keys.
const P = (1n << 255n) - 19n;
const D = 37095705934669439343138083508754565189542113879843219016388785533085940283555n;
const SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752n;

/**
 * @param {bigint} a
 * @returns {bigint}
 */
function mod(a) {
  const r = a % P;
  return r < 0n ? r + P : r;
}

/**
 * @param {bigint} b
 * @param {bigint} e
 * @returns {bigint}
 */
function pow(b, e) {
  let r = 1n;
  b = mod(b);
  while (e > 0n) {
    if (e & 1n) {
      r = (r * b) % P;
    }
    b = (b * b) % P;
    e >>= 1n;
  }
  return r;
}

/**
 * @param {bigint} a
 * @returns {bigint}
 */
function inv(a) {
  return pow(a, P - 2n);
}

/**
 * Decodes an Ed25519 point as Go's edwards25519 (Point.SetBytes) does,
 * which is also what Ed25519 verification in Go and in BoringSSL
 * accepts: y is the low 255 bits, reduced mod p if they are not (a
 * non-canonical encoding), and x the square root the sign bit selects
 * (x = 0 with the sign bit set included). Returns null when y is not the
 * y-coordinate of a point.
 * @param {Uint8Array<ArrayBuffer>} b 32 bytes
 * @returns {{x: bigint, y: bigint}|null}
 */
function decodePoint(b) {
  let y = 0n;
  for (let i = 31; i >= 0; i--) {
    y = (y << 8n) | BigInt(i === 31 ? b[i] & 0x7f : b[i]);
  }
  y = mod(y);
  // x² = (y² - 1) / (d y² + 1); d y² + 1 is never zero (d is not a square).
  const y2 = (y * y) % P;
  const u = mod(y2 - 1n);
  const v = mod(D * y2 + 1n);
  // The candidate root of u/v: (u v³)(u v⁷)^((p-5)/8) (RFC 8032 section 5.1.3).
  const v3 = (v * v * v) % P;
  let x = (u * v3 * pow(u * v3 * v3 * v, (P - 5n) / 8n)) % P;
  const check = (v * x * x) % P;
  if (check === mod(-u)) {
    x = (x * SQRT_M1) % P;
  } else if (check !== u) {
    return null;
  }
  if ((x & 1n) !== BigInt(b[31] >> 7)) {
    x = mod(-x);
  }
  return { x, y };
}

/**
 * Doubles a point of -x² + y² = 1 + d x² y², in affine coordinates: the
 * denominators are 1 ± d x² y², never zero on this curve.
 * @param {{x: bigint, y: bigint}} p
 * @returns {{x: bigint, y: bigint}}
 */
function double(p) {
  const xx = (p.x * p.x) % P;
  const yy = (p.y * p.y) % P;
  return {
    x: (2n * p.x * p.y * inv(mod(yy - xx))) % P,
    y: (mod(yy + xx) * inv(mod(2n + xx - yy))) % P,
  };
}

/**
 * Refuses an Ed25519 identity public key of the wrong length, one that
 * is not the encoding of a curve point, and one of small order: the
 * cofactor (8) times it is the neutral element (0, 1). A small-order key
 * "verifies" signatures nobody made, so it must never be trusted.
 * @param {Uint8Array<ArrayBuffer>} key
 * @returns {Promise<void>}
 */
export async function checkIdentityKey(key) {
  if (key.length !== PUBLIC_KEY_SIZE) {
    throw new BadPublicKeyError(`identity key is ${key.length} bytes, want ${PUBLIC_KEY_SIZE}`);
  }
  let p = decodePoint(key);
  if (p === null) {
    throw new BadPublicKeyError("identity key is not a curve point");
  }
  for (let i = 0; i < 3; i++) {
    p = double(p);
  }
  if (p.x === 0n && p.y === 1n) {
    throw new BadPublicKeyError("identity key is a small-order point");
  }
}

/**
 * Refuses X25519 keys of the wrong length and low-order points. A
 * low-order point sends every clamped scalar to the identity, so X25519
 * with it is all zeros, which WebCrypto's deriveBits refuses: the check is
 * one X25519 with a throwaway key (Go's checkHPKEKey does the same).
 * @param {Uint8Array<ArrayBuffer>} key
 * @returns {Promise<void>}
 */
export async function checkSessionKey(key) {
  if (key.length !== PUBLIC_KEY_SIZE) {
    throw new BadPublicKeyError(`session key is ${key.length} bytes, want ${PUBLIC_KEY_SIZE}`);
  }
  const probe = /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]));
  try {
    (await x25519(probe.privateKey, key)).fill(0);
  } catch {
    throw new BadPublicKeyError("session key is a low-order point");
  }
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
    throw new BadPublicKeyError(`X25519 key of ${peer.length} bytes, want ${PUBLIC_KEY_SIZE}`);
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
 * @param {Uint8Array} b
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
  return out.slice(0, n);
}
