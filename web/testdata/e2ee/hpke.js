// @ts-check
// The RFC 9180 test vector of the suite key messages use (base mode,
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) against
// web/sdk/e2ee/hpke.js, as media/e2ee/hpke_test.go checks Go's
// crypto/hpke: DeriveKeyPair from both seeds, a deterministic seal under
// the vector's ephemeral key giving exactly its ciphertexts, opening them,
// and the exported secrets on both sides. TestBrowserHPKEVectorRFC9180
// serves the file and calls runHPKE(url).

import { AEAD_ID, KDF_ID, KEM_ID, deriveKeyPair, openBase, sealBase, setupBaseR, setupBaseS } from "/sdk/e2ee/hpke.js";
import { fromHex, toHex } from "./hex.js";

/**
 * The vector's values, bytes decoded.
 * @typedef {object} Vector
 * @property {number} mode
 * @property {number} kem_id
 * @property {number} kdf_id
 * @property {number} aead_id
 * @property {Uint8Array<ArrayBuffer>} info
 * @property {Uint8Array<ArrayBuffer>} ikmE
 * @property {Uint8Array<ArrayBuffer>} ikmR
 * @property {Uint8Array<ArrayBuffer>} skEm
 * @property {Uint8Array<ArrayBuffer>} pkEm
 * @property {Uint8Array<ArrayBuffer>} skRm
 * @property {Uint8Array<ArrayBuffer>} pkRm
 * @property {Uint8Array<ArrayBuffer>} enc
 * @property {{aad: Uint8Array<ArrayBuffer>, pt: Uint8Array<ArrayBuffer>, ct: Uint8Array<ArrayBuffer>}[]} encryptions
 * @property {{context: Uint8Array<ArrayBuffer>, length: number, value: Uint8Array<ArrayBuffer>}[]} exports
 */

// The fields checked; the file's others (shared_secret, key, ...) are
// intermediate values hpke.js does not expose, covered by the ciphertext.
const BYTES = /** @type {const} */ (["info", "ikmE", "ikmR", "skEm", "pkEm", "skRm", "pkRm", "enc"]);

/**
 * @param {any} raw the file's JSON
 * @returns {Vector}
 */
function decode(raw) {
  /** @type {any} */
  const v = { mode: raw.mode, kem_id: raw.kem_id, kdf_id: raw.kdf_id, aead_id: raw.aead_id };
  for (const f of BYTES) {
    if (typeof raw[f] !== "string") {
      throw new Error(`field ${f} missing`);
    }
    v[f] = fromHex(raw[f]);
  }
  if (!Array.isArray(raw.encryptions) || raw.encryptions.length === 0 || !Array.isArray(raw.exports) || raw.exports.length === 0) {
    throw new Error("the vector has no encryptions or no exports");
  }
  v.encryptions = raw.encryptions.map((/** @type {any} */ e) => ({ aad: fromHex(e.aad), pt: fromHex(e.pt), ct: fromHex(e.ct) }));
  v.exports = raw.exports.map((/** @type {any} */ x) => ({ context: fromHex(x.exporter_context), length: x.L, value: fromHex(x.exported_value) }));
  return v;
}

/**
 * Everything hpke.js gets wrong on v, as messages.
 * @param {Vector} v
 * @returns {Promise<string[]>}
 */
async function check(v) {
  /** @type {string[]} */
  const bad = [];
  /**
   * @param {string} what
   * @param {Uint8Array} got
   * @param {Uint8Array} want
   */
  const same = (what, got, want) => {
    if (toHex(got) !== toHex(want)) {
      bad.push(`${what} = ${toHex(got)}, want ${toHex(want)}`);
    }
  };
  if (v.mode !== 0 || v.kem_id !== KEM_ID || v.kdf_id !== KDF_ID || v.aead_id !== AEAD_ID) {
    return [`vector is mode ${v.mode} suite ${v.kem_id}/${v.kdf_id}/${v.aead_id}; hpke.js does base mode ${KEM_ID}/${KDF_ID}/${AEAD_ID}`];
  }
  try {
    const eph = await deriveKeyPair(v.ikmE);
    same("DeriveKeyPair(ikmE) private key", eph.secretKey, v.skEm);
    same("DeriveKeyPair(ikmE) public key", eph.publicKey, v.pkEm);
    const recip = await deriveKeyPair(v.ikmR);
    same("DeriveKeyPair(ikmR) private key", recip.secretKey, v.skRm);
    same("DeriveKeyPair(ikmR) public key", recip.publicKey, v.pkRm);

    // The sender, its ephemeral key given: exactly the vector's bytes.
    const s = await setupBaseS(v.pkRm, v.info, eph);
    same("enc", s.enc, v.enc);
    for (const [i, e] of v.encryptions.entries()) {
      same(`encryption ${i}: Seal`, await s.context.seal(e.aad, e.pt), e.ct);
    }
    for (const [i, x] of v.exports.entries()) {
      same(`export ${i} (sender)`, await s.context.export(x.context, x.length), x.value);
    }

    // The recipient.
    const r = await setupBaseR(v.enc, recip, v.info);
    for (const [i, e] of v.encryptions.entries()) {
      try {
        same(`encryption ${i}: Open`, await r.open(e.aad, e.ct), e.pt);
      } catch (err) {
        bad.push(`encryption ${i}: Open: ${err}`);
      }
    }
    for (const [i, x] of v.exports.entries()) {
      same(`export ${i} (recipient)`, await r.export(x.context, x.length), x.value);
    }

    // Single shot, the first encryption (sequence number 0).
    const e0 = v.encryptions[0];
    const one = await sealBase(v.pkRm, v.info, e0.aad, e0.pt, eph);
    same("sealBase enc", one.enc, v.enc);
    same("sealBase ct", one.ct, e0.ct);
    try {
      same("openBase", await openBase(v.enc, recip, v.info, e0.aad, e0.ct), e0.pt);
    } catch (err) {
      bad.push(`openBase: ${err}`);
    }
  } catch (err) {
    bad.push(`threw ${err}`);
  }
  return bad;
}

