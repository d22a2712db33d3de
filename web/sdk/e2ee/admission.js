// @ts-check
/**
 * @file Admissions: a member's signed statement that it lets a newcomer
 * into a room, as media/e2ee's Admit, ParseAdmission and Admission.Check,
 * byte for byte (docs/E2EE.md, "Admission and rosters"):
 *
 *   body = 0x01
 *          || u16(len(room)) || room
 *          || u16(len(admitter)) || admitter || admitter_identity_pub (32)
 *          || u16(len(admitted)) || admitted || admitted_identity_pub (32)
 *          || u64(time)                        Unix milliseconds, below 2^63
 *   sig  = Ed25519(admitter_identity_priv, "sotto e2ee v2 admit" || body)
 *   admission = "sotto-admit-v1:" || base64url(body || sig)
 *
 * Integers are big-endian; names and the room are UTF-8 as given. The
 * node relays admissions; without a member's identity key it cannot make
 * one. Whether the admitter is someone the reader accepted, and whether
 * the admitted name and key are the ones the newcomer announced, is the
 * caller's to check: parseAdmission checks only that the statement is
 * well formed and the admitter's own, checkAdmission its room and age.
 *
 * One difference from Go, on purpose: a JavaScript string cannot hold
 * bytes that are not UTF-8, so a room or name that is not valid UTF-8 is
 * refused here (Go takes any bytes), as key boxes are (seal.js). Names
 * come from tokens, which are JSON: valid UTF-8.
 */

import {
  BadPublicKeyError,
  PUBLIC_KEY_SIZE,
  SIGNATURE_SIZE,
  base64urlDecode,
  base64urlEncode,
  checkIdentityKey,
  concatBytes,
  equalBytes,
  verifySignature,
} from "./identity.js";
import { NameTooLongError } from "./seal.js";

/** The first byte of an admission's body. */
export const ADMISSION_VERSION = 0x01;

const ADMIT_PREFIX = "sotto-admit-v1:";
const ADMIT_LABEL = "sotto e2ee v2 admit";

const I64_MAX = (1n << 63n) - 1n;

/**
 * An admission that cannot be used (Go's ErrBadAdmission): without the
 * "sotto-admit-v1:" prefix, not canonical unpadded base64url, badly formed
 * (a field cut short, bytes left over, another version, a time with the
 * top bit set, a room or name that is not UTF-8), a key that is not a
 * usable identity key, an admitter admitting its own key, a signature
 * that does not verify under the admitter's key inside, or (checkAdmission)
 * another room or a time too far from now.
 */
export class BadAdmissionError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(`e2ee: bad admission: ${message}`);
    this.name = "BadAdmissionError";
  }
}

/**
 * What signs a statement: an Identity fits.
 * @typedef {import("./seal.js").Signer} Signer
 */

/**
 * What an admission says (Go's Admission). time is Unix milliseconds: a
 * Number (every time before the year 287396 is a safe integer), or a
 * bigint for a later one, which parseAdmission returns as it is rather
 * than rounded.
 * @typedef {object} Admission
 * @property {string} room
 * @property {string} admitter the admitting member's identity, as its token names it
 * @property {Uint8Array<ArrayBuffer>} admitterKey its 32-byte Ed25519 identity key, which signs the admission
 * @property {string} admitted the admitted participant's identity
 * @property {Uint8Array<ArrayBuffer>} admittedKey its 32-byte Ed25519 identity key
 * @property {number|bigint} time when the admission was made, Unix milliseconds
 */

/**
 * What admit takes: an Admission whose admitterKey may be left out (it is
 * the signer's).
 * @typedef {Omit<Admission, "admitterKey"> & {admitterKey?: Uint8Array<ArrayBuffer>}} AdmissionInput
 */

const utf8 = new TextEncoder();
const strictUTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * s's UTF-8 bytes, or a TypeError when s is not a string or not
 * well-formed Unicode (a lone surrogate, which TextEncoder would silently
 * turn into U+FFFD: the bytes signed would not be the name given).
 * @param {unknown} s
 * @param {string} what
 * @param {string} context
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function utf8Of(s, what, context) {
  if (typeof s !== "string") {
    throw new TypeError(`e2ee: ${context}: ${what} is not a string`);
  }
  const b = utf8.encode(s);
  if (strictUTF8.decode(b) !== s) {
    throw new TypeError(`e2ee: ${context}: ${what} is not well-formed Unicode (a lone surrogate)`);
  }
  return b;
}

/**
 * Decodes UTF-8 exactly (the BOM kept), or returns null for bytes that
 * are not UTF-8.
 * @param {Uint8Array<ArrayBuffer>} b
 * @returns {string|null}
 */
