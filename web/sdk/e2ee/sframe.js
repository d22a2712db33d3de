// @ts-check
/**
 * @file SFrame (RFC 9605) for the browser: the frame encryption of Sotto's
 * end-to-end encryption, byte for byte what media/sframe does in Go.
 *
 * It holds the header (section 4.3), the five cipher suites with key and
 * salt derivation (sections 4.4.2 and 4.5), the sender-key ratchet of
 * section 5.1, a Sender that never reuses a counter and a Receiver with
 * the same replay window as media/sframe/receiver.go (1024 counters, a
 * 2^20 limit on forward jumps, moved only by frames that authenticate).
 *
 * KIDs and counters are 64-bit: they are BigInts here, so that every value
 * up to 2^64-1 is exact. Functions that take one also take a safe integer
 * Number. Every primitive is WebCrypto's (HMAC, HKDF, AES-GCM, AES-CTR);
 * the AES-CTR + HMAC suites are the composition of section 4.5.1.
 */

/** AES_128_CTR_HMAC_SHA256_80: AES-CTR + HMAC-SHA256 with an 80-bit tag. */
export const AES_128_CTR_HMAC_SHA256_80 = 0x0001;
/** AES_128_CTR_HMAC_SHA256_64: AES-CTR + HMAC-SHA256 with a 64-bit tag. */
export const AES_128_CTR_HMAC_SHA256_64 = 0x0002;
/** AES_128_CTR_HMAC_SHA256_32: AES-CTR + HMAC-SHA256 with a 32-bit tag. */
export const AES_128_CTR_HMAC_SHA256_32 = 0x0003;
/** AES_128_GCM_SHA256_128: Sotto's default suite. */
export const AES_128_GCM_SHA256_128 = 0x0004;
/** AES_256_GCM_SHA512_128. */
export const AES_256_GCM_SHA512_128 = 0x0005;

/** The largest SFrame header: the config byte and 8 bytes each of KID and CTR. */
export const MAX_HEADER_SIZE = 17;

/** The replay window when ReceiverOptions.window is 0 (see media/sframe). */
export const DEFAULT_WINDOW = 1024;
/** The largest replay window a Receiver keeps. */
export const MAX_WINDOW = 1 << 16;
/** The largest forward jump of the counter accepted when ReceiverOptions.maxJump is 0. */
export const DEFAULT_MAX_JUMP = 1n << 20n;

/** 2^64 - 1, the largest KID or counter. */
export const MAX_UINT64 = (1n << 64n) - 1n;

/**
 * @typedef {object} SuiteParams The constants of RFC 9605 table 1 for one suite.
 * @property {string} name   the registry name
 * @property {number} nh     hash output size
 * @property {number} nka    AES key size inside the CTR+HMAC composition; 0 for GCM
 * @property {number} nk     AEAD key size
 * @property {number} nn     nonce size
 * @property {number} nt     tag size
 * @property {"SHA-256"|"SHA-512"} hash the suite's hash, as WebCrypto names it
 */

/** @type {ReadonlyMap<number, Readonly<SuiteParams>>} */
const SUITES = new Map([
  [AES_128_CTR_HMAC_SHA256_80, { name: "AES_128_CTR_HMAC_SHA256_80", nh: 32, nka: 16, nk: 48, nn: 12, nt: 10, hash: "SHA-256" }],
  [AES_128_CTR_HMAC_SHA256_64, { name: "AES_128_CTR_HMAC_SHA256_64", nh: 32, nka: 16, nk: 48, nn: 12, nt: 8, hash: "SHA-256" }],
  [AES_128_CTR_HMAC_SHA256_32, { name: "AES_128_CTR_HMAC_SHA256_32", nh: 32, nka: 16, nk: 48, nn: 12, nt: 4, hash: "SHA-256" }],
  [AES_128_GCM_SHA256_128, { name: "AES_128_GCM_SHA256_128", nh: 32, nka: 0, nk: 16, nn: 12, nt: 16, hash: "SHA-256" }],
  [AES_256_GCM_SHA512_128, { name: "AES_256_GCM_SHA512_128", nh: 64, nka: 0, nk: 32, nn: 12, nt: 16, hash: "SHA-512" }],
]);

/**
 * Why an SFrame operation failed, as media/sframe's sentinel errors:
 * "header" (ErrHeader), "unknown-kid" (ErrUnknownKID), "auth" (ErrAuth),
 * "replay" (ErrReplay), "too-old" (ErrTooOld), "too-far-ahead"
 * (ErrTooFarAhead), "counter-exhausted" (ErrCounterExhausted),
 * "unsupported-suite" (ErrUnsupportedSuite) and "invalid" (a bad argument).
 * @typedef {"header"|"unknown-kid"|"auth"|"replay"|"too-old"|"too-far-ahead"|"counter-exhausted"|"unsupported-suite"|"invalid"} SFrameErrorCode
 */

