// The call page's shared state: what it shows (window.sotto.state), the URL's options, and small helpers.

export const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * A name from the server as the page shows it: every invisible or control
 * character (general category Cf or Cc: a zero-width space, a direction
 * override) written out as ⟨U+XXXX⟩, so that "bob" and "bob" with a
 * zero-width space after it do not look the same. Only for display.
 */
export function shownName(name) {
  return String(name).replace(/[\p{Cf}\p{Cc}]/gu,
    (c) => `⟨U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}⟩`);
}

export const NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export const params = new URLSearchParams(location.search);
export const testMode = globalThis.sottoTestMode === true;
export const test = {
  denyKeys: testMode && params.get("test-deny-keys") === "1",
  video: testMode ? parseSize(params.get("test-video")) : null,
  fps: testMode ? Number(params.get("test-fps")) || 0 : 0,
  noMedia: testMode && params.get("test-media") === "none",
};

/**
 * What the page shows, for people (through the DOM) and tests (through
 * window.sotto.state). Updated in place.
 */
export const state = {
  /** "lobby" | "joining" | "in-call" | "ended" */
  phase: "lobby",
  room: "",
  identity: "",
  /** the SDK's connection state, or "idle" */
  connection: "idle",
  /** every connection state of this page so far, in order */
  connectionHistory: [],
  /** {code, message} of the last error shown, or null */
  error: null,
  safetyNumber: "",
  /** the identities the shown safety number covers, sorted */
  safetyParticipants: [],
  /**
   * the people the shown safety number covers, as the SDK lists them:
   * [{identity, verified, self, key (the identity key covered, hex)}]
   */
  safetyCovers: [],
  /** identity → the verification code shown for each other person covered */
  verificationCodes: Object.create(null),
  /**
   * changed security keys waiting for the person's choice, oldest first:
   * [{identity, wasVerified, key (the new key, hex), looksLike (the known
   * person a new name looks like, or ""), again (it replaced an earlier
   * warning for the same person)}]
   */
  keyChanges: [],
  /**
   * participants whose security key this browser's store could not check,
   * held out of the call's keys: [{identity, error}]
   */
  keyCheckFailures: [],
  /**
   * identity → {e2ee, speaking, video, audioMuted, videoMuted}. No
   * prototype: names come from the server, and "__proto__" is a name.
   */
  participants: Object.create(null),
  /**
   * identity → {state: "waiting" | "refused" | "member", by, known,
   * verified} of every participant the SDK counts as a candidate for
   * admission (end-to-end encrypted, with an identity key); by is the
   * member who admitted or refused it ("" for one present when this tab
   * joined). No prototype, as participants.
   */
  admissions: Object.create(null),
  /** this tab's own admission: state "waiting" | "refused" | "member", by the member who decided */
  selfAdmission: { state: "member", by: "" },
  /**
   * the roster alert while it is up: {message, mismatches: [{member,
   * missing, onlyTheirs, onlyMine}]}; null otherwise
   */
  rosterAlert: null,
  self: { speaking: false, audioMuted: false, videoMuted: false, hasAudio: false, hasVideo: false },
  /** media the page could not get: "" or a sentence */
  mediaProblem: "",
  test,
};
window.sotto = { call: null, state };

export function parseSize(s) {
  const m = /^(\d{2,4})x(\d{2,4})$/.exec(s ?? "");
  return m ? { width: Number(m[1]), height: Number(m[2]) } : null;
}
