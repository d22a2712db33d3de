// @ts-check
// The RFC 9605 test vectors against web/sdk/e2ee/sframe.js, every case of
// every section with every intermediate value, both directions, as
// media/sframe/vectors_test.go checks the Go code. TestBrowserSFrameVectors
// serves the file and calls runVectors(url).

import {
  CtrHmac, Key, Receiver, SFrameError, Sender, aad, deriveSchedule, encodeHeader, headerSize,
  keyLabel, parseHeader, saltLabel, suiteParams,
} from "/sdk/e2ee/sframe.js";
import { fromHex, toHex } from "./hex.js";

/** @typedef {{kid: bigint, ctr: bigint, encoded: Uint8Array<ArrayBuffer>}} HeaderVector */
/** @typedef {{cipher_suite: number, key: Uint8Array<ArrayBuffer>, enc_key: Uint8Array<ArrayBuffer>, auth_key: Uint8Array<ArrayBuffer>, nonce: Uint8Array<ArrayBuffer>, aad: Uint8Array<ArrayBuffer>, pt: Uint8Array<ArrayBuffer>, ct: Uint8Array<ArrayBuffer>}} CtrHmacVector */
/** @typedef {{cipher_suite: number, kid: bigint, ctr: bigint, base_key: Uint8Array<ArrayBuffer>, sframe_key_label: Uint8Array<ArrayBuffer>, sframe_salt_label: Uint8Array<ArrayBuffer>, sframe_secret: Uint8Array<ArrayBuffer>, sframe_key: Uint8Array<ArrayBuffer>, sframe_salt: Uint8Array<ArrayBuffer>, metadata: Uint8Array<ArrayBuffer>, nonce: Uint8Array<ArrayBuffer>, aad: Uint8Array<ArrayBuffer>, pt: Uint8Array<ArrayBuffer>, ct: Uint8Array<ArrayBuffer>}} SFrameVector */

// The fields of each section and how each is decoded: "int" a JSON
// integer kept exact (a BigInt), "suite" an integer of 16 bits, "hex" bytes.
/** @type {Record<string, Record<string, "int"|"suite"|"hex">>} */
const SECTIONS = {
  header: { kid: "int", ctr: "int", encoded: "hex" },
  aes_ctr_hmac: { cipher_suite: "suite", key: "hex", enc_key: "hex", auth_key: "hex", nonce: "hex", aad: "hex", pt: "hex", ct: "hex" },
  sframe: {
    cipher_suite: "suite", kid: "int", ctr: "int", base_key: "hex", sframe_key_label: "hex", sframe_salt_label: "hex",
    sframe_secret: "hex", sframe_key: "hex", sframe_salt: "hex", metadata: "hex", nonce: "hex", aad: "hex", pt: "hex", ct: "hex",
  },
};

/**
 * Parses the vector file with every number exact: the reviver reads each
 * number's source text (JSON.parse source text access), so 2^64-1 stays
 * 2^64-1 instead of becoming the nearest double.
 * @param {string} text
 * @returns {Record<string, Record<string, any>[]>}
 */
function parseExact(text) {
  return JSON.parse(text, function (_key, value, context) {
    if (typeof value !== "number") {
      return value;
    }
    const src = context?.source;
    if (typeof src !== "string") {
      throw new Error("this browser lacks JSON.parse source text access: cannot read 64-bit integers exactly");
    }
    if (!/^(0|[1-9][0-9]*)$/.test(src)) {
      throw new Error(`number ${src} is not a non-negative integer literal`);
    }
    return BigInt(src);
  });
}

/**
 * Decodes and strictly checks one case: exactly the section's fields.
 * @param {string} section
 * @param {Record<string, any>} raw
 * @returns {any}
 */
function decodeCase(section, raw) {
  const fields = SECTIONS[section];
  /** @type {Record<string, any>} */
  const out = {};
  for (const name of Object.keys(raw)) {
    if (!(name in fields)) {
      throw new Error(`unknown field ${JSON.stringify(name)}: the test must learn what it means`);
    }
  }
  for (const [name, kind] of Object.entries(fields)) {
    if (!(name in raw)) {
      throw new Error(`field ${JSON.stringify(name)} missing`);
    }
    const v = raw[name];
    switch (kind) {
      case "int":
        if (typeof v !== "bigint" || v > (1n << 64n) - 1n) {
          throw new Error(`${name}: not a 64-bit integer`);
        }
        out[name] = v;
        break;
      case "suite":
        if (typeof v !== "bigint" || v > 0xffffn) {
          throw new Error(`${name}: not a 16-bit integer`);
        }
        out[name] = Number(v);
        break;
      case "hex":
        if (typeof v !== "string") {
          throw new Error(`${name}: not a hex string`);
        }
        out[name] = fromHex(v);
        break;
    }
  }
  return out;
}

