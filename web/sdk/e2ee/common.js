// @ts-check
/**
 * @file The E2EE API's types, constants and small helpers (index.js is the
 * entry and re-exports what is public).
 */

/** @typedef {import("./identity.js").Identity} Identity */

/** The SFrame cipher suite by default: 0x0004, AES_128_GCM_SHA256_128. */
export const DEFAULT_SUITE = 4;

/**
 * How frames reach the worker: "script" with RTCRtpScriptTransform,
 * "streams" with the createEncodedStreams() fallback.
 * @typedef {"script"|"streams"} TransformMode
 */

/**
 * E2EE.create options.
 * @typedef {object} E2EEOptions
 * @property {import("./store.js").IdentityStore} [store] where the identity and the known people are kept:
 *   this origin's IndexedDB store by default (defaultIdentityStore), a MemoryStore for tests and bots
 * @property {Identity} [identity] an identity of the caller's instead of the store's; known people are then
 *   kept in memory (not with store)
 * @property {number} [suite] SFrame cipher suite (DEFAULT_SUITE); every participant of a room must use the same
 * @property {number} [ackTimeoutMs] how long a sender waits for acks before switching to a new key (2000)
 * @property {number} [graceMs] how long older keys of a sender stay after a newer one is in use (3000)
 * @property {string|URL} [workerUrl] where worker.js is served (next to this file by default)
 * @property {TransformMode} [transform] force one way of reaching the frames (tests); by default
 *   RTCRtpScriptTransform where the browser has it, else createEncodedStreams()
 * @property {AdmissionPolicy} [admission] decides about each participant waiting to be admitted; by default
 *   every one is left waiting ("ask") until admit or refuse, or another member admits them
 * @property {number} [rosterTimeoutMs] how long the members' views of the call may disagree before
 *   "rostermismatch" (5000)
 */

/**
 * What an admission policy decides about a waiting participant: "admit"
 * it, "refuse" it (everyone is told; another member may still admit it),
 * or "ask": leave it waiting for the application (admit, refuse).
 * @typedef {"admit"|"refuse"|"ask"} AdmissionDecision
 */

/**
 * A participant waiting to be admitted: the "waiting" event's detail,
 * and what an admission policy is asked about.
 * @typedef {object} Newcomer
 * @property {string} identity the token's sub
 * @property {Uint8Array<ArrayBuffer>} identityKey the Ed25519 identity key it announced
 * @property {boolean} known this browser's store knew this identity with this key before this call met it
 *   (false for someone met for the first time in this call)
 * @property {boolean} verified the store has this key marked verified for them (markVerified)
 */

/**
 * Decides about a waiting participant (E2EEOptions.admission, connect's
 * admission option). It is asked for every "waiting" event, also while
 * this participant is not admitted itself (an "admit" then does nothing;
 * it is asked again once this participant is admitted). It may return a
 * promise; anything but "admit" and "refuse" counts as "ask".
 * @typedef {(newcomer: Newcomer) => AdmissionDecision|Promise<AdmissionDecision>} AdmissionPolicy
 */

/**
 * One participant with E2EE the node lists, as this participant sees it:
 * what admissions() lists.
 * @typedef {object} ParticipantAdmission
 * @property {string} identity
 * @property {Uint8Array<ArrayBuffer>} identityKey the identity key it announced
 * @property {"waiting"|"member"|"refused"} state refused: waiting, and a member said no
 * @property {string} by who admitted it (member; "" for one present when this participant joined) or refused it
 * @property {boolean} root listed when this participant joined (when it joined again, only those that were members
 *   for it before, unless none of them is listed)
 */

/**
 * One member whose latest signed view of the call differs from this
 * participant's: missing when its view never came, else the names only
 * its view lists (onlyTheirs) and only this participant's does (onlyMine).
 * A name in both lists is one person shown with two different keys.
 * @typedef {object} RosterMismatch
 * @property {string} member
 * @property {boolean} missing
 * @property {string[]} onlyTheirs
 * @property {string[]} onlyMine
 */

/**
 * This participant's standing in the call.
 * @typedef {object} RosterStatus
 * @property {boolean} admitted this participant is a member (until then it waits, and gets no keys)
 * @property {boolean} refused a member refused this participant (and none admitted it)
 * @property {boolean} agreed every member's latest view lists the same people as this participant's: its keys
 *   flow only then
 * @property {boolean} alert the views have disagreed for longer than rosterTimeoutMs ("rostermismatch")
 * @property {RosterMismatch[]} mismatches the members whose view is missing or differs, now
 */

/**
 * The "rostermismatch" event's detail.
 * @typedef {object} RosterMismatchDetail
 * @property {string} message ROSTER_MISMATCH_MESSAGE, to show
 * @property {RosterMismatch[]} mismatches
 */