/** An SFrame failure; `code` says which kind, as errors.Is does in Go. */
export class SFrameError extends Error {
  /**
   * @param {SFrameErrorCode} code
   * @param {string} message
   * @param {Header} [header] the frame's header, when it parsed
   */
  constructor(code, message, header) {
    super(`sframe: ${message}`);
    this.name = "SFrameError";
    /** @type {SFrameErrorCode} */
    this.code = code;
    /** @type {Header|undefined} */
    this.header = header;
  }
}

/**
 * An SFrame header: the key ID that selects the key and the counter that
 * makes the nonce.
 * @typedef {object} Header
 * @property {bigint} kid
 * @property {bigint} ctr
 */

/**
 * Returns the suite's constants, or throws an "unsupported-suite" SFrameError.
 * @param {number} suite
 * @returns {Readonly<SuiteParams>}
 */
export function suiteParams(suite) {
  const p = SUITES.get(suite);
  if (!p) {
    throw new SFrameError("unsupported-suite", `unsupported cipher suite 0x${hex16(suite)}`);
  }
  return p;
}

/**
 * Reports whether suite is one of the five suites of RFC 9605.
 * @param {number} suite
 * @returns {boolean}
 */
export function isSupportedSuite(suite) {
  return SUITES.has(suite);
}

/**
 * Returns the suite's registry name, such as "AES_128_GCM_SHA256_128".
 * @param {number} suite
 * @returns {string}
 */
export function suiteName(suite) {
  return SUITES.get(suite)?.name ?? `CipherSuite(0x${hex16(suite)})`;
}

/** @param {number} v */
function hex16(v) {
  return (Number(v) >>> 0).toString(16).padStart(4, "0");
}

/**
 * Converts a KID or counter to a BigInt in [0, 2^64-1], refusing anything
 * else (a Number that is not a safe integer is refused: it may have lost
 * precision already).
 * @param {bigint|number} v
 * @param {string} what
 * @returns {bigint}
 */
export function toUint64(v, what) {
  let b;
  if (typeof v === "bigint") {
    b = v;
  } else if (typeof v === "number" && Number.isSafeInteger(v)) {
    b = BigInt(v);
  } else {
    throw new SFrameError("invalid", `${what} ${String(v)} is not an integer (use a BigInt above 2^53)`);
  }
  if (b < 0n || b > MAX_UINT64) {
    throw new SFrameError("invalid", `${what} ${b} is outside 0..2^64-1`);
  }
  return b;
}

/**
 * How many bytes v takes after the config byte: none when it fits in the
 * 3-bit field, else its minimal big-endian length.
 * @param {bigint} v
 * @returns {number}
 */
function extendedSize(v) {
  if (v <= 7n) {
    return 0;
  }
  let n = 0;
  for (let x = v; x > 0n; x >>= 8n) {
    n++;
  }
  return n;
}

/**
 * Returns the length of the header encoding kid and ctr: 1 to MAX_HEADER_SIZE.
 * @param {bigint|number} kid
 * @param {bigint|number} ctr
 * @returns {number}
 */
export function headerSize(kid, ctr) {
  return 1 + extendedSize(toUint64(kid, "KID")) + extendedSize(toUint64(ctr, "CTR"));
}

/**
 * Encodes an SFrame header in the minimal encoding RFC 9605 section 4.3
 * requires: a value of 0 to 7 in the config byte, a larger one in as few
 * big-endian bytes as it needs.
 * @param {bigint|number} kid
 * @param {bigint|number} ctr
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function encodeHeader(kid, ctr) {
  const k = toUint64(kid, "KID");
  const c = toUint64(ctr, "CTR");
  const kn = extendedSize(k);
  const cn = extendedSize(c);
  const out = new Uint8Array(1 + kn + cn);
  let config = 0;
  config |= kn === 0 ? Number(k) << 4 : 0x80 | ((kn - 1) << 4);
  config |= cn === 0 ? Number(c) : 0x08 | (cn - 1);
  out[0] = config;
  putBigEndian(out, 1, k, kn);
  putBigEndian(out, 1 + kn, c, cn);
  return out;
}

/**
 * @param {Uint8Array<ArrayBuffer>} b
 * @param {number} at
 * @param {bigint} v
 * @param {number} n
 */
