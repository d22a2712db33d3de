// @ts-check
/**
 * @file HPKE (RFC 9180) in base mode with the one suite key messages use,
 * on WebCrypto alone: DHKEM(X25519, HKDF-SHA256) (KEM 0x0020),
 * HKDF-SHA256 (KDF 0x0001) and AES-256-GCM (AEAD 0x0002), as Go's
 * crypto/hpke does it for media/e2ee. X25519 is WebCrypto's deriveBits,
 * the HKDF steps are HMAC-SHA256 (WebCrypto's HKDF does extract and
 * expand in one call, and HPKE labels each on its own), the AEAD is
 * WebCrypto's AES-GCM.
 *
 * Single-shot sealBase and openBase are what key messages need; the
 * contexts behind them, deriveKeyPair and a way to give the sender its
 * ephemeral key are there for RFC 9180's test vector
 * (TestBrowserHPKEVectorRFC9180).
 */

import { BadPublicKeyError, concatBytes, x25519 } from "./identity.js";

/** RFC 9180's identifiers of the suite. */
export const KEM_ID = 0x0020;
export const KDF_ID = 0x0001;
export const AEAD_ID = 0x0002;

const N_SECRET = 32; // DHKEM(X25519, HKDF-SHA256): Nsecret
const N_ENC = 32; // Nenc = Npk
const N_SK = 32;
const N_H = 32; // SHA-256
const N_K = 32; // AES-256-GCM
const N_N = 12;
const N_T = 16;
const MODE_BASE = 0x00;

/** The length of enc, the sender's ephemeral public key. */
export const ENC_SIZE = N_ENC;
/** How many bytes the AEAD adds to a plaintext. */
export const TAG_SIZE = N_T;

const utf8 = new TextEncoder();

/**
 * @param {number} v
 * @returns {Uint8Array<ArrayBuffer>}
 */
function u16(v) {
  return new Uint8Array([(v >> 8) & 0xff, v & 0xff]);
}

const VERSION_LABEL = utf8.encode("HPKE-v1");
// The KEM's own suite_id (RFC 9180 section 4.1) and the whole scheme's
// (section 5.1).
const KEM_SUITE = concatBytes(utf8.encode("KEM"), u16(KEM_ID));
const HPKE_SUITE = concatBytes(utf8.encode("HPKE"), u16(KEM_ID), u16(KDF_ID), u16(AEAD_ID));

/** A failure to open a ciphertext (RFC 9180's OpenError). */
export class HPKEOpenError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(`hpke: cannot open: ${message}`);
    this.name = "HPKEOpenError";
  }
}

