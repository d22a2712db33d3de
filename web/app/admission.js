// The call page's admission cards, its own wait, and the roster alert.

import { $, shownName, state } from "./state.js";
import { SELF, tiles, ensureTile, removeTile, setTileE2EE } from "./tiles.js";
import { hexOf } from "./safety.js";
import { call, refreshCallStatus, leaveCall } from "../app.js";

// ---- admission -----------------------------------------------------------------------

// Admission by members (docs/E2EE.md, "Admission and rosters"): a
// newcomer gets no media key until a member admits it. Every member sees
// it as a card with Admit and Refuse, never as a tile; one member's
// Admit suffices. A refused one stays a card, saying who refused it. This
// tab, until admitted, says so above the grid. Names are the server's
// (attacker-chosen): they go into textContent and data attributes only.

/** Whether the call's SDK admits by members (end-to-end encryption on). */
export function hasAdmission(c) {
  return !!c?.e2ee && typeof c.admissions === "function" && typeof c.rosterStatus === "function";
}

/** What the "waiting" event said of each newcomer: identity → {key (hex), known, verified}. */
export const newcomers = new Map();

/**
 * Whether identity is shown as a normal tile: a member; or, with no
 * admission listed for it, a participant that does not encrypt (never a
 * candidate: its tile says "Not encrypted", and the header names it), or
 * one this browser holds out itself, its changed key waiting for the
 * person's choice or its key not checked (the blocking warning, or the
 * banner, says why it gets no key). One the node says encrypts but that
 * the SDK does not list is no member either: a card says it waits.
 */
export function showsTile(identity) {
  const c = call;
  const p = c?.participants.get(identity);
  if (!p) return false;
  if (!hasAdmission(c)) return true;
  const a = state.admissions[identity];
  if (a) return a.state === "member";
  if (!p.e2ee) return true;
  return c.pendingKeyChanges().some((k) => k.identity === identity) ||
    c.keyCheckFailures().some((f) => f.identity === identity);
}

/**
 * Reads the admissions and this tab's own state from the SDK and redraws
 * from them: a tile for every member, a card for everyone else waiting
 * or refused, this tab's own wait. gone: a participant that just left.
 */
export function syncAdmissions(gone) {
  const c = call;
  if (!c) return;
  if (hasAdmission(c)) {
    const next = Object.create(null);
    for (const a of c.admissions()) {
      if (a.identity === gone) continue;
      const key = hexOf(a.identityKey ?? []);
      const n = newcomers.get(a.identity);
      const same = !!n && n.key === key;
      next[a.identity] = {
        state: a.state, by: a.by ?? "", root: !!a.root, key,
        known: same && n.known, verified: same && n.verified,
      };
    }
    state.admissions = next;
    const rs = c.rosterStatus();
    const s = rs.admitted ? "member" : rs.refused ? "refused" : "waiting";
    if (s !== state.selfAdmission.state) {
      state.selfAdmission = { state: s, by: s === "waiting" ? "" : state.selfAdmission.by };
    }
    if (rs.alert && !state.rosterAlert) {
      state.rosterAlert = { message: "", mismatches: normalizeMismatches(rs.mismatches) };
      renderRosterAlert();
    }
  } else {
    state.admissions = Object.create(null);
    state.selfAdmission = { state: "member", by: "" };
  }
  for (const key of [...tiles.keys()]) {
    if (key !== SELF && !showsTile(/** @type {string} */ (key))) removeTile(key);
  }
  for (const p of c.participants.values()) {
    if (p.identity !== gone && showsTile(p.identity)) ensureTile(p.identity, false);
  }
  renderAdmissionCards(gone);
  renderSelfAdmission();
  refreshHeldTiles();
  refreshCallStatus();
}

/** This tab's identity key, in hex ("" without E2EE). */
export function ownKeyHex() {
  const k = call?.e2ee?.identity?.publicKey;
  return k ? hexOf(k) : "";
}

/** identity → its card in #admission-list */
export const cards = new Map();

/**
 * Draws a card for every participant that is not a member (waiting or
 * refused), in the order they came, each updated in place (so that focus
 * on a button stays where it is while others arrive).
 */
export function renderAdmissionCards(gone) {
  const c = call;
  const list = $("admission-list");
  const want = [];
  if (c) {
    for (const p of c.participants.values()) {
      if (p.identity !== gone && !showsTile(p.identity)) want.push(p.identity);
    }
  }
  const keep = new Set(want);
  for (const [id, card] of cards) {
    if (!keep.has(id)) {
      card.remove();
      cards.delete(id);
    }
  }
  const canDecide = state.selfAdmission.state === "member";
  want.forEach((id, i) => {
    let card = cards.get(id);
    if (!card) {
      card = makeAdmissionCard(id);
      cards.set(id, card);
    }
    fillAdmissionCard(card, id, canDecide);
    // In order; a card in its place is not moved (that would take the
    // focus, or a pointer, off its buttons).
    if (list.children[i] !== card) list.insertBefore(card, list.children[i] ?? null);
  });
  $("admissions").hidden = want.length === 0;
  $("admissions-title").textContent = want.length === 1 ? "Waiting to join" : `Waiting to join (${want.length})`;
}