function putBigEndian(b, at, v, n) {
  for (let i = n - 1; i >= 0; i--) {
    b[at + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

/**
 * Parses the SFrame header at the start of b; the ciphertext follows at
 * b.subarray(size). Throws a "header" SFrameError when b is empty, ends
 * inside the header, or encodes a value in more bytes than it needs (the
 * RFC requires the minimal encoding, and accepting only it gives each
 * header exactly one byte string).
 * @param {Uint8Array<ArrayBuffer>} b
 * @returns {{kid: bigint, ctr: bigint, size: number}}
 */
export function parseHeader(b) {
  if (b.length === 0) {
    throw new SFrameError("header", "malformed header: empty");
  }
  const config = b[0];
  const [kid, at] = parseField(b, 1, config >> 4, "KID");
  const [ctr, size] = parseField(b, at, config & 0x0f, "CTR");
  return { kid, ctr, size };
}

/**
 * Reads one of the two fields given its 4 config bits.
 * @param {Uint8Array<ArrayBuffer>} b
 * @param {number} at
 * @param {number} nibble
 * @param {string} name
 * @returns {[bigint, number]}
 */
function parseField(b, at, nibble, name) {
  if ((nibble & 0x08) === 0) {
    return [BigInt(nibble), at];
  }
  const n = (nibble & 0x07) + 1;
  if (b.length - at < n) {
    throw new SFrameError("header", `malformed header: ${name} of ${n} bytes, ${b.length - at} left`);
  }
  let v = 0n;
  for (let i = at; i < at + n; i++) {
    v = (v << 8n) | BigInt(b[i]);
  }
  if (extendedSize(v) !== n) {
    throw new SFrameError("header", `malformed header: ${name} ${v} in ${n} bytes is not the minimal encoding`);
  }
  return [v, at + n];
}

// The HKDF labels of RFC 9605, verbatim. The key and salt labels are
// followed by the KID (8 bytes, big-endian, not the header's compact form)
// and the cipher suite (2 bytes, big-endian).
const KEY_LABEL = "SFrame 1.0 Secret key ";
const SALT_LABEL = "SFrame 1.0 Secret salt ";
const RATCHET_LABEL = "SFrame 1.0 Ratchet";

const ascii = new TextEncoder();

/**
 * @param {string} prefix
 * @param {bigint} kid
 * @param {number} suite
 * @returns {Uint8Array<ArrayBuffer>}
 */
function label(prefix, kid, suite) {
  const p = ascii.encode(prefix);
  const out = new Uint8Array(p.length + 10);
  out.set(p);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(p.length, kid);
  dv.setUint16(p.length + 8, suite);
  return out;
}

/**
 * The HKDF info of the key derivation: "SFrame 1.0 Secret key " || KID
 * (8 bytes) || suite (2 bytes).
 * @param {bigint|number} kid
 * @param {number} suite
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function keyLabel(kid, suite) {
  return label(KEY_LABEL, toUint64(kid, "KID"), suite);
}

/**
 * The HKDF info of the salt derivation: "SFrame 1.0 Secret salt " || KID
 * (8 bytes) || suite (2 bytes).
 * @param {bigint|number} kid
 * @param {number} suite
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function saltLabel(kid, suite) {
  return label(SALT_LABEL, toUint64(kid, "KID"), suite);
}

/**
 * HKDF (extract with an all-zero salt of Nh bytes, which RFC 5869 makes
 * the same as an empty one, then expand) of ikm, via WebCrypto.
 * @param {SuiteParams} p
 * @param {Uint8Array<ArrayBuffer>} ikm
 * @param {Uint8Array<ArrayBuffer>} info
 * @param {number} length bytes
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
async function hkdf(p, ikm, info, length) {
  const k = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "HKDF", hash: p.hash, salt: new Uint8Array(p.nh), info }, k, 8 * length);
  return new Uint8Array(bits);
}

/**
 * @param {Uint8Array<ArrayBuffer>} baseKey
 */
function checkBaseKey(baseKey) {
  if (!(baseKey instanceof Uint8Array) || baseKey.length === 0) {
    throw new SFrameError("invalid", "empty base key");
  }
}

/**
 * RFC 9605 section 4.4.2's derive_key_salt with its intermediate secret
 * (HKDF-Extract("", base_key)), for checking against the test vectors.
 * @param {number} suite
 * @param {bigint|number} kid
 * @param {Uint8Array<ArrayBuffer>} baseKey any non-zero length
 * @returns {Promise<{secret: Uint8Array<ArrayBuffer>, key: Uint8Array<ArrayBuffer>, salt: Uint8Array<ArrayBuffer>}>}
 */
export async function deriveSchedule(suite, kid, baseKey) {
  const p = suiteParams(suite);
  const k = toUint64(kid, "KID");
  checkBaseKey(baseKey);
  const hmacKey = await crypto.subtle.importKey("raw", new Uint8Array(p.nh), { name: "HMAC", hash: p.hash }, false, ["sign"]);
  const secret = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, baseKey));
  const [key, salt] = await Promise.all([
    hkdf(p, baseKey, label(KEY_LABEL, k, suite), p.nk),
    hkdf(p, baseKey, label(SALT_LABEL, k, suite), p.nn),
  ]);
  return { secret, key, salt };
}

/**
 * The next base key of the sender-key ratchet of RFC 9605 section 5.1:
 * HKDF-Expand(HKDF-Extract("", base_key), "SFrame 1.0 Ratchet", Nh) with
 * the suite's hash. One way: the old key cannot be computed from the new.
 * @param {number} suite
 * @param {Uint8Array<ArrayBuffer>} baseKey
 * @returns {Promise<Uint8Array<ArrayBuffer>>} Nh bytes
 */
export async function ratchet(suite, baseKey) {
  const p = suiteParams(suite);
  checkBaseKey(baseKey);
  return hkdf(p, baseKey, ascii.encode(RATCHET_LABEL), p.nh);
}

/**
 * Concatenates byte arrays into a new one.
 * @param {...Uint8Array<ArrayBuffer>} parts
 * @returns {Uint8Array<ArrayBuffer>}
 */
function concat(...parts) {
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
 * AAD = header || metadata (RFC 9605 section 4.4.3).
 * @param {Uint8Array<ArrayBuffer>} header
 * @param {Uint8Array<ArrayBuffer>} metadata
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function aad(header, metadata) {
  return concat(header, metadata);
}

/**
 * The nonce: salt XOR the counter, the counter big-endian and left-padded
 * to the salt's size (RFC 9605 section 4.4.3).
 * @param {Uint8Array<ArrayBuffer>} salt 12 bytes
 * @param {bigint|number} ctr
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function nonce(salt, ctr) {
  let c = toUint64(ctr, "CTR");
  const n = salt.slice();
  for (let i = 0; i < 8; i++) {
    n[n.length - 1 - i] ^= Number(c & 0xffn);
    c >>= 8n;
  }
  return n;
}

/**
 * Compares two byte arrays in time that depends on their length only.
 * @param {Uint8Array<ArrayBuffer>} a
 * @param {Uint8Array<ArrayBuffer>} b
 * @returns {boolean}
 */
function constantTimeEqual(a, b) {
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
 * An AEAD as SFrame uses it: seal appends the tag, open checks and strips
 * it, throwing an "auth" SFrameError on any failure.
 * @typedef {object} AEAD
 * @property {number} overhead the tag size
 * @property {(nonce: Uint8Array<ArrayBuffer>, plaintext: Uint8Array<ArrayBuffer>, aad: Uint8Array<ArrayBuffer>) => Promise<Uint8Array<ArrayBuffer>>} seal
 * @property {(nonce: Uint8Array<ArrayBuffer>, ciphertext: Uint8Array<ArrayBuffer>, aad: Uint8Array<ArrayBuffer>) => Promise<Uint8Array<ArrayBuffer>>} open
 */

/** AES-GCM with a 128-bit tag (suites 0x0004 and 0x0005). @implements {AEAD} */
class GCM {
  /** @param {CryptoKey} key */
  constructor(key) {
    this.key = key;
    this.overhead = 16;
  }

  /** @type {AEAD["seal"]} */
  async seal(nonce, plaintext, aad) {
    const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 }, this.key, plaintext);
    return new Uint8Array(ct);
  }

  /** @type {AEAD["open"]} */
  async open(nonce, ciphertext, aad) {
    if (ciphertext.length < this.overhead) {
      throw new SFrameError("auth", "authentication failed: shorter than the tag");
    }
    try {
      const pt = await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 }, this.key, ciphertext);
      return new Uint8Array(pt);
    } catch {
      throw new SFrameError("auth", "authentication failed");
    }
  }
}