/**
 * How opening the first ciphertext with one thing changed turns out:
 * each must be refused.
 * @param {Vector} v
 * @returns {Promise<string[]>}
 */
async function refusals(v) {
  const recip = await deriveKeyPair(v.ikmR);
  const other = await deriveKeyPair(v.ikmE);
  const e0 = v.encryptions[0];
  /** @param {Uint8Array<ArrayBuffer>} b */
  const flip = (b) => {
    const c = b.length > 0 ? b.slice() : new Uint8Array(1);
    c[c.length >> 1] ^= 0x04;
    return c;
  };
  /** @type {[string, () => Promise<unknown>][]} */
  const cases = [
    ["a changed ciphertext", () => openBase(v.enc, recip, v.info, e0.aad, flip(e0.ct))],
    ["a cut ciphertext", () => openBase(v.enc, recip, v.info, e0.aad, e0.ct.slice(0, e0.ct.length - 1))],
    ["another aad", () => openBase(v.enc, recip, v.info, flip(e0.aad), e0.ct)],
    ["another info", () => openBase(v.enc, recip, flip(v.info), e0.aad, e0.ct)],
    ["another enc", () => openBase(flip(v.enc), recip, v.info, e0.aad, e0.ct)],
    ["another recipient key", () => openBase(v.enc, other, v.info, e0.aad, e0.ct)],
    ["a low-order enc", () => openBase(new Uint8Array(32), recip, v.info, e0.aad, e0.ct)],
  ];
  const out = [];
  for (const [what, f] of cases) {
    try {
      await f();
      out.push(`${what}: opened`);
    } catch {
      // refused, as it must be
    }
  }
  return out;
}

/**
 * Fetches the vector at url and checks it; then checks that each of its
 * values, changed in turn, makes the check fail (so none goes unchecked),
 * and that changed inputs do not open.
 * @param {string} url
 */
export async function runHPKE(url) {
  const res = await fetch(url);
  if (!res.ok) {
    throw new Error(`${url}: ${res.status}`);
  }
  const v = decode(await res.json());
  const failures = await check(v);
  let tampered = 0;
  let caught = 0;
  /** @param {string} what @param {Vector} w */
  const tamperCheck = async (what, w) => {
    tampered++;
    if ((await check(w)).length > 0) {
      caught++;
    } else {
      failures.push(`changing ${what} goes unnoticed`);
    }
  };
  /** @param {Uint8Array<ArrayBuffer>} b */
  const flip = (b) => {
    const c = b.length > 0 ? b.slice() : new Uint8Array(1);
    c[c.length >> 1] ^= 0x10;
    return c;
  };
  for (const f of BYTES) {
    await tamperCheck(f, { ...v, [f]: flip(v[f]) });
  }
  for (const [i, e] of v.encryptions.entries()) {
    for (const f of /** @type {const} */ (["aad", "pt", "ct"])) {
      const encs = v.encryptions.slice();
      encs[i] = { ...e, [f]: flip(e[f]) };
      await tamperCheck(`encryption ${i} ${f}`, { ...v, encryptions: encs });
    }
  }
  for (const [i, x] of v.exports.entries()) {
    for (const f of /** @type {const} */ (["context", "value"])) {
      const xs = v.exports.slice();
      xs[i] = { ...x, [f]: flip(x[f]) };
      await tamperCheck(`export ${i} ${f}`, { ...v, exports: xs });
    }
  }
  failures.push(...(await refusals(v)));
  return { encryptions: v.encryptions.length, exports: v.exports.length, tampered, caught, failures };
}

/** @type {any} */ (window).runHPKE = runHPKE;