/**
 * HMAC-SHA256(key, data). An empty key is HashLen zero bytes, which HMAC
 * treats alike (keys are zero-padded to the block size) and WebCrypto
 * accepts, unlike an empty one.
 * @param {Uint8Array<ArrayBuffer>} key
 * @param {Uint8Array<ArrayBuffer>} data
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
async function hmac(key, data) {
  const k = await crypto.subtle.importKey("raw", key.length > 0 ? key : new Uint8Array(N_H), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data));
}

/**
 * HKDF-Expand (RFC 5869 section 2.3).
 * @param {Uint8Array<ArrayBuffer>} prk
 * @param {Uint8Array<ArrayBuffer>} info
 * @param {number} length at most 255 * 32
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
async function expand(prk, info, length) {
  if (!Number.isInteger(length) || length < 0 || length > 255 * N_H) {
    throw new RangeError(`hpke: cannot expand to ${length} bytes`);
  }
  const k = await crypto.subtle.importKey("raw", prk, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const out = new Uint8Array(Math.ceil(length / N_H) * N_H);
  let t = new Uint8Array(0);
  for (let i = 0; i * N_H < length; i++) {
    const block = new Uint8Array(await crypto.subtle.sign("HMAC", k, concatBytes(t, info, new Uint8Array([i + 1]))));
    out.set(block, i * N_H);
    t = block;
  }
  const r = out.slice(0, length);
  out.fill(0);
  return r;
}

/**
 * LabeledExtract (RFC 9180 section 4).
 * @param {Uint8Array<ArrayBuffer>} suite
 * @param {Uint8Array<ArrayBuffer>} salt
 * @param {string} label
 * @param {Uint8Array<ArrayBuffer>} ikm
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
function labeledExtract(suite, salt, label, ikm) {
  return hmac(salt, concatBytes(VERSION_LABEL, suite, utf8.encode(label), ikm));
}

/**
 * LabeledExpand (RFC 9180 section 4).
 * @param {Uint8Array<ArrayBuffer>} suite
 * @param {Uint8Array<ArrayBuffer>} prk
 * @param {string} label
 * @param {Uint8Array<ArrayBuffer>} info
 * @param {number} length
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
function labeledExpand(suite, prk, label, info, length) {
  if (length > 0xffff) {
    throw new RangeError(`hpke: cannot expand to ${length} bytes`);
  }
  return expand(prk, concatBytes(u16(length), VERSION_LABEL, suite, utf8.encode(label), info), length);
}

/**
 * ExtractAndExpand of DHKEM (RFC 9180 section 4.1): the KEM's shared
 * secret from the DH result and enc || pkR.
 * @param {Uint8Array<ArrayBuffer>} dh
 * @param {Uint8Array<ArrayBuffer>} kemContext
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
async function extractAndExpand(dh, kemContext) {
  const prk = await labeledExtract(KEM_SUITE, new Uint8Array(0), "eae_prk", dh);
  try {
    return await labeledExpand(KEM_SUITE, prk, "shared_secret", kemContext, N_SECRET);
  } finally {
    prk.fill(0);
  }
}

/**
 * An X25519 key pair: the private key a CryptoKey usable for deriveBits,
 * the public key its 32 bytes.
 * @typedef {{privateKey: CryptoKey, publicKey: Uint8Array<ArrayBuffer>}} KeyPair
 */

// PKCS #8 wrapping of a raw X25519 private key (RFC 8410): WebCrypto
// imports X25519 private keys in this form (or JWK, which wants the
// public key too), not raw.
const PKCS8_X25519 = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);
// The X25519 base point, u = 9: X25519(sk, 9) is sk's public key.
const BASE_POINT = new Uint8Array(32);
BASE_POINT[0] = 9;

/**
 * Imports a raw 32-byte X25519 private key (non-extractable) and computes
 * its public key.
 * @param {Uint8Array<ArrayBuffer>} sk
 * @returns {Promise<KeyPair>}
 */
export async function importPrivateKey(sk) {
  if (sk.length !== N_SK) {
    throw new RangeError(`hpke: private key of ${sk.length} bytes, want ${N_SK}`);
  }
  const der = concatBytes(PKCS8_X25519, sk);
  try {
    const privateKey = await crypto.subtle.importKey("pkcs8", der, { name: "X25519" }, false, ["deriveBits"]);
    return { privateKey, publicKey: await x25519(privateKey, BASE_POINT) };
  } finally {
    der.fill(0);
  }
}

/**
 * DeriveKeyPair of DHKEM(X25519, HKDF-SHA256) (RFC 9180 section 7.1.3):
 * the key pair ikm determines, with its private key's bytes (what the
 * test vector lists as skEm and skRm). For tests and known answers: a
 * real sender draws its ephemeral key at random (sealBase).
 * @param {Uint8Array<ArrayBuffer>} ikm at least 32 bytes of secret input
 * @returns {Promise<KeyPair & {secretKey: Uint8Array<ArrayBuffer>}>}
 */
export async function deriveKeyPair(ikm) {
  const prk = await labeledExtract(KEM_SUITE, new Uint8Array(0), "dkp_prk", ikm);
  const sk = await labeledExpand(KEM_SUITE, prk, "sk", new Uint8Array(0), N_SK);
  prk.fill(0);
  return { ...(await importPrivateKey(sk)), secretKey: sk };
}