/**
 * The AEAD of RFC 9605 section 4.5.1: AES-CTR, then an HMAC over lengths,
 * nonce, AAD and ciphertext, truncated to the suite's tag (suites
 * 0x0001-0x0003). Build it with CtrHmac.create.
 * @implements {AEAD}
 */
export class CtrHmac {
  /**
   * @param {CryptoKey} encKey
   * @param {CryptoKey} authKey
   * @param {number} tagSize
   */
  constructor(encKey, authKey, tagSize) {
    this.encKey = encKey;
    this.authKey = authKey;
    this.overhead = tagSize;
  }

  /**
   * derive_subkeys: the first Nka bytes of the key encrypt, the remaining
   * Nh authenticate.
   * @param {number} suite
   * @param {Uint8Array<ArrayBuffer>} key Nk bytes
   * @returns {{encKey: Uint8Array<ArrayBuffer>, authKey: Uint8Array<ArrayBuffer>}}
   */
  static splitKey(suite, key) {
    const p = suiteParams(suite);
    if (p.nka === 0) {
      throw new SFrameError("invalid", `${p.name} is not an AES-CTR+HMAC suite`);
    }
    if (key.length !== p.nka + p.nh) {
      throw new SFrameError("invalid", `${p.name} needs a ${p.nka + p.nh}-byte key, got ${key.length}`);
    }
    return { encKey: key.slice(0, p.nka), authKey: key.slice(p.nka) };
  }