/** Collects the differences one case shows. */
class Mismatches {
  constructor() {
    /** @type {string[]} */
    this.list = [];
  }

  /**
   * @param {string} what
   * @param {Uint8Array} got
   * @param {Uint8Array} want
   */
  bytes(what, got, want) {
    if (toHex(got) !== toHex(want)) {
      this.list.push(`${what} = ${toHex(got)}, want ${toHex(want)}`);
    }
  }

  /** @param {string} msg */
  add(msg) {
    this.list.push(msg);
  }
}

/**
 * @param {Uint8Array<ArrayBuffer>} b
 * @param {number} bit
 * @returns {Uint8Array<ArrayBuffer>}
 */
function flipBit(b, bit) {
  const c = b.slice();
  c[bit >> 3] ^= 1 << (bit & 7);
  return c;
}

/**
 * Runs f and returns the SFrameError code it threw, "ok" if it did not
 * throw, or "other: ..." for another error.
 * @param {() => unknown} f
 * @returns {Promise<string>}
 */
async function outcome(f) {
  try {
    await f();
    return "ok";
  } catch (err) {
    if (err instanceof SFrameError) {
      return err.code;
    }
    return `other: ${err}`;
  }
}

/**
 * Encoding kid/ctr gives encoded, parsing encoded gives kid/ctr and
 * consumes all of it, and every truncation is refused.
 * @param {HeaderVector} v
 * @returns {Promise<string[]>}
 */
async function checkHeader(v) {
  const m = new Mismatches();
  try {
    m.bytes("encodeHeader", encodeHeader(v.kid, v.ctr), v.encoded);
    if (headerSize(v.kid, v.ctr) !== v.encoded.length) {
      m.add(`headerSize = ${headerSize(v.kid, v.ctr)}, want ${v.encoded.length}`);
    }
  } catch (err) {
    m.add(`encodeHeader: ${err}`);
  }
  for (const trailer of [[], [0xaa, 0x55]]) {
    const b = new Uint8Array(v.encoded.length + trailer.length);
    b.set(v.encoded);
    b.set(trailer, v.encoded.length);
    try {
      const h = parseHeader(b);
      if (h.kid !== v.kid || h.ctr !== v.ctr || h.size !== v.encoded.length) {
        m.add(`parseHeader(${toHex(b)}) = kid ${h.kid} ctr ${h.ctr} size ${h.size}; want ${v.kid}, ${v.ctr}, ${v.encoded.length}`);
      }
    } catch (err) {
      m.add(`parseHeader(${toHex(b)}): ${err}`);
    }
  }
  for (let i = 0; i < v.encoded.length; i++) {
    const got = await outcome(() => parseHeader(v.encoded.subarray(0, i)));
    if (got !== "header") {
      m.add(`parseHeader(${toHex(v.encoded.subarray(0, i))}) = ${got}, want a header error`);
    }
  }
  return m.list;
}

/**
 * The key split, encryption, decryption, and (unless quick) refusal of
 * every single-bit change to nonce, AAD and ciphertext.
 * @param {CtrHmacVector} v
 * @param {boolean} quick
 * @returns {Promise<string[]>}
 */