export function makeAdmissionCard(identity) {
  const li = document.createElement("li");
  li.className = "admission-card";
  li.dataset.candidate = identity;
  const text = document.createElement("p");
  text.className = "admission-text";
  const detail = document.createElement("p");
  detail.className = "admission-detail hint";
  const error = document.createElement("p");
  error.className = "admission-error error";
  error.hidden = true;
  const row = document.createElement("div");
  row.className = "row";
  const admit = document.createElement("button");
  admit.type = "button";
  admit.className = "primary";
  admit.dataset.admit = identity;
  admit.addEventListener("click", () => void decide(identity, "admit"));
  const refuse = document.createElement("button");
  refuse.type = "button";
  refuse.dataset.refuse = identity;
  refuse.addEventListener("click", () => void decide(identity, "refuse"));
  row.append(admit, refuse);
  li.append(text, detail, error, row);
  return li;
}

export function fillAdmissionCard(card, identity, canDecide) {
  const a = state.admissions[identity];
  const refused = a?.state === "refused";
  const name = shownName(identity);
  const me = call?.self.identity;
  card.dataset.admissionState = refused ? "refused" : "waiting";
  const text = /** @type {HTMLElement} */ (card.querySelector(".admission-text"));
  const detail = /** @type {HTMLElement} */ (card.querySelector(".admission-detail"));
  // Admit and Refuse wait until the SDK lists identity as waiting or
  // refused (its "waiting" event redraws the card): the node may show a
  // newcomer before the SDK has taken their announcement, and a click then
  // would only fail ("no such participant waiting").
  const listed = a?.state === "waiting" || refused;
  if (refused) {
    const by = a.by ? shownName(a.by) + (a.by === me ? " (you)" : "") : "a member";
    text.textContent = `${name} was refused by ${by}`;
    detail.textContent = "They hear and see nothing, and get no key. Any member can still admit them.";
  } else {
    text.textContent = `${name} is waiting to join — they hear and see nothing until admitted`;
  }
  if (!listed) {
    detail.textContent = `This browser has not taken ${name}'s security key yet: you can admit or refuse them once it has.`;
  } else if (!refused) {
    const parts = [];
    if (a && a.key === ownKeyHex()) {
      parts.push(`${name} comes with this browser's own security key: another tab of this browser, or someone ` +
        "copying it. Nobody can admit their own key: someone on another device can, or refuse them.");
    } else if (a?.verified) parts.push(`You verified ${name}'s key before.`);
    else if (a?.known) parts.push(`This browser has met ${name} before, with this key.`);
    else parts.push(`This browser has not met ${name} before: if you do not expect them, refuse.`);
    detail.textContent = parts.join(" ");
  }
  if (!canDecide && listed) detail.textContent += " You can admit or refuse them once you are admitted yourself.";
  const busy = card.dataset.busy === "true";
  const admit = /** @type {HTMLButtonElement} */ (card.querySelector("[data-admit]"));
  const refuse = /** @type {HTMLButtonElement} */ (card.querySelector("[data-refuse]"));
  admit.textContent = busy && card.dataset.busyWith === "admit" ? "Admitting…" : refused ? "Admit anyway" : "Admit";
  refuse.textContent = busy && card.dataset.busyWith === "refuse" ? "Refusing…" : "Refuse";
  admit.setAttribute("aria-label", `Admit ${name}`);
  refuse.setAttribute("aria-label", `Refuse ${name}`);
  refuse.hidden = refused;
  admit.disabled = refuse.disabled = !canDecide || busy || !listed;
  if (a && a.key === ownKeyHex()) admit.disabled = true;
  admit.title = `Let ${name} in: they get the call's keys, and everyone sees them.`;
  refuse.title = `Keep ${name} out: everyone sees that you refused them.`;
  card.setAttribute("aria-label", text.textContent);
}