  /**
   * Imports a suite's Nk-byte key as the CTR+HMAC AEAD.
   * @param {number} suite one of 0x0001-0x0003
   * @param {Uint8Array<ArrayBuffer>} key
   * @returns {Promise<CtrHmac>}
   */
  static async create(suite, key) {
    const p = suiteParams(suite);
    const { encKey, authKey } = CtrHmac.splitKey(suite, key);
    const [enc, auth] = await Promise.all([
      crypto.subtle.importKey("raw", encKey, "AES-CTR", false, ["encrypt", "decrypt"]),
      crypto.subtle.importKey("raw", authKey, { name: "HMAC", hash: p.hash }, false, ["sign"]),
    ]);
    return new CtrHmac(enc, auth, p.nt);
  }

  /**
   * compute_tag: HMAC(auth_key, len(aad) || len(ct) || Nt || nonce || aad
   * || ct), each length 8 bytes big-endian, truncated to Nt.
   * @param {Uint8Array<ArrayBuffer>} nonce
   * @param {Uint8Array<ArrayBuffer>} aad
   * @param {Uint8Array<ArrayBuffer>} ct
   * @returns {Promise<Uint8Array<ArrayBuffer>>}
   */
  async tag(nonce, aad, ct) {
    const lengths = new Uint8Array(24);
    const dv = new DataView(lengths.buffer);
    dv.setBigUint64(0, BigInt(aad.length));
    dv.setBigUint64(8, BigInt(ct.length));
    dv.setBigUint64(16, BigInt(this.overhead));
    const mac = await crypto.subtle.sign("HMAC", this.authKey, concat(lengths, nonce, aad, ct));
    return new Uint8Array(mac, 0, this.overhead);
  }

  /**
   * AES-CTR whose initial counter block is the nonce followed by four zero
   * bytes, the whole block counting up (as Go's cipher.NewCTR does).
   * @param {Uint8Array<ArrayBuffer>} nonce
   * @param {Uint8Array<ArrayBuffer>} data
   * @returns {Promise<Uint8Array<ArrayBuffer>>}
   */
  async ctr(nonce, data) {
    const counter = new Uint8Array(16);
    counter.set(nonce);
    return new Uint8Array(await crypto.subtle.encrypt({ name: "AES-CTR", counter, length: 128 }, this.encKey, data));
  }

  /** @type {AEAD["seal"]} */
  async seal(nonce, plaintext, aad) {
    if (nonce.length !== 12) {
      throw new SFrameError("invalid", "bad nonce length");
    }
    const ct = await this.ctr(nonce, plaintext);
    return concat(ct, await this.tag(nonce, aad, ct));
  }

  /** @type {AEAD["open"]} */
  async open(nonce, ciphertext, aad) {
    if (nonce.length !== 12 || ciphertext.length < this.overhead) {
      throw new SFrameError("auth", "authentication failed");
    }
    const ct = ciphertext.subarray(0, ciphertext.length - this.overhead);
    const tag = ciphertext.subarray(ciphertext.length - this.overhead);
    // Authenticate before decrypting: nothing unauthenticated is produced.
    if (!constantTimeEqual(await this.tag(nonce, aad, ct), tag)) {
      throw new SFrameError("auth", "authentication failed");
    }
    return this.ctr(nonce, ct);
  }
}

/**
 * One frame may be at most this large: the limit of media/sframe (GCM's
 * and the CTR block counter's), far beyond any frame.
 */
const MAX_PLAINTEXT = (2 ** 32 - 2) * 16;

/**
 * One derived SFrame key: the AEAD key and salt for one KID and base key
 * (RFC 9605 section 4.4.2). Immutable. Make one with Key.derive.
 */
export class Key {
  /**
   * @param {number} suite
   * @param {bigint} kid
   * @param {Uint8Array<ArrayBuffer>} keyBytes sframe_key, kept to recognise a reinstalled key
   * @param {Uint8Array<ArrayBuffer>} salt
   * @param {AEAD} aead
   */
  constructor(suite, kid, keyBytes, salt, aead) {
    /** @readonly */
    this.suite = suite;
    /** @readonly */
    this.kid = kid;
    /** @readonly */
    this.salt = salt;
    /** @readonly */
    this.aead = aead;
    /** @readonly @private */
    this.keyBytes = keyBytes;
  }

