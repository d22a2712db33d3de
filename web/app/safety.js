// The call page's safety number, verification codes, and a known person's changed key.

import { $, shownName, state } from "./state.js";
import { syncAdmissions } from "./admission.js";
import { call, renderKeyCheckFailures, showBanner, leaveCall } from "../app.js";

// ---- safety number -----------------------------------------------------------------

export let safetySeq = 0;

export async function refreshSafetyNumber() {
  const c = call;
  if (!c) return;
  const seq = ++safetySeq;
  const out = $("safety-number");
  if (!c.e2ee) {
    out.textContent = "Encryption is off";
    $("safety-help").textContent = "This call is not end-to-end encrypted here, so there is no safety number to compare.";
    state.safetyNumber = "";
    renderCovers([], {});
    return;
  }
  // Exactly the people the number covers, as key management has them:
  // this client, and everyone with end-to-end encryption whose key it
  // trusts (not someone whose changed key waits for a choice). Both are
  // read at once, from the same membership.
  // Each code is over the key the number covers for that person, and
  // "Mark verified" next to it marks that key, no other.
  let n = "";
  /** @type {{identity: string, verified: boolean, self: boolean, key: string}[]} */
  let covers = [];
  /** @type {Record<string, string>} */
  const codes = Object.create(null);
  try {
    const [cv, number] = await Promise.all([c.safetyNumberCovers(), c.safetyNumber()]);
    covers = cv.map((x) => ({ identity: x.identity, verified: x.verified, self: x.self, key: hexOf(x.key) }));
    n = number;
    for (const x of covers) if (!x.self) codes[x.identity] = await c.verificationCode(x.identity);
  } catch (err) {
    console.warn("sotto: safety number:", err);
  }
  if (seq !== safetySeq || c !== call) return;
  const covered = covers.map((x) => x.identity);
  out.textContent = n || "…";
  out.dataset.participants = covered.join(",");
  state.safetyNumber = n;
  state.safetyParticipants = covered;
  renderCovers(covers, codes);
  renderKeyCheckFailures();
  // A person back with the key this browser knows needs no choice any more.
  const pending = new Set(c.pendingKeyChanges().map((k) => k.identity));
  if (state.keyChanges.some((k) => !pending.has(k.identity))) {
    state.keyChanges = state.keyChanges.filter((k) => pending.has(k.identity));
    renderKeyChange();
  }
}

/** Whether each person's verification details are open, as the user left them. */
export const codesOpen = new Map();

/**
 * Lists the people the safety number covers (li data-covered=identity,
 * data-verified): each other one with their verification code and a "Mark
 * verified" toggle, kept by this browser, in a disclosure (open on wide
 * screens).
 * @param {{identity: string, verified: boolean, self: boolean, key: string}[]} covers
 * @param {Record<string, string>} codes
 */
export function renderCovers(covers, codes) {
  state.safetyCovers = covers;
  state.verificationCodes = codes;
  const list = $("safety-covers");
  list.replaceChildren();
  const wide = window.matchMedia("(min-width: 761px)").matches;
  for (const cv of covers) {
    const li = document.createElement("li");
    li.dataset.covered = cv.identity;
    li.dataset.verified = String(cv.verified);
    if (cv.self) li.dataset.self = "true";
    const name = shownName(cv.identity);
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = cv.self ? `${name} (you)` : name;
    li.append(who);
    if (cv.verified) {
      const mark = document.createElement("span");
      mark.className = "verified-mark";
      mark.textContent = "✓ verified";
      li.append(mark);
    }
    if (!cv.self) {
      const box = document.createElement("details");
      box.className = "verify";
      box.open = codesOpen.get(cv.identity) ?? wide;
      // Closed, its content is out of the layout (not merely unpainted),
      // so nothing in it counts as on the page.
      const inner = document.createElement("div");
      inner.hidden = !box.open;
      box.addEventListener("toggle", () => {
        codesOpen.set(cv.identity, box.open);
        inner.hidden = !box.open;
      });
      const summary = document.createElement("summary");
      summary.textContent = "Verification code";
      const code = document.createElement("p");
      code.className = "verification-code";
      code.textContent = codes[cv.identity] || "…";
      code.setAttribute("aria-label", `Your verification code with ${name}: ${codes[cv.identity] || "not ready"}`);
      const toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "verify-toggle";
      toggle.textContent = "Mark verified";
      toggle.setAttribute("aria-pressed", String(cv.verified));
      toggle.title = cv.verified
        ? `You marked ${name}'s key verified. Press to withdraw it.`
        : `Compare this code with ${name} (in person, or over a channel you trust); if it matches, mark them verified. This browser remembers it.`;
      toggle.addEventListener("click", () => void toggleVerified(cv.identity, cv.key, !cv.verified));
      inner.append(code, toggle);
      box.append(summary, inner);
      li.append(box);
    }
    list.append(li);
  }
  $("safety-covers-title").hidden = covers.length === 0;
}

/**
 * Marks (or unmarks) identity verified for key, the key whose code the
 * panel showed: if the key this browser knows for them is another now
 * (another tab accepted a change), nothing is marked, and the page says so.
 */
export async function toggleVerified(identity, key, verified) {
  const c = call;
  if (!c) return;
  try {
    await c.markVerified(identity, bytesOf(key), verified);
  } catch (err) {
    console.warn("sotto: mark verified:", err);
    if (c === call) {
      showBanner(`${shownName(identity)} was not marked verified: the key this call uses for them is not the one ` +
        "this browser knows for them now (it changed, perhaps in another tab). Compare the verification code again.");
    }
  }
  await refreshSafetyNumber();
}