/** Admits or refuses identity (a member's click), and says so in its card if that fails. */
export async function decide(identity, what) {
  const c = call;
  const card = cards.get(identity);
  if (!c || !card || card.dataset.busy === "true" || state.selfAdmission.state !== "member") return;
  // Only someone the SDK lists as waiting or refused can be decided on
  // (the buttons are disabled until then).
  if (!c.admissions().some((a) => a.identity === identity && (a.state === "waiting" || a.state === "refused"))) return;
  card.dataset.busy = "true";
  card.dataset.busyWith = what;
  const error = /** @type {HTMLElement} */ (card.querySelector(".admission-error"));
  error.hidden = true;
  fillAdmissionCard(card, identity, true);
  try {
    if (what === "admit") await c.admit(identity);
    else await c.refuse(identity);
  } catch (err) {
    // Another member decided first, they left, or this tab cannot yet.
    console.warn(`sotto: ${what} ${JSON.stringify(identity)}:`, err);
    if (c === call && cards.get(identity) === card) {
      error.hidden = false;
      error.textContent = `Could not ${what} ${shownName(identity)}: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  delete card.dataset.busy;
  delete card.dataset.busyWith;
  if (c === call) syncAdmissions();
}

/** Shows this tab's own wait (or refusal) above the grid, until it is a member. */
export function renderSelfAdmission() {
  const panel = $("self-admission");
  const { state: s, by } = state.selfAdmission;
  $("call").dataset.admission = s;
  panel.hidden = s === "member";
  panel.dataset.state = s;
  if (s === "member") return;
  const leave = $("leave-while-waiting");
  if (s === "refused") {
    const who = by ? shownName(by) : "A member";
    $("self-admission-title").textContent = `${who} refused to admit you`;
    $("self-admission-text").textContent = "You hear and see nothing, and nobody hears or sees you. " +
      "Another member may still admit you; or you may leave the call.";
    leave.hidden = false;
  } else {
    $("self-admission-title").textContent = "Waiting to be admitted";
    $("self-admission-text").textContent = "Someone already in the call must admit you. Until then you hear " +
      "and see nothing, and nobody hears or sees you. They see that you are waiting.";
    leave.hidden = true;
  }
}

$("leave-while-waiting").addEventListener("click", () => void leaveCall());

/**
 * While this tab is not admitted nobody sends it keys: the members' tiles
 * say "waiting for keys" then, not "cannot decrypt" (which would mean
 * something is wrong).
 */
export function refreshHeldTiles() {
  const c = call;
  if (!c) return;
  for (const [key, t] of tiles) {
    if (key !== SELF) setTileE2EE(/** @type {string} */ (key), t.el.dataset.e2eeState ?? "waiting");
  }
}

/** The detail of a "rostermismatch" as the page keeps it (names as strings). */
export function normalizeMismatches(list) {
  return (Array.isArray(list) ? list : []).map((m) => ({
    member: String(m?.member ?? ""),
    missing: !!m?.missing,
    onlyTheirs: (m?.onlyTheirs ?? []).map(nameOf),
    onlyMine: (m?.onlyMine ?? []).map(nameOf),
  }));
}

/** A name from a mismatch list: a string, or an entry with a name. */
export function nameOf(x) {
  return typeof x === "string" ? x : String(x?.name ?? x?.identity ?? "");
}

/**
 * The roster alert: modal (the rest of the page is inert) while members'
 * signed views of the call disagree; it closes itself when they agree.
 */
export function renderRosterAlert() {
  const dialog = /** @type {HTMLDialogElement} */ ($("roster-alert"));
  const alert = state.rosterAlert;
  if (!alert || !call) {
    if (dialog.open) dialog.close();
    return;
  }
  const list = $("roster-alert-list");
  list.replaceChildren();
  const names = (xs) => xs.map(shownName).join(", ");
  for (const m of alert.mismatches) {
    const li = document.createElement("li");
    li.dataset.member = m.member;
    const who = shownName(m.member);
    const lines = [];
    // A name on both sides: the same name with another security key.
    const both = m.onlyTheirs.filter((n) => m.onlyMine.includes(n));
    const theirs = m.onlyTheirs.filter((n) => !both.includes(n));
    const mine = m.onlyMine.filter((n) => !both.includes(n));
    if (m.missing) lines.push(`${who}'s view of the call did not arrive.`);
    if (theirs.length) lines.push(`${who}'s view lists ${names(theirs)}, whom yours does not.`);
    if (mine.length) lines.push(`Your view lists ${names(mine)}, whom ${who}'s does not.`);
    if (both.length) lines.push(`${who}'s view has another security key than yours for ${names(both)}.`);
    if (!lines.length) lines.push(`${who}'s view differs from yours.`);
    for (const line of lines) {
      const p = document.createElement("p");
      p.textContent = line;
      li.append(p);
    }
    list.append(li);
  }
  dialog.dataset.members = alert.mismatches.map((m) => m.member).join(",");
  if (!dialog.open) {
    dialog.showModal();
    $("leave-after-roster-alert").focus();
  }
}

$("roster-alert").addEventListener("cancel", (ev) => ev.preventDefault()); // Escape dismisses nothing
$("roster-alert").addEventListener("close", () => {
  // Closed while the views still disagree: show it again.
  if (state.rosterAlert && call) queueMicrotask(renderRosterAlert);
});
$("leave-after-roster-alert").addEventListener("click", () => void leaveCall());

export let noteTimer = 0;

/** A short message above the grid that goes away on its own. */
export function note(text) {
  const el = $("call-note");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(noteTimer);
  noteTimer = setTimeout(() => { el.hidden = true; }, 8000);
}

export function clearAdmissions() {
  state.admissions = Object.create(null);
  state.rosterAlert = null;
  for (const card of cards.values()) card.remove();
  cards.clear();
  $("admissions").hidden = true;
  $("self-admission").hidden = true;
  $("call-note").hidden = true;
  renderRosterAlert();
}