async function checkCtrHmac(v, quick) {
  const m = new Mismatches();
  let p;
  try {
    p = suiteParams(v.cipher_suite);
  } catch (err) {
    return [`cipher suite ${v.cipher_suite}: ${err}`];
  }
  if (p.nka === 0) {
    return [`cipher suite ${v.cipher_suite} is not an AES-CTR+HMAC suite`];
  }
  if (v.key.length !== p.nk || v.nonce.length !== p.nn) {
    return [`key of ${v.key.length} bytes and nonce of ${v.nonce.length}, want ${p.nk} and ${p.nn}`];
  }
  const { encKey, authKey } = CtrHmac.splitKey(v.cipher_suite, v.key);
  m.bytes("enc_key", encKey, v.enc_key);
  m.bytes("auth_key", authKey, v.auth_key);
  const c = await CtrHmac.create(v.cipher_suite, v.key);
  m.bytes("seal", await c.seal(v.nonce, v.pt, v.aad), v.ct);
  try {
    m.bytes("open", await c.open(v.nonce, v.ct, v.aad), v.pt);
  } catch (err) {
    m.add(`open: ${err}`);
  }
  if (quick) {
    return m.list;
  }
  for (let bit = 0; bit < 8 * v.ct.length; bit++) {
    const got = await outcome(() => c.open(v.nonce, flipBit(v.ct, bit), v.aad));
    if (got !== "auth") {
      m.add(`open with ciphertext bit ${bit} flipped: ${got}, want auth`);
    }
  }
  for (let bit = 0; bit < 8 * v.aad.length; bit++) {
    const got = await outcome(() => c.open(v.nonce, v.ct, flipBit(v.aad, bit)));
    if (got !== "auth") {
      m.add(`open with AAD bit ${bit} flipped: ${got}, want auth`);
    }
  }
  for (let bit = 0; bit < 8 * v.nonce.length; bit++) {
    const got = await outcome(() => c.open(flipBit(v.nonce, bit), v.ct, v.aad));
    if (got !== "auth") {
      m.add(`open with nonce bit ${bit} flipped: ${got}, want auth`);
    }
  }
  if (v.ct.length > 0) {
    const got = await outcome(() => c.open(v.nonce, v.ct.subarray(0, v.ct.length - 1), v.aad));
    if (got !== "auth") {
      m.add(`open of the ciphertext less its last byte: ${got}, want auth`);
    }
  }
  return m.list;
}

/**
 * Every intermediate of one full SFrame case, and the frame both ways
 * through Key, Sender and Receiver; unless quick, every single-bit change
 * to frame and metadata is refused.
 * @param {SFrameVector} v
 * @param {boolean} quick
 * @returns {Promise<string[]>}
 */
async function checkSFrame(v, quick) {
  const m = new Mismatches();
  try {
    suiteParams(v.cipher_suite);
  } catch (err) {
    return [`cipher suite ${v.cipher_suite}: ${err}`];
  }
  m.bytes("sframe_key_label", keyLabel(v.kid, v.cipher_suite), v.sframe_key_label);
  m.bytes("sframe_salt_label", saltLabel(v.kid, v.cipher_suite), v.sframe_salt_label);
  const ks = await deriveSchedule(v.cipher_suite, v.kid, v.base_key);
  m.bytes("sframe_secret", ks.secret, v.sframe_secret);
  m.bytes("sframe_key", ks.key, v.sframe_key);
  m.bytes("sframe_salt", ks.salt, v.sframe_salt);

  const k = await Key.derive(v.cipher_suite, v.kid, v.base_key);
  m.bytes("Key's salt", k.salt, v.sframe_salt);
  const fromVector = await Key.fromDerived(v.cipher_suite, v.kid, v.sframe_key, v.sframe_salt);
  if (!k.sameAs(fromVector)) {
    m.add("Key.derive differs from the key built from sframe_key and sframe_salt");
  }
  m.bytes("nonce", k.nonce(v.ctr), v.nonce);
  m.bytes("aad", aad(encodeHeader(v.kid, v.ctr), v.metadata), v.aad);

  // Encryption, through the Key and through a Sender at the counter.
  m.bytes("Key.seal", await k.seal(v.ctr, v.metadata, v.pt), v.ct);
  const s = await Sender.create(v.cipher_suite, v.kid, v.base_key);
  s.setCounter(v.ctr);
  m.bytes("Sender.encrypt", await s.encrypt(v.metadata, v.pt), v.ct);

  // Decryption, through the Key and through a Receiver.
  try {
    const { plaintext, header } = await k.open(v.metadata, v.ct);
    m.bytes("Key.open", plaintext, v.pt);
    if (header.kid !== v.kid || header.ctr !== v.ctr) {
      m.add(`Key.open header kid ${header.kid} ctr ${header.ctr}, want ${v.kid} ${v.ctr}`);
    }
  } catch (err) {
    m.add(`Key.open: ${err}`);
  }
  const r = new Receiver(v.cipher_suite);
  await r.setKey(v.kid, v.base_key);
  try {
    const { plaintext, header } = await r.decrypt(v.metadata, v.ct);
    m.bytes("Receiver.decrypt", plaintext, v.pt);
    if (header.kid !== v.kid || header.ctr !== v.ctr) {
      m.add(`Receiver.decrypt header kid ${header.kid} ctr ${header.ctr}, want ${v.kid} ${v.ctr}`);
    }
  } catch (err) {
    m.add(`Receiver.decrypt: ${err}`);
  }
  const again = await outcome(() => r.decrypt(v.metadata, v.ct));
  if (again !== "replay") {
    m.add(`second Receiver.decrypt: ${again}, want replay`);
  }
  if (quick) {
    return m.list;
  }

  // Any one bit changed in the frame or the metadata is refused.
  for (let bit = 0; bit < 8 * v.ct.length; bit++) {
    const got = await outcome(() => k.open(v.metadata, flipBit(v.ct, bit)));
    if (got === "ok") {
      m.add(`Key.open with frame bit ${bit} flipped succeeded`);
    }
  }
  for (let bit = 0; bit < 8 * v.metadata.length; bit++) {
    const got = await outcome(() => k.open(flipBit(v.metadata, bit), v.ct));
    if (got !== "auth") {
      m.add(`Key.open with metadata bit ${bit} flipped: ${got}, want auth`);
    }
  }
  return m.list;
}