// ---- a known person's changed key -------------------------------------------------------

/** The SDK's KeyChange behind each entry of state.keyChanges: what Accept passes. */
export const keyChangeOf = new WeakMap();

/** The entry of state.keyChanges the dialog shows now, or null. */
export let shownKeyChange = null;

export const hexOf = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
export const bytesOf = (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));

/**
 * Queues the blocking warning for a changed security key (the SDK's
 * KeyChange), once per person: a newer change of the same person replaces
 * the warning, and the dialog then shows that one.
 */
export function noteKeyChange(kc) {
  const key = hexOf(kc.current);
  const i = state.keyChanges.findIndex((k) => k.identity === kc.identity);
  if (i >= 0 && state.keyChanges[i].key === key) return;
  const entry = { identity: kc.identity, wasVerified: kc.wasVerified, key, looksLike: kc.looksLike || "", again: i >= 0 };
  keyChangeOf.set(entry, kc);
  if (i >= 0) state.keyChanges[i] = entry;
  else state.keyChanges.push(entry);
  renderKeyChange();
}

/** Groups a key's hex as the dialog shows it: "1a2b 3c4d …". */
export function keyFingerprint(key) {
  return key.match(/.{1,4}/g).join(" ");
}

/**
 * Shows the oldest changed key waiting for a choice in the modal dialog
 * (the rest of the page is inert meanwhile), or closes it. The dialog
 * names the new key (data-key, and its fingerprint): Accept accepts that
 * key, and no other.
 */
export function renderKeyChange() {
  const dialog = /** @type {HTMLDialogElement} */ ($("key-changed"));
  const kc = state.keyChanges[0];
  if (!kc || !call) {
    shownKeyChange = null;
    if (dialog.open) dialog.close();
    return;
  }
  shownKeyChange = kc;
  dialog.dataset.person = kc.identity;
  dialog.dataset.key = kc.key;
  dialog.dataset.looksLike = kc.looksLike;
  const who = shownName(kc.identity);
  const again = kc.again ? "Their key changed once more while the earlier warning was up: this is a different key. " : "";
  if (kc.looksLike) {
    // Someone new whose name looks like a known person's on screen.
    const like = shownName(kc.looksLike);
    $("key-changed-title").textContent = `${who} looks like ${like}, whom you have met, but is someone else`;
    $("key-changed-text").textContent = again +
      `This browser has never met ${who}, but the name looks like ${like}'s on screen, and the key that ` +
      `proves who ${who} is, is not the key this browser knows for ${like}` + (kc.wasVerified ? ", which you had verified. " : ". ") +
      `If you do not know two people by these names, someone, perhaps the server, may be passing for ${like}. ` +
      `Until you choose, ${who} hears and sees nothing from you, and you neither hear nor see them.`;
    $("key-changed-key").textContent = `Their key: ${keyFingerprint(kc.key)}`;
    $("key-changed-advice").textContent =
      `If you accept, ${who} is remembered as someone other than ${like}: compare your verification code with them ` +
      "(in person, or over a channel you trust).";
    $("accept-key-change").textContent = `Accept ${who} as someone else`;
  } else {
    $("key-changed-title").textContent = kc.again
      ? `${who}'s security key changed again`
      : `${who}'s security key changed`;
    $("key-changed-text").textContent = again +
      `The key that proves who ${who} is differs from the one this browser knew` +
      (kc.wasVerified ? ", which you had verified. " : ". ") +
      `They may have reinstalled, or joined from a new device or browser; or someone, perhaps the server, ` +
      `is trying to listen in. Until you choose, ${who} hears and sees nothing from you, and you ` +
      "neither hear nor see them.";
    $("key-changed-key").textContent = `New key: ${keyFingerprint(kc.key)}`;
    $("key-changed-advice").textContent = kc.wasVerified
      ? `If you accept, compare your verification code with ${who} again before you mark them verified.`
      : `If you accept, compare your verification code with ${who} (in person, or over a channel you trust).`;
    $("accept-key-change").textContent = `Accept ${who}'s new key`;
  }
  if (!dialog.open) {
    dialog.showModal();
    $("leave-after-key-change").focus();
  }
}

/** Drops every pending warning (the call ended or was left). */
export function clearKeyChanges() {
  state.keyChanges = [];
  renderKeyChange();
}

$("key-changed").addEventListener("cancel", (ev) => ev.preventDefault()); // Escape chooses nothing
$("key-changed").addEventListener("close", () => {
  // Closed without a choice (the browser may insist on Escape): ask again.
  if (state.keyChanges.length && call) queueMicrotask(renderKeyChange);
});

/**
 * Accepts the change the warning entry shows, exactly that key. If the
 * person's key changed again meanwhile, the SDK accepts nothing
 * (NoKeyChangeError) and the newer warning, which replaced this entry,
 * stays up.
 */
export async function acceptShownKeyChange(entry) {
  const c = call;
  if (!c || !entry) return;
  try {
    await c.acceptKeyChange(keyChangeOf.get(entry));
  } catch (err) {
    // Not the change waiting: the key changed again (its warning is up
    // now), or they came back with the key known.
    console.warn("sotto: accept key change:", err);
  }
  if (c !== call) return;
  state.keyChanges = state.keyChanges.filter((k) => k !== entry);
  renderKeyChange();
  syncAdmissions();
  await refreshSafetyNumber();
}

$("accept-key-change").addEventListener("click", () => void acceptShownKeyChange(shownKeyChange));

$("leave-after-key-change").addEventListener("click", () => void leaveCall());