/**
 * A fresh random X25519 key pair, the private key non-extractable.
 * @returns {Promise<KeyPair>}
 */
async function generateKeyPair() {
  const pair = /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]));
  return { privateKey: pair.privateKey, publicKey: new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)) };
}

/**
 * An HPKE context (RFC 9180 section 5.2): seals (sender) or opens
 * (recipient) a sequence of messages, and exports secrets.
 */
export class Context {
  /**
   * Use setupBaseS or setupBaseR.
   * @param {CryptoKey} key
   * @param {Uint8Array<ArrayBuffer>} baseNonce
   * @param {Uint8Array<ArrayBuffer>} exporterSecret
   */
  constructor(key, baseNonce, exporterSecret) {
    /** @private */
    this.key = key;
    /** @private */
    this.baseNonce = baseNonce;
    /** @private */
    this.exporterSecret = exporterSecret;
    /** @private the sequence number of the next message */
    this.seq = 0;
  }

  /**
   * base_nonce XOR the sequence number, big-endian in the last bytes.
   * @private
   */
  nonce() {
    if (this.seq >= Number.MAX_SAFE_INTEGER) {
      throw new RangeError("hpke: message limit reached");
    }
    const n = this.baseNonce.slice();
    let s = this.seq;
    for (let i = N_N - 1; i >= 0 && s > 0; i--) {
      n[i] ^= s % 256;
      s = Math.floor(s / 256);
    }
    return n;
  }

  /**
   * Encrypts the next message (ContextS.Seal).
   * @param {Uint8Array<ArrayBuffer>} aad
   * @param {Uint8Array<ArrayBuffer>} pt
   * @returns {Promise<Uint8Array<ArrayBuffer>>}
   */
  async seal(aad, pt) {
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: this.nonce(), additionalData: aad, tagLength: 8 * N_T }, this.key, pt));
    this.seq++;
    return ct;
  }

  /**
   * Decrypts the next message (ContextR.Open); throws an HPKEOpenError if
   * it does not authenticate, and the sequence does not move then.
   * @param {Uint8Array<ArrayBuffer>} aad
   * @param {Uint8Array<ArrayBuffer>} ct
   * @returns {Promise<Uint8Array<ArrayBuffer>>}
   */
  async open(aad, ct) {
    let pt;
    try {
      pt = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: this.nonce(), additionalData: aad, tagLength: 8 * N_T }, this.key, ct));
    } catch {
      throw new HPKEOpenError("message authentication failed");
    }
    this.seq++;
    return pt;
  }

  /**
   * A secret of length bytes for exporterContext (Context.Export, RFC 9180
   * section 5.3).
   * @param {Uint8Array<ArrayBuffer>} exporterContext
   * @param {number} length at most 255 * 32
   * @returns {Promise<Uint8Array<ArrayBuffer>>}
   */
  export(exporterContext, length) {
    return labeledExpand(HPKE_SUITE, this.exporterSecret, "sec", exporterContext, length);
  }
}

/**
 * KeySchedule in base mode (RFC 9180 section 5.1): no PSK.
 * @param {Uint8Array<ArrayBuffer>} sharedSecret
 * @param {Uint8Array<ArrayBuffer>} info
 * @param {KeyUsage} usage
 * @returns {Promise<Context>}
 */
async function keySchedule(sharedSecret, info, usage) {
  const none = new Uint8Array(0);
  const pskIDHash = await labeledExtract(HPKE_SUITE, none, "psk_id_hash", none);
  const infoHash = await labeledExtract(HPKE_SUITE, none, "info_hash", info);
  const ctx = concatBytes(new Uint8Array([MODE_BASE]), pskIDHash, infoHash);
  const secret = await labeledExtract(HPKE_SUITE, sharedSecret, "secret", none);
  try {
    const keyBytes = await labeledExpand(HPKE_SUITE, secret, "key", ctx, N_K);
    const key = await crypto.subtle.importKey("raw", keyBytes, "AES-GCM", false, [usage]);
    keyBytes.fill(0);
    const baseNonce = await labeledExpand(HPKE_SUITE, secret, "base_nonce", ctx, N_N);
    const exporterSecret = await labeledExpand(HPKE_SUITE, secret, "exp", ctx, N_H);
    return new Context(key, baseNonce, exporterSecret);
  } finally {
    secret.fill(0);
  }
}