  /**
   * Derives the key and salt for kid from baseKey under suite.
   * @param {number} suite
   * @param {bigint|number} kid
   * @param {Uint8Array<ArrayBuffer>} baseKey any non-zero length
   * @returns {Promise<Key>}
   */
  static async derive(suite, kid, baseKey) {
    const k = toUint64(kid, "KID");
    const { key, salt } = await deriveSchedule(suite, k, baseKey);
    return Key.fromDerived(suite, k, key, salt);
  }

  /**
   * Builds a Key from derived material of the right sizes.
   * @param {number} suite
   * @param {bigint|number} kid
   * @param {Uint8Array<ArrayBuffer>} key Nk bytes
   * @param {Uint8Array<ArrayBuffer>} salt Nn bytes
   * @returns {Promise<Key>}
   */
  static async fromDerived(suite, kid, key, salt) {
    const p = suiteParams(suite);
    if (key.length !== p.nk || salt.length !== p.nn) {
      throw new SFrameError("invalid", `${p.name} needs a ${p.nk}-byte key and ${p.nn}-byte salt, got ${key.length} and ${salt.length}`);
    }
    /** @type {AEAD} */
    let aead;
    if (p.nka === 0) {
      aead = new GCM(await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"]));
    } else {
      aead = await CtrHmac.create(suite, key);
    }
    return new Key(suite, toUint64(kid, "KID"), key.slice(), salt.slice(), aead);
  }

  /**
   * Reports whether o is the same key: same suite, KID and derived bytes.
   * @param {Key} o
   * @returns {boolean}
   */
  sameAs(o) {
    return this.suite === o.suite && this.kid === o.kid && constantTimeEqual(this.salt, o.salt) && constantTimeEqual(this.keyBytes, o.keyBytes);
  }

  /**
   * The nonce of counter ctr under this key.
   * @param {bigint|number} ctr
   * @returns {Uint8Array<ArrayBuffer>}
   */
  nonce(ctr) {
    return nonce(this.salt, ctr);
  }

  /**
   * RFC 9605's encrypt: header || AEAD ciphertext || tag. The caller makes
   * sure ctr is never used twice with this key (a Sender does).
   * @param {bigint|number} ctr
   * @param {Uint8Array<ArrayBuffer>} metadata authenticated, not encrypted
   * @param {Uint8Array<ArrayBuffer>} plaintext
   * @returns {Promise<Uint8Array<ArrayBuffer>>}
   */
  async seal(ctr, metadata, plaintext) {
    if (plaintext.length > MAX_PLAINTEXT) {
      throw new SFrameError("invalid", `plaintext of ${plaintext.length} bytes is over the limit`);
    }
    const header = encodeHeader(this.kid, ctr);
    const ct = await this.aead.seal(this.nonce(ctr), plaintext, aad(header, metadata));
    return concat(header, ct);
  }

  /**
   * RFC 9605's decrypt with this key alone: parses the header, checks that
   * it names this key's KID, and authenticates header, metadata and
   * ciphertext. It keeps no state, so it accepts a replayed frame; a
   * Receiver adds the replay window.
   * @param {Uint8Array<ArrayBuffer>} metadata
   * @param {Uint8Array<ArrayBuffer>} frame header || ciphertext || tag
   * @returns {Promise<{plaintext: Uint8Array<ArrayBuffer>, header: Header}>}
   */
  async open(metadata, frame) {
    const { kid, ctr, size } = parseHeader(frame);
    const header = { kid, ctr };
    if (kid !== this.kid) {
      throw new SFrameError("unknown-kid", `unknown KID: frame has KID ${kid}, key is for KID ${this.kid}`, header);
    }
    const plaintext = await this.openParsed(header, frame.subarray(0, size), metadata, frame.subarray(size));
    return { plaintext, header };
  }

  /**
   * Authenticates and decrypts one frame whose header was parsed already
   * (for Receiver).
   * @param {Header} h
   * @param {Uint8Array<ArrayBuffer>} headerBytes
   * @param {Uint8Array<ArrayBuffer>} metadata
   * @param {Uint8Array<ArrayBuffer>} ct ciphertext || tag
   * @returns {Promise<Uint8Array<ArrayBuffer>>}
   */
  async openParsed(h, headerBytes, metadata, ct) {
    if (ct.length < this.aead.overhead) {
      throw new SFrameError("auth", `authentication failed: KID ${h.kid} CTR ${h.ctr}: ${ct.length} bytes after the header, the tag alone is ${this.aead.overhead}`, h);
    }
    try {
      return await this.aead.open(this.nonce(h.ctr), ct, aad(headerBytes, metadata));
    } catch {
      throw new SFrameError("auth", `authentication failed: KID ${h.kid} CTR ${h.ctr}`, h);
    }
  }
}

/**
 * Encrypts frames under one KID with a counter that starts at 0 and grows
 * by one per frame, so no (key, nonce) pair is ever used twice. The base
 * key it was made from must be used by this Sender only. Concurrent
 * encrypt calls each take the next counter before any await.
 */
export class Sender {
  /** @param {Key} key */
  constructor(key) {
    /** @readonly */
    this.key = key;
    /** @private */
    this.next = 0n;
    /** @private */
    this.exhausted = false;
  }

