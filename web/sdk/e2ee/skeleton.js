// @ts-check
/**
 * @file What a name looks like, as media/e2ee/skeleton.go (docs/E2EE.md,
 * "Known people"): for telling apart people whose names differ only in
 * ways a screen does not show ("bob", "Bob", "bob" with a zero-width
 * space, a fullwidth "ｂｏｂ", "bob" with a combining mark).
 */

/**
 * Every code point of general category Cf, Cc, Mn, Me, Zs, Zl or Zp, and
 * every variation selector.
 */
const DROPPED = /[\p{Cf}\p{Cc}\p{Mn}\p{Me}\p{Zs}\p{Zl}\p{Zp}\p{Variation_Selector}]/gu;

/**
 * The skeleton of name (Go's e2ee.Skeleton): NFKC, lower case
 * (String.prototype.toLowerCase), NFKC again, then every code point of
 * general category Cf, Cc, Mn, Me, Zs, Zl or Zp, and every variation
 * selector, removed. Two different names with one skeleton are
 * look-alikes: trust on first use warns before trusting the second as a
 * new person.
 * @param {string} name
 * @returns {string}
 */
export function skeleton(name) {
  return String(name).normalize("NFKC").toLowerCase().normalize("NFKC").replace(DROPPED, "");
}