export function decodeUTF8(b) {
  try {
    return strictUTF8.decode(b);
  } catch {
    return null;
  }
}

/**
 * Compares two byte strings as Go's bytes.Compare: bytewise, a prefix
 * first. Strings compared by their UTF-8 bytes order as Go's strings do,
 * which JavaScript's < (UTF-16 code units) does not.
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 * @returns {number} negative, 0 or positive
 */
export function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) {
      return a[i] - b[i];
    }
  }
  return a.length - b.length;
}

/**
 * v as a u64, or a RangeError.
 * @param {unknown} v a bigint, or a Number that is a safe integer
 * @param {bigint} max
 * @param {string} what
 * @param {string} context
 * @returns {bigint}
 */
export function toU64(v, max, what, context) {
  const b = typeof v === "bigint" ? v : typeof v === "number" && Number.isSafeInteger(v) ? BigInt(v) : null;
  if (b === null) {
    throw new RangeError(`e2ee: ${context}: ${what} ${String(v)} is not an integer (a bigint, or a Number that is a safe integer)`);
  }
  if (b < 0n) {
    throw new RangeError(`e2ee: ${context}: ${what} ${b} is negative`);
  }
  if (b > max) {
    throw new RangeError(`e2ee: ${context}: ${what} ${b} is more than ${max}`);
  }
  return b;
}

/**
 * u16(len(b)) || b.
 * @param {Uint8Array<ArrayBuffer>} b at most 65535 bytes
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function u16Prefixed(b) {
  return concatBytes(new Uint8Array([b.length >> 8, b.length & 0xff]), b);
}

/**
 * v as 8 big-endian bytes.
 * @param {bigint} v below 2^64
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function u64Bytes(v) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, v);
  return out;
}

/**
 * Reads a body as Go's reader does: a read past the end returns null (0
 * for numbers) and marks the reader short, and so does every read after.
 */
export class BodyReader {
  /** @param {Uint8Array<ArrayBuffer>} p */
  constructor(p) {
    /** @private */
    this.p = p;
    /** @private */
    this.at = 0;
    /** Whether a read went past the end. */
    this.short = false;
  }

  /** How many bytes are left. */
  get left() {
    return this.p.length - this.at;
  }

  /**
   * The next n bytes (a copy), or null past the end.
   * @param {number} n
   * @returns {Uint8Array<ArrayBuffer>|null}
   */
  bytes(n) {
    if (this.short || this.left < n) {
      this.short = true;
      return null;
    }
    const b = this.p.slice(this.at, this.at + n);
    this.at += n;
    return b;
  }

  /** @returns {number} */
  byte() {
    const b = this.bytes(1);
    return b ? b[0] : 0;
  }

  /** @returns {number} */
  u16() {
    const b = this.bytes(2);
    return b ? (b[0] << 8) | b[1] : 0;
  }

  /** @returns {bigint} */
  u64() {
    const b = this.bytes(8);
    return b ? new DataView(b.buffer).getBigUint64(0) : 0n;
  }

  /**
   * A u16 length, then that many bytes.
   * @returns {Uint8Array<ArrayBuffer>|null}
   */
  u16bytes() {
    return this.bytes(this.u16());
  }
}

/**
 * prefix, then body || sig in unpadded base64url (Go's encodeSigned).
 * @param {string} prefix
 * @param {Uint8Array<ArrayBuffer>} body
 * @param {Uint8Array<ArrayBuffer>} sig
 * @returns {string}
 */
export function encodeSigned(prefix, body, sig) {
  return prefix + base64urlEncode(concatBytes(body, sig));
}

/**
 * Undoes encodeSigned (Go's decodeSigned): checks the prefix and that the
 * base64url is canonical and unpadded, so each statement has one text
 * form, and splits off the trailing 64-byte signature. Checks nothing
 * else. Throws what fail makes of the reason.
 * @param {string} prefix
 * @param {unknown} s
 * @param {(message: string) => Error} fail
 * @returns {{body: Uint8Array<ArrayBuffer>, sig: Uint8Array<ArrayBuffer>}}
 */
export function decodeSigned(prefix, s, fail) {
  if (typeof s !== "string" || !s.startsWith(prefix)) {
    throw fail(`missing "${prefix}" prefix`);
  }
  const enc = s.slice(prefix.length);
  let raw;
  try {
    raw = base64urlDecode(enc);
  } catch (err) {
    throw fail(String(/** @type {Error} */ (err).message));
  }
  // The decoder skips newlines and tolerates non-zero trailing bits.
  if (base64urlEncode(raw) !== enc) {
    throw fail("not canonical unpadded base64url");
  }
  if (raw.length < SIGNATURE_SIZE) {
    throw fail(`${raw.length} bytes, shorter than a signature`);
  }
  const n = raw.length - SIGNATURE_SIZE;
  return { body: raw.slice(0, n), sig: raw.slice(n) };
}