  /**
   * A Sender for kid whose key is derived from baseKey under suite.
   * @param {number} suite
   * @param {bigint|number} kid
   * @param {Uint8Array<ArrayBuffer>} baseKey
   * @returns {Promise<Sender>}
   */
  static async create(suite, kid, baseKey) {
    return new Sender(await Key.derive(suite, kid, baseKey));
  }

  /** The KID the Sender encrypts under. */
  get kid() {
    return this.key.kid;
  }

  /** The Sender's cipher suite. */
  get suite() {
    return this.key.suite;
  }

  /**
   * Sets the counter of the next frame. It only moves forward: going back
   * would reuse nonces.
   * @param {bigint|number} next
   */
  setCounter(next) {
    const n = toUint64(next, "CTR");
    if (this.exhausted) {
      throw new SFrameError("counter-exhausted", `counter exhausted: KID ${this.key.kid}`);
    }
    if (n < this.next) {
      throw new SFrameError("invalid", `KID ${this.key.kid}: counter cannot move back from ${this.next} to ${n}`);
    }
    this.next = n;
  }

  /**
   * Encrypts plaintext as one SFrame ciphertext (header || ciphertext ||
   * tag), authenticating metadata with it. After the frame with counter
   * 2^64-1 every call throws a "counter-exhausted" SFrameError.
   * @param {Uint8Array<ArrayBuffer>} metadata
   * @param {Uint8Array<ArrayBuffer>} plaintext
   * @returns {Promise<Uint8Array<ArrayBuffer>>}
   */
  async encrypt(metadata, plaintext) {
    if (plaintext.length > MAX_PLAINTEXT) {
      throw new SFrameError("invalid", `plaintext of ${plaintext.length} bytes is over the limit`);
    }
    if (this.exhausted) {
      throw new SFrameError("counter-exhausted", `counter exhausted: KID ${this.key.kid}`);
    }
    const ctr = this.next;
    if (ctr === MAX_UINT64) {
      this.exhausted = true;
    } else {
      this.next++;
    }
    return this.key.seal(ctr, metadata, plaintext);
  }
}

/**
 * An RFC 3711 style sliding window over one KID's counters: the highest
 * accepted counter and a bitmap, a ring indexed by counter modulo its
 * size, of which counters below it were accepted.
 */
class ReplayWindow {
  /**
   * @param {number} size
   * @param {bigint} maxJump
   */
  constructor(size, maxJump) {
    this.size = BigInt(size);
    this.maxJump = maxJump;
    this.started = false;
    this.top = 0n;
    // The ring is a whole number of 64-bit words, as in Go.
    this.ringBits = Math.ceil(size / 64) * 64;
    this.bits = new Uint32Array(this.ringBits / 32);
  }

  /** @param {bigint} ctr */
  index(ctr) {
    return Number(ctr % BigInt(this.ringBits));
  }

  /** @param {number} i */
  seenAt(i) {
    return (this.bits[i >>> 5] & (1 << (i & 31))) !== 0;
  }

  /**
   * @param {number} i
   * @param {boolean} on
   */
  setAt(i, on) {
    if (on) {
      this.bits[i >>> 5] |= 1 << (i & 31);
    } else {
      this.bits[i >>> 5] &= ~(1 << (i & 31));
    }
  }

  /**
   * Throws unless a frame with h's counter may be accepted.
   * @param {Header} h
   */
  check(h) {
    if (!this.started) {
      return;
    }
    const ctr = h.ctr;
    if (ctr > this.top) {
      if (ctr - this.top > this.maxJump) {
        throw new SFrameError("too-far-ahead", `counter too far ahead of the replay window: KID ${h.kid} CTR ${ctr} is ${ctr - this.top} past the highest accepted ${this.top} (limit ${this.maxJump})`, h);
      }
      return;
    }
    if (this.top - ctr >= this.size) {
      throw new SFrameError("too-old", `counter below the replay window: KID ${h.kid} CTR ${ctr}, highest accepted ${this.top}, window ${this.size}`, h);
    }
    if (this.seenAt(this.index(ctr))) {
      throw new SFrameError("replay", `counter already seen: KID ${h.kid} CTR ${ctr}`, h);
    }
  }

