// @ts-check
// Hex for the test pages: the Go tests pass bytes to the page, and read
// them back, as hex strings.

/**
 * @param {string} s
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function fromHex(s) {
  if (s.length % 2 !== 0 || /[^0-9a-fA-F]/.test(s)) {
    throw new Error(`bad hex ${JSON.stringify(s.slice(0, 40))}`);
  }
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
}

/**
 * @param {Uint8Array} b
 * @returns {string}
 */
export function toHex(b) {
  let s = "";
  for (const x of b) {
    s += x.toString(16).padStart(2, "0");
  }
  return s;
}