/**
 * SetupBaseS (RFC 9180 section 5.1.1): a context sealing to pkR, and enc,
 * the encapsulated key that goes with the ciphertexts. ephemeral is the
 * sender's key pair (deriveKeyPair), for known answers only; by default
 * it is drawn at random. Throws a BadPublicKeyError for a pkR that is not
 * 32 bytes or is of low order.
 * @param {Uint8Array<ArrayBuffer>} pkR
 * @param {Uint8Array<ArrayBuffer>} info
 * @param {KeyPair} [ephemeral]
 * @returns {Promise<{enc: Uint8Array<ArrayBuffer>, context: Context}>}
 */
export async function setupBaseS(pkR, info, ephemeral) {
  const eph = ephemeral ?? (await generateKeyPair());
  const dh = await x25519(eph.privateKey, pkR);
  const enc = eph.publicKey.slice();
  const shared = await extractAndExpand(dh, concatBytes(enc, pkR));
  dh.fill(0);
  try {
    return { enc, context: await keySchedule(shared, info, "encrypt") };
  } finally {
    shared.fill(0);
  }
}

/**
 * SetupBaseR (RFC 9180 section 5.1.1): the recipient's context for enc.
 * Throws an HPKEOpenError for an enc that is not 32 bytes or is of low
 * order.
 * @param {Uint8Array<ArrayBuffer>} enc
 * @param {KeyPair} recipient
 * @param {Uint8Array<ArrayBuffer>} info
 * @returns {Promise<Context>}
 */
export async function setupBaseR(enc, recipient, info) {
  let dh;
  try {
    dh = await x25519(recipient.privateKey, enc);
  } catch (err) {
    if (err instanceof BadPublicKeyError) {
      throw new HPKEOpenError(`encapsulated key: ${err.message}`);
    }
    throw err;
  }
  const shared = await extractAndExpand(dh, concatBytes(enc, recipient.publicKey));
  dh.fill(0);
  try {
    return await keySchedule(shared, info, "decrypt");
  } finally {
    shared.fill(0);
  }
}

/**
 * Single-shot SealBase: encrypts pt to pkR under info and aad.
 * @param {Uint8Array<ArrayBuffer>} pkR
 * @param {Uint8Array<ArrayBuffer>} info
 * @param {Uint8Array<ArrayBuffer>} aad
 * @param {Uint8Array<ArrayBuffer>} pt
 * @param {KeyPair} [ephemeral] for known answers only (setupBaseS)
 * @returns {Promise<{enc: Uint8Array<ArrayBuffer>, ct: Uint8Array<ArrayBuffer>}>}
 */
export async function sealBase(pkR, info, aad, pt, ephemeral) {
  const { enc, context } = await setupBaseS(pkR, info, ephemeral);
  return { enc, ct: await context.seal(aad, pt) };
}

/**
 * Single-shot OpenBase: decrypts what sealBase made for recipient under
 * info and aad; throws an HPKEOpenError if it does not open.
 * @param {Uint8Array<ArrayBuffer>} enc
 * @param {KeyPair} recipient
 * @param {Uint8Array<ArrayBuffer>} info
 * @param {Uint8Array<ArrayBuffer>} aad
 * @param {Uint8Array<ArrayBuffer>} ct
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
export async function openBase(enc, recipient, info, aad, ct) {
  const context = await setupBaseR(enc, recipient, info);
  return context.open(aad, ct);
}