/**
 * A BadPublicKeyError's reason, without its "e2ee: bad public key: ".
 * @param {unknown} err
 * @returns {string}
 */
export function keyReason(err) {
  return String(/** @type {Error} */ (err)?.message ?? err).replace(/^e2ee: bad public key: /, "");
}

/**
 * The text form of admission a, signed by admitter (Go's Admit):
 * "sotto-admit-v1:" then, in unpadded base64url, the body and the
 * signature. a.admitterKey, when given, must be admitter's public key;
 * a.admittedKey another usable identity key. Throws a TypeError for a
 * missing signer, another admitter key, an admitter admitting its own key
 * and a room or name that is not a well-formed string, a
 * BadPublicKeyError for an unusable admitted key, a NameTooLongError for
 * a room or name over 65535 bytes, and a RangeError for a time that is
 * not an integer in [0, 2^63).
 * @param {Signer} admitter
 * @param {AdmissionInput} a
 * @returns {Promise<string>}
 */
export async function admit(admitter, a) {
  if (!admitter || typeof admitter.sign !== "function" || !(admitter.publicKey instanceof Uint8Array)) {
    throw new TypeError("e2ee: admit: no identity");
  }
  const own = admitter.publicKey;
  const admitterKey = a.admitterKey ?? own;
  if (!(admitterKey instanceof Uint8Array) || !equalBytes(admitterKey, own)) {
    throw new TypeError("e2ee: admit: the admitterKey is not the admitter's identity key");
  }
  if (!(a.admittedKey instanceof Uint8Array)) {
    throw new TypeError("e2ee: admit: the admittedKey is not bytes");
  }
  try {
    await checkIdentityKey(a.admittedKey);
  } catch (err) {
    throw new BadPublicKeyError(`admit: admitted ${keyReason(err)}`);
  }
  if (equalBytes(a.admittedKey, admitterKey)) {
    throw new TypeError("e2ee: admit: a member cannot admit its own key");
  }
  const body = encodeAdmission({ ...a, admitterKey });
  const sig = await admitter.sign(concatBytes(utf8.encode(ADMIT_LABEL), body));
  return encodeSigned(ADMIT_PREFIX, body, sig);
}

/**
 * An admission's body (Go's Admission.marshal). Throws as admit does.
 * @param {Admission} a
 * @returns {Uint8Array<ArrayBuffer>}
 */
function encodeAdmission(a) {
  const fields = /** @type {const} */ ([
    ["room", a.room],
    ["admitter name", a.admitter],
    ["admitted name", a.admitted],
  ]).map(([what, v]) => {
    const b = utf8Of(v, what, "admit");
    if (b.length > 0xffff) {
      throw new NameTooLongError(`${what} is ${b.length} bytes`);
    }
    return b;
  });
  if (a.admitterKey.length !== PUBLIC_KEY_SIZE || a.admittedKey.length !== PUBLIC_KEY_SIZE) {
    throw new BadPublicKeyError(`identity keys must be ${PUBLIC_KEY_SIZE} bytes`);
  }
  const time = toU64(a.time, I64_MAX, "admission time", "admit");
  const [room, admitter, admitted] = fields;
  return concatBytes(
    new Uint8Array([ADMISSION_VERSION]),
    u16Prefixed(room),
    u16Prefixed(admitter),
    a.admitterKey,
    u16Prefixed(admitted),
    a.admittedKey,
    u64Bytes(time),
  );
}

/**
 * Parses a body exactly (Go's unmarshalAdmission): every field present,
 * nothing left over, the time's top bit clear, the room and names UTF-8.
 * Checks no key and no signature.
 * @param {Uint8Array<ArrayBuffer>} body
 * @returns {Admission}
 */