/** The text of the roster alert (docs/E2EE.md, rule 5). */
export const ROSTER_MISMATCH_MESSAGE = "The server is showing different people to different participants";

/**
 * What start needs once signaling has joined.
 * @typedef {object} StartOptions
 * @property {string} room the room's name, as joined reports it
 * @property {string} self this participant's identity, as joined reports it
 * @property {(to: string[]|null, data: object) => void} send sends a relay message: to the listed identities, or to everyone else (null)
 */

/**
 * Key management counters (Go's e2ee.Stats).
 * @typedef {import("./keys.js").KeyStats} E2EEStats
 */

/**
 * A remote track's frames: decrypted and passed on, refused (tampered,
 * replayed, malformed), or without a key (yet). Failed frames are dropped.
 * Of the rejected, replayed counts the frames refused as already seen: a
 * frame the network or the browser delivered twice is one of them.
 * @typedef {{decrypted: number, rejected: number, noKey: number, replayed: number}} TrackStats
 */

/**
 * 'encrypted' once a participant's frames decrypt; 'cannot-decrypt' when
 * they keep failing (no success for 2 s while frames arrive); 'waiting'
 * before any frame.
 * @typedef {"encrypted"|"cannot-decrypt"|"waiting"} ParticipantState
 */

/**
 * A known person's new identity key, or someone new whose name looks like
 * a known person's (Go's client.KeyChange): the "keychanged" event's
 * detail and what pendingKeyChanges lists.
 * @typedef {object} KeyChange
 * @property {string} identity the person (the token's sub)
 * @property {Uint8Array<ArrayBuffer>} previous the Ed25519 key remembered for them (for looksLike, for that person)
 * @property {Uint8Array<ArrayBuffer>} current the one announced now
 * @property {boolean} wasVerified the previous key had been marked verified
 * @property {string} looksLike "" for a changed key; otherwise the known person whose name identity looks like
 *   (the same skeleton): identity is not known at all, and the name may be made to pass for theirs
 */

/**
 * A participant whose identity key the store could not check: the
 * "keycheckfailed" event's detail and what keyCheckFailures lists.
 * @typedef {object} KeyCheckFailure
 * @property {string} identity the participant (the token's sub)
 * @property {string} error what failed
 */

/**
 * One person a safety number covers (Go's client.Covered).
 * @typedef {object} Covered
 * @property {string} identity
 * @property {Uint8Array<ArrayBuffer>} key the Ed25519 identity key the number covers
 * @property {boolean} verified this client marked that key verified
 * @property {boolean} self this participant
 */

const utf8 = new TextEncoder();

/**
 * Compares strings by their UTF-8 bytes, as Go's strings.Compare.
 * @param {string} a
 * @param {string} b
 * @returns {number}
 */
export function compareUTF8(a, b) {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    if (x[i] !== y[i]) {
      return x[i] - y[i];
    }
  }
  return x.length - y.length;
}

/**
 * @param {Uint8Array} b
 * @returns {string}
 */
export function hexOf(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Key management's mismatches with names only.
 * @param {import("./keys.js").RosterMismatch[]} ms
 * @returns {RosterMismatch[]}
 */
export function namedMismatches(ms) {
  return ms.map((m) => ({ member: m.member, missing: m.missing, onlyTheirs: m.onlyTheirs.map((e) => e.name), onlyMine: m.onlyMine.map((e) => e.name) }));
}

/**
 * The mismatches in words, for the log (as the Go client's
 * RosterMismatchError).
 * @param {RosterMismatch[]} ms
 * @returns {string}
 */
export function describeMismatches(ms) {
  return ms
    .map((m) => {
      if (m.missing) {
        return `${m.member} sent no view`;
      }
      const p = [];
      if (m.onlyTheirs.length > 0) {
        p.push(`also lists ${m.onlyTheirs.join(", ")}`);
      }
      if (m.onlyMine.length > 0) {
        p.push(`does not list ${m.onlyMine.join(", ")}`);
      }
      return `${m.member}'s view ${p.join(" and ")}`;
    })
    .join("; ");
}

/**
 * @param {KeyChange} kc
 * @returns {KeyChange}
 */
export function copyChange(kc) {
  return { identity: kc.identity, previous: kc.previous.slice(), current: kc.current.slice(), wasVerified: kc.wasVerified, looksLike: kc.looksLike };
}

/**
 * What acceptKeyChange rejects with when the change it names is not the
 * one waiting (Go's client.ErrNoKeyChange): nothing waits for that person,
 * or their key changed again since it was shown. Nothing was accepted.
 */
export class NoKeyChangeError extends Error {
  /** @param {string} identity */
  constructor(identity) {
    super(`e2ee: that security key change is not the one waiting: ${JSON.stringify(identity)}`);
    this.name = "NoKeyChangeError";
    /**
     * The person the change named.
     * @readonly
     */
    this.identity = identity;
  }
}