  /**
   * Records ctr, which check has passed.
   * @param {bigint} ctr
   */
  accept(ctr) {
    if (!this.started) {
      this.started = true;
      this.top = ctr;
    } else if (ctr > this.top) {
      // The counters between the old and the new top were not seen;
      // their ring slots still hold counters a ring's length older.
      const jump = ctr - this.top;
      if (jump >= BigInt(this.ringBits)) {
        this.bits.fill(0);
      } else {
        let i = this.index(this.top + 1n);
        for (let n = Number(jump) - 1; n > 0; n--) {
          this.setAt(i, false);
          i = (i + 1) % this.ringBits;
        }
      }
      this.top = ctr;
    }
    this.setAt(this.index(ctr), true);
  }
}

/**
 * A Receiver's anti-replay settings (RFC 9605 section 9.3 leaves
 * anti-replay to the application); zero values give the defaults.
 * @typedef {object} ReceiverOptions
 * @property {number} [window] counters accepted below the highest one, each once: 0 means DEFAULT_WINDOW, more than MAX_WINDOW means MAX_WINDOW
 * @property {bigint} [maxJump] how far above the highest accepted counter a frame's may be: 0n means DEFAULT_MAX_JUMP, MAX_UINT64 turns the check off
 */

/**
 * Decrypts frames from any number of KIDs, holding one key and one replay
 * window per KID. The window moves only when a frame authenticates, so
 * forged frames cannot disturb it. Frames of several tracks may be in
 * flight at once: the counter is checked before decryption and again,
 * when it is recorded, after it, so of two copies of one frame only one
 * is accepted.
 */
export class Receiver {
  /**
   * @param {number} suite
   * @param {ReceiverOptions} [opts]
   */
  constructor(suite, opts = {}) {
    /** @readonly */
    this.suite = suite;
    let window = opts.window ?? 0;
    if (window === 0) {
      window = DEFAULT_WINDOW;
    } else if (window > MAX_WINDOW) {
      window = MAX_WINDOW;
    }
    /** @private */
    this.window = window;
    /** @private */
    this.maxJump = opts.maxJump || DEFAULT_MAX_JUMP;
    /** @private @type {Map<bigint, {key: Key, win: ReplayWindow}>} */
    this.keys = new Map();
    /** @private @type {Map<bigint, object>} KIDs whose key is being derived, by the call's token */
    this.pending = new Map();
  }

  /**
   * Installs the key derived from baseKey for kid with an empty replay
   * window. Installing the key a KID already has keeps its window, so
   * redistributing keys cannot reopen replays; a different key replaces
   * the old one and its window. Of overlapping calls for one KID the last
   * wins, and a removeKey meanwhile cancels the install.
   * @param {bigint|number} kid
   * @param {Uint8Array<ArrayBuffer>} baseKey
   * @returns {Promise<void>}
   */
  async setKey(kid, baseKey) {
    const k = toUint64(kid, "KID");
    const token = {};
    this.pending.set(k, token);
    let key;
    try {
      key = await Key.derive(this.suite, k, baseKey);
    } catch (err) {
      if (this.pending.get(k) === token) {
        this.pending.delete(k);
      }
      throw err;
    }
    if (this.pending.get(k) !== token) {
      return;
    }
    this.pending.delete(k);
    const old = this.keys.get(k);
    if (old && old.key.sameAs(key)) {
      return;
    }
    this.keys.set(k, { key, win: new ReplayWindow(this.window, this.maxJump) });
  }

  /**
   * Forgets kid's key and replay window; its frames then fail with
   * "unknown-kid".
   * @param {bigint|number} kid
   */
  removeKey(kid) {
    const k = toUint64(kid, "KID");
    this.keys.delete(k);
    this.pending.delete(k);
  }

  /**
   * Reports whether a key for kid is installed.
   * @param {bigint|number} kid
   * @returns {boolean}
   */
  hasKey(kid) {
    return this.keys.has(toUint64(kid, "KID"));
  }

  /**
   * Decrypts one SFrame ciphertext (header || ciphertext || tag),
   * authenticating metadata with it. Throws an SFrameError: "header",
   * "unknown-kid", "auth", "replay", "too-old" or "too-far-ahead"; the
   * error carries the header whenever it parsed.
   * @param {Uint8Array<ArrayBuffer>} metadata
   * @param {Uint8Array<ArrayBuffer>} frame
   * @returns {Promise<{plaintext: Uint8Array<ArrayBuffer>, header: Header}>}
   */
  async decrypt(metadata, frame) {
    const { kid, ctr, size } = parseHeader(frame);
    const header = { kid, ctr };
    const rk = this.keys.get(kid);
    if (!rk) {
      throw new SFrameError("unknown-kid", `unknown KID: ${kid}`, header);
    }
    rk.win.check(header);
    const plaintext = await rk.key.openParsed(header, frame.subarray(0, size), metadata, frame.subarray(size));
    try {
      rk.win.check(header);
    } catch (err) {
      plaintext.fill(0);
      throw err;
    }
    rk.win.accept(ctr);
    return { plaintext, header };
  }
}