/**
 * @param {string} section
 * @param {any} v
 * @param {boolean} quick
 * @returns {Promise<string[]>}
 */
async function check(section, v, quick) {
  try {
    switch (section) {
      case "header":
        return await checkHeader(v);
      case "aes_ctr_hmac":
        return await checkCtrHmac(v, quick);
      case "sframe":
        return await checkSFrame(v, quick);
    }
  } catch (err) {
    return [`threw ${err}`];
  }
  return [`unknown section ${section}`];
}

/**
 * A copy of v with one field changed: an integer XOR 1, bytes with the
 * middle byte XOR 0x10 (an empty value becomes one zero byte).
 * @param {Record<string, any>} v
 * @param {string} field
 * @returns {Record<string, any>}
 */
function tamper(v, field) {
  const c = { ...v };
  const x = v[field];
  if (typeof x === "bigint") {
    c[field] = x ^ 1n;
  } else if (typeof x === "number") {
    c[field] = x ^ 1;
  } else if (x.length === 0) {
    c[field] = new Uint8Array(1);
  } else {
    const b = x.slice();
    b[b.length >> 1] ^= 0x10;
    c[field] = b;
  }
  return c;
}

/**
 * Fetches the vector file at url and checks every case. Returns, per
 * section, how many cases there are and how many passed; how many field
 * changes the checks caught (each value of each case changed in turn must
 * make its case fail, so no value goes unchecked); and the failures.
 * @param {string} url
 */
export async function runVectors(url) {
  const res = await fetch(url);
  if (!res.ok) {
    throw new Error(`${url}: ${res.status}`);
  }
  const file = parseExact(await res.text());
  const names = Object.keys(file);
  for (const n of names) {
    if (!(n in SECTIONS)) {
      throw new Error(`unknown section ${JSON.stringify(n)}`);
    }
  }
  /** @type {Record<string, {cases: number, passed: number}>} */
  const counts = {};
  /** @type {string[]} */
  const failures = [];
  let tampered = 0;
  let caught = 0;
  for (const section of Object.keys(SECTIONS)) {
    const raws = file[section];
    if (!Array.isArray(raws)) {
      throw new Error(`section ${section} missing`);
    }
    counts[section] = { cases: raws.length, passed: 0 };
    for (let i = 0; i < raws.length; i++) {
      let v;
      try {
        v = decodeCase(section, raws[i]);
      } catch (err) {
        failures.push(`${section} case ${i}: ${err}`);
        continue;
      }
      const problems = await check(section, v, false);
      if (problems.length === 0) {
        counts[section].passed++;
      } else {
        failures.push(`${section} case ${i}:\n  ${problems.slice(0, 8).join("\n  ")}`);
      }
      for (const field of Object.keys(SECTIONS[section])) {
        tampered++;
        if ((await check(section, tamper(v, field), true)).length > 0) {
          caught++;
        } else {
          failures.push(`${section} case ${i}: changing ${field} goes unnoticed`);
        }
      }
    }
  }
  return { counts, tampered, caught, failures: failures.slice(0, 50), failureCount: failures.length };
}

/** @type {any} */ (window).runVectors = runVectors;