function decodeAdmission(body) {
  const r = new BodyReader(body);
  const v = r.byte();
  if (v !== ADMISSION_VERSION) {
    throw new BadAdmissionError(`body version 0x${v.toString(16).padStart(2, "0")}, want 0x01`);
  }
  const room = r.u16bytes();
  const admitter = r.u16bytes();
  const admitterKey = r.bytes(PUBLIC_KEY_SIZE);
  const admitted = r.u16bytes();
  const admittedKey = r.bytes(PUBLIC_KEY_SIZE);
  const t = r.u64();
  if (r.short || !room || !admitter || !admitterKey || !admitted || !admittedKey) {
    throw new BadAdmissionError("body is cut short");
  }
  if (r.left !== 0) {
    throw new BadAdmissionError(`${r.left} bytes after the body`);
  }
  if (t > I64_MAX) {
    throw new BadAdmissionError(`time 0x${t.toString(16)} is before 1970`);
  }
  /** @type {string[]} */
  const names = [];
  for (const [what, b] of /** @type {const} */ ([
    ["room", room],
    ["admitter name", admitter],
    ["admitted name", admitted],
  ])) {
    const s = decodeUTF8(b);
    if (s === null) {
      throw new BadAdmissionError(`${what} is not UTF-8`);
    }
    names.push(s);
  }
  return {
    room: names[0],
    admitter: names[1],
    admitterKey,
    admitted: names[2],
    admittedKey,
    time: t <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(t) : t,
  };
}

/**
 * The inverse of admit (Go's ParseAdmission): what the admission says, or
 * a BadAdmissionError for a wrong prefix, base64 that is not canonical
 * unpadded base64url, a body that does not parse exactly (cut short,
 * bytes left over, another version, a time with the top bit set, a room
 * or name that is not UTF-8), an identity key that is not a point or of
 * small order (either one), the same key as admitter and admitted, or a
 * signature that does not verify under the admitter key the body names.
 * It does not look at the room or the time: see checkAdmission.
 * @param {string} s
 * @returns {Promise<Admission>}
 */
export async function parseAdmission(s) {
  const { body, sig } = decodeSigned(ADMIT_PREFIX, s, (m) => new BadAdmissionError(m));
  const a = decodeAdmission(body);
  for (const [what, key] of /** @type {const} */ ([
    ["admitter", a.admitterKey],
    ["admitted", a.admittedKey],
  ])) {
    try {
      await checkIdentityKey(key);
    } catch (err) {
      throw new BadAdmissionError(`${what} ${keyReason(err)}`);
    }
  }
  if (equalBytes(a.admitterKey, a.admittedKey)) {
    throw new BadAdmissionError("the admitter admits its own key");
  }
  if (!(await verifySignature(a.admitterKey, concatBytes(utf8.encode(ADMIT_LABEL), body), sig))) {
    throw new BadAdmissionError("signature does not verify under the admitter's identity key");
  }
  return a;
}

/**
 * v in whole milliseconds, rounded down as Go's Time.UnixMilli and
 * Duration.Milliseconds do for what they cover; null for what is not a
 * finite number or a bigint.
 * @param {unknown} v
 * @returns {bigint|null}
 */
function wholeMillis(v) {
  if (typeof v === "bigint") {
    return v;
  }
  if (typeof v === "number" && Number.isFinite(v)) {
    return BigInt(Math.floor(v));
  }
  return null;
}

/**
 * Refuses (Go's Admission.Check) an admission for another room than room,
 * or made more than maxAgeMs before or after nowMs (clocks differ, so the
 * window is the same on both sides), with a BadAdmissionError; so too a
 * negative maxAgeMs, and a time, nowMs or maxAgeMs that is not a finite
 * number or a bigint. nowMs is Unix milliseconds (Date.now()).
 * @param {Admission} a
 * @param {string} room
 * @param {number|bigint} nowMs
 * @param {number|bigint} maxAgeMs
 * @returns {void}
 */
export function checkAdmission(a, room, nowMs, maxAgeMs) {
  if (a.room !== room) {
    throw new BadAdmissionError(`for room ${JSON.stringify(a.room)}, not ${JSON.stringify(room)}`);
  }
  const window = wholeMillis(maxAgeMs);
  if (window === null) {
    throw new BadAdmissionError(`maximum age ${String(maxAgeMs)} is not a number of milliseconds`);
  }
  if (window < 0n || (typeof maxAgeMs === "number" && maxAgeMs < 0)) {
    throw new BadAdmissionError(`negative maximum age ${String(maxAgeMs)} ms`);
  }
  const at = wholeMillis(nowMs);
  if (at === null) {
    throw new BadAdmissionError(`now ${String(nowMs)} is not a number of milliseconds`);
  }
  const made = typeof a.time === "bigint" ? a.time : typeof a.time === "number" && Number.isSafeInteger(a.time) ? BigInt(a.time) : null;
  if (made === null || made < 0n || made > I64_MAX) {
    throw new BadAdmissionError(`time ${String(a.time)} is not Unix milliseconds`);
  }
  if (made < at) {
    const d = at - made;
    if (d > window) {
      throw new BadAdmissionError(`made ${d} ms before now, more than ${window} ms`);
    }
  } else {
    const d = made - at;
    if (d > window) {
      throw new BadAdmissionError(`made ${d} ms after now, more than ${window} ms`);
    }
  }
}
