// @ts-check
/**
 * @file Key management's constants, types, errors and key-message helpers
 * (keys.js is the entry; keycore.js, keyrecv.js and members.js use these).
 */

import { equalBytes } from "./identity.js";
import { ADMISSION_VERSION, BodyReader, admit, compareBytes, decodeSigned, decodeUTF8 } from "./admission.js";
import { AES_128_GCM_SHA256_128 } from "./sframe.js";

/** The SFrame cipher suite Sotto clients use: AES_128_GCM_SHA256_128. */
export const DEFAULT_SUITE = AES_128_GCM_SHA256_128;
/** How long a sender waits for every recipient's ack before switching anyway. */
export const DEFAULT_ACK_TIMEOUT_MS = 2000;
/** How long a receiver keeps a sender's older keys after a newer one is in use. */
export const DEFAULT_GRACE_MS = 3000;

export const MAX_KEYS_PER_SENDER = 4;
// Bounds on key messages kept from participants not yet members (Go's
// maxEarlySenders and maxEarlyPerSender): the newest per sender, of the
// senders heard from last.
export const MAX_EARLY_SENDERS = 64;
export const MAX_EARLY_PER_SENDER = 4;
// Bounds on what replay protection remembers (Go's maxSenderRecords and
// maxRetired): senders, never forgotten within a session (a sender
// beyond the bound is left out of key management instead), and retired
// KIDs per sender, oldest out first (the sequence number refuses older
// ones anyway).
export const MAX_SENDER_RECORDS = 4096;
export const MAX_RETIRED = 256;
// The longest identity a key box can name (a 16-bit length, in UTF-8 bytes).
export const MAX_NAME_BYTES = 0xffff;
export const utf8 = new TextEncoder();
export const KEY_MESSAGE_VERSION = 2;

/** How long members' views may disagree before the alert (Go's DefaultRosterTimeout). */
export const DEFAULT_ROSTER_TIMEOUT_MS = 5000;
/** How far an admission's time may be from this clock (Go's DefaultAdmissionAge). */
export const DEFAULT_ADMISSION_AGE_MS = 2 * 60 * 1000;
// Admissions kept until their admitter or admitted participant is known
// (Go's maxPendingAdmissions).
export const MAX_PENDING_ADMISSIONS = 64;
// How many more participants than are listed here a view may name and
// still be kept (Go's maxViewSlack).
export const MAX_VIEW_SLACK = 16;
// The entries of all the views kept (Go's maxViewEntries).
export const MAX_VIEW_ENTRIES = 1 << 17;

/**
 * Where a KeySession puts the keys frames need: FrameCrypto, or the proxy
 * to the worker that runs one. Promises returned by setReceiveKey must
 * resolve only once frames under the key can decrypt: the ack follows.
 * A sink uses the keys it is given and derives none itself.
 * @typedef {object} KeySink
 * @property {(kid: number, baseKey: Uint8Array<ArrayBuffer>) => (Promise<void>|void)} setSendKey encrypt under this key from now on
 * @property {(from: string, kid: number, baseKey: Uint8Array<ArrayBuffer>) => Promise<void>} setReceiveKey
 * @property {(from: string, kid: number) => void} removeReceiveKey
 * @property {(from: string) => void} removeParticipant
 */

/**
 * Another participant, as signaling announced it.
 * @typedef {object} Peer
 * @property {string} identity its name in the room
 * @property {string} publicKey the public_key from its join: its announcement ("sotto-e2ee-v2:…")
 * @property {boolean} [held] the application holds it out of the call's keys (a key change awaits the user,
 *   Go's Peer.Held): it gets no key and none of its keys is taken; with admission it still counts in the
 *   roster (the node shows it), but its admissions do not
 */

/**
 * A session's counters, as Go's e2ee.Stats.
 * @typedef {object} KeyStats
 * @property {number} epoch this sender's key epoch: incremented by every key switch
 * @property {number} keysSent key messages sent (one per rekey, with a box for each member)
 * @property {number} keysReceived keys opened from other participants
 * @property {number} badKeyMessages key messages that were refused: malformed, did not open, bound to something else, or old
 * @property {number} replayedKeyMessages of those, the ones refused as old: a sequence number not above the
 *   sender's highest, or a KID already retired
 * @property {number} acksReceived
 * @property {number} switchesOnAck key switches after every recipient acknowledged
 * @property {number} switchesOnTimeout key switches after the ack timeout, some recipient silent
 */

/**
 * One base key a session made (sender is itself) or received, for
 * debugging and tests, like Go's e2ee.KeyEvent. Never log these in
 * production.
 * @typedef {{sender: string, kid: number, baseKey: Uint8Array<ArrayBuffer>}} KeyEvent
 */

/**
 * Where a session logs; console fits.
 * @typedef {{info: (...a: any[]) => void, warn: (...a: any[]) => void, error: (...a: any[]) => void}} Logger
 */

/**
 * A key-management message as it travels.
 * @typedef {object} KeyMessage
 * @property {number} sotto_e2ee always 2
 * @property {"key"|"key_ack"|"admit"|"roster"|"refuse"} type
 * @property {number} kid 0 in "admit", "roster" and "refuse"
 * @property {Record<string, string>} [boxes] only in "key": recipient identity to base64url(box)
 * @property {string} [admission] only in "admit": "sotto-admit-v1:…"
 * @property {string} [roster] only in "roster": "sotto-roster-v1:…"
 * @property {string} [identity] only in "refuse": the participant refused
 */

/**
 * Where a participant stands in a session's eyes (Go's ParticipantState):
 * "waiting" to be admitted, "member", or "refused" (waiting, and a member
 * said no; another may still admit it).
 * @typedef {"waiting"|"member"|"refused"} AdmissionState
 */

/**
 * What a MembershipEvent reports (Go's MembershipEventKind):
 * "waiting" (identity, identityKey) a participant waits to be admitted,
 * also one present at join once this session is admitted, if its view has
 * not come; "admitted" (identity, identityKey, by: "" for one present at
 * join that sent its view) it became a member; "refused" (identity,
 * identityKey, by) a member refused it; "selfadmitted" (by: "" when the
 * call was empty, or everyone who could admit left) this participant was
 * admitted; "selfrefused" (by); "rostermismatch" (mismatches) the members'
 * views have disagreed with this session's for rosterTimeoutMs, repeated
 * when what differs changes; "rosteragreed" after it, they agree again.
 * @typedef {"waiting"|"admitted"|"refused"|"selfadmitted"|"selfrefused"|"rostermismatch"|"rosteragreed"} MembershipEventKind
 */

/**
 * One member whose latest view differs from this session's (Go's
 * RosterMismatch): missing when no view of it came since it became a
 * member; else the participants only its view lists (onlyTheirs) and only
 * this session's does (onlyMine), sorted by name, then key.
 * @typedef {object} RosterMismatch
 * @property {string} member
 * @property {boolean} missing
 * @property {import("./roster.js").RosterEntry[]} onlyTheirs
 * @property {import("./roster.js").RosterEntry[]} onlyMine
 */

/**
 * One change of who is admitted, or of whether the members' views agree
 * (Go's MembershipEvent). Fields a kind does not use are "", null or [].
 * @typedef {object} MembershipEvent
 * @property {MembershipEventKind} kind
 * @property {string} identity
 * @property {Uint8Array<ArrayBuffer>|null} identityKey
 * @property {string} by
 * @property {RosterMismatch[]} mismatches
 */

/**
 * Turns admission by members on (Go's AdmissionOptions).
 * @typedef {object} AdmissionOptions
 * @property {(e: MembershipEvent) => void} [onEvent] told every admission and roster event, in order, at the end
 *   of the operation that caused it (calls it makes to the session run after that operation)
 * @property {number} [rosterTimeoutMs] how long the members' views may disagree with this session's (a view
 *   missing counts) before the alert: DEFAULT_ROSTER_TIMEOUT_MS by default
 * @property {number} [maxAgeMs] how far an admission's time may be from this clock: DEFAULT_ADMISSION_AGE_MS
 * @property {() => number} [now] the clock, Unix milliseconds: Date.now by default
 */

/**
 * One participant the node lists, as a session with admission sees it
 * (Go's ParticipantStatus).
 * @typedef {object} ParticipantStatus
 * @property {string} identity
 * @property {Uint8Array<ArrayBuffer>} identityKey the identity key its announcement carries
 * @property {AdmissionState} state
 * @property {string} by who admitted it (member; "" for one present at join) or refused it (refused)
 * @property {boolean} root listed when this session joined (after a rejoin, only those that were members here
 *   before, unless none of them is listed)
 */

/**
 * A session's standing in the call (Go's RosterStatus).
 * @typedef {object} RosterStatus
 * @property {boolean} admitted this participant is a member
 * @property {boolean} refused a member refused this participant (and none admitted it)
 * @property {boolean} agreed every member's latest view lists the same people as this session's: keys flow only then
 * @property {boolean} alert views have disagreed for longer than rosterTimeoutMs
 * @property {RosterMismatch[]} mismatches the members whose view is missing or differs, now
 */

/**
 * KeySession options.
 * @typedef {object} KeySessionOptions
 * @property {string} room the room's name; boxes are bound to it
 * @property {string} self this participant's identity, as its access token names it
 * @property {import("./identity.js").Identity} identity this participant's identity key
 * @property {import("./identity.js").SessionKey} sessionKey this session's key and id, as announced
 * @property {number} [suite] SFrame cipher suite, DEFAULT_SUITE by default; every participant of a room must use the same
 * @property {(to: string[]|null, msg: KeyMessage) => void} send delivers a relay message: to lists recipients, null meaning everyone else
 * @property {KeySink} keys where the keys go
 * @property {number} [ackTimeoutMs] DEFAULT_ACK_TIMEOUT_MS by default
 * @property {number} [graceMs] DEFAULT_GRACE_MS by default
 * @property {(e: KeyEvent) => void} [keyLog] told every base key made or received; tests only
 * @property {Logger} [logger] console by default
 * @property {boolean} [publishing] start as a participant that publishes (as if startPublishing had been called)
 * @property {AdmissionOptions|null} [admission] admission by members and roster checks (Go's Options.Admission):
 *   null or absent leaves it off, so that everyone setMembers lists is a member; every participant of a call
 *   must use the same setting, and E2EE always turns it on
 */

/**
 * What admit and refuse reject with while this participant is not a member
 * itself: its admissions would count with nobody (Go's ErrNotAdmitted).
 */
export class NotAdmittedError extends Error {
  constructor() {
    super("e2ee: this participant is not admitted yet");
    this.name = "NotAdmittedError";
  }
}

/**
 * What admit and refuse reject with for someone not waiting here: unknown,
 * gone, or a member already (Go's ErrNotWaiting).
 */
export class NotWaitingError extends Error {
  /** @param {string} identity */
  constructor(identity) {
    super(`e2ee: no such participant waiting: ${JSON.stringify(identity)}`);
    this.name = "NotWaitingError";
    /**
     * The participant named.
     * @readonly
     */
    this.identity = identity;
  }
}

/** A relay message that is not a key-management message (Go's ErrNotKeyMessage). */
export class NotKeyMessageError extends Error {
  constructor() {
    super("e2ee: not a key-management message");
    this.name = "NotKeyMessageError";
  }
}

/**
 * A key-management message that was refused (Go's ErrKeyMessage);
 * replayed is set for one refused as old (Go's ErrReplayedKey).
 */
export class KeyMessageError extends Error {
  /**
   * @param {string} message
   * @param {boolean} [replayed]
   */
  constructor(message, replayed = false) {
    super(`e2ee: bad key-management message ${message}`);
    this.name = "KeyMessageError";
    /** @readonly */
    this.replayed = replayed;
  }
}

/**
 * Reports whether a relay payload (parsed JSON) is a key-management
 * message, so that the application need not see it: an object with an
 * integer "sotto_e2ee" field (Go's e2ee.IsKeyMessage).
 * @param {unknown} data
 * @returns {boolean}
 */
export function isKeyMessage(data) {
  return typeof data === "object" && data !== null && !Array.isArray(data) && Number.isInteger(/** @type {any} */ (data).sotto_e2ee);
}

/**
 * A message as Go's json.Unmarshal into its keyMessage struct sees it, or
 * null where Go's would fail (a field of the wrong type): such a message
 * is not a key message and is ignored, as in Go.
 * @param {unknown} data
 * @returns {DecodedMessage|null}
 */
export function decodeKeyMessage(data) {
  if (typeof data === "string") {
    try {
      data = JSON.parse(data);
    } catch {
      return null;
    }
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    return null;
  }
  const d = /** @type {Record<string, unknown>} */ (data);
  const version = d.sotto_e2ee ?? 0;
  const type = d.type ?? "";
  const kid = d.kid ?? 0;
  const boxes = d.boxes ?? {};
  if (typeof version !== "number" || !Number.isInteger(version)) {
    return null;
  }
  if (typeof type !== "string") {
    return null;
  }
  if (typeof kid !== "number" || !Number.isInteger(kid) || kid < 0) {
    return null;
  }
  if (typeof boxes !== "object" || boxes === null || Array.isArray(boxes)) {
    return null;
  }
  /** @type {Record<string, string>} */
  const bx = Object.create(null);
  for (const [k, v] of Object.entries(boxes)) {
    if (typeof v !== "string") {
      return null;
    }
    bx[k] = v;
  }
  const admission = d.admission ?? "";
  const roster = d.roster ?? "";
  const identity = d.identity ?? "";
  if (typeof admission !== "string" || typeof roster !== "string" || typeof identity !== "string") {
    return null;
  }
  return { version, type, kid, boxes: bx, admission, roster, identity };
}

/**
 * A key-management message as decodeKeyMessage reads it (Go's keyMessage).
 * @typedef {object} DecodedMessage
 * @property {number} version
 * @property {string} type
 * @property {number} kid
 * @property {Record<string, string>} boxes
 * @property {string} admission
 * @property {string} roster
 * @property {string} identity
 */

/**
 * Compares strings by their UTF-8 bytes, as Go compares strings.
 * @param {string} a
 * @param {string} b
 * @returns {number}
 */
export function compareNames(a, b) {
  return compareBytes(utf8.encode(a), utf8.encode(b));
}

/**
 * The key of an (identity, identity key) pair in maps (Go's pairKey).
 * @param {string} identity
 * @param {Uint8Array} key
 * @returns {string}
 */
export function pairKey(identity, key) {
  return `${identity}\u0000${hex(key)}`;
}

/**
 * Names one member's session in a key's `to` (Go's recipientKey): its
 * identity, identity key and session, so that someone else shown under
 * the same name (a key swapped after a reconnect) is not taken for it.
 * @param {{identity: string, ann: {identity: Uint8Array, sessionId: Uint8Array}}} r
 * @returns {string}
 */
export function recipientKey(r) {
  return `${r.identity}\u0000${hex(r.ann.identity)}${hex(r.ann.sessionId)}`;
}

/**
 * The admitted name and key of an admission, read without checking it
 * (Go's decodeSigned and unmarshalAdmission, as alreadyAdmitted uses
 * them), or null for text that does not read as one.
 * @param {string} s
 * @returns {{name: string, key: Uint8Array<ArrayBuffer>}|null}
 */
export function admittedOf(s) {
  let body;
  try {
    ({ body } = decodeSigned("sotto-admit-v1:", s, (m) => new Error(m)));
  } catch {
    return null;
  }
  const r = new BodyReader(body);
  if (r.byte() !== ADMISSION_VERSION) {
    return null;
  }
  r.u16bytes(); // room
  r.u16bytes(); // admitter
  r.bytes(32); // admitter key
  const name = r.u16bytes();
  const key = r.bytes(32);
  const t = r.u64();
  if (r.short || !name || !key || r.left !== 0 || t >= 1n << 63n) {
    return null;
  }
  const admitted = decodeUTF8(name);
  return admitted === null ? null : { name: admitted, key };
}

/**
 * A roster entry with its key copied.
 * @param {import("./roster.js").RosterEntry} e
 * @returns {import("./roster.js").RosterEntry}
 */
export function copyEntry(e) {
  return { name: e.name, key: e.key.slice(), keySeq: e.keySeq };
}

/**
 * A copy of mismatches, keys and all.
 * @param {RosterMismatch[]} ms
 * @returns {RosterMismatch[]}
 */
export function copyMismatches(ms) {
  return ms.map((m) => ({ member: m.member, missing: m.missing, onlyTheirs: m.onlyTheirs.map(copyEntry), onlyMine: m.onlyMine.map(copyEntry) }));
}

/**
 * Whether x and y list the same (name, key) pairs in the same order (Go's
 * sameEntries); y null is no list at all.
 * @param {{name: string, key: Uint8Array}[]} x
 * @param {{name: string, key: Uint8Array}[]|null} y
 * @returns {boolean}
 */
export function sameEntries(x, y) {
  return y !== null && x.length === y.length && x.every((e, i) => e.name === y[i].name && equalBytes(e.key, y[i].key));
}

/**
 * Go's sameMismatches.
 * @param {RosterMismatch[]} x
 * @param {RosterMismatch[]|null} y
 * @returns {boolean}
 */
export function sameMismatches(x, y) {
  return (
    y !== null &&
    x.length === y.length &&
    x.every((m, i) => m.member === y[i].member && m.missing === y[i].missing && sameEntries(m.onlyTheirs, y[i].onlyTheirs) && sameEntries(m.onlyMine, y[i].onlyMine))
  );
}

/**
 * A participant the node lists, in admission mode (Go's candidate).
 * @typedef {object} Candidate
 * @property {Peer} peer
 * @property {import("./identity.js").Announcement} ann
 * @property {AdmissionState} state
 * @property {string} by
 * @property {boolean} root
 * @property {import("./roster.js").ParsedRosterView|null} view its latest valid view
 */

/**
 * The admission state of a KeySession (Go's admission).
 * @typedef {object} AdmissionData
 * @property {(e: MembershipEvent) => void} onEvent
 * @property {number} rosterTimeoutMs
 * @property {number} maxAgeMs
 * @property {() => number} now
 * @property {boolean} joined the first list (the roots) was taken
 * @property {boolean} rejoined rejoin was called: the roots of the next list are then only those that were members
 *   before in this session (met), if any of them is listed
 * @property {number} joinedAt when the first list was taken (ms)
 * @property {boolean} admitted
 * @property {string} refused who refused this participant, while waiting
 * @property {Map<string, Candidate>} cands
 * @property {Set<string>} remembered the (identity, key) pairs admitted by an admission during this session, or
 *   members while every view agreed: one that leaves and comes back is admitted again. A root is remembered only
 *   once views agreed with it in them: until then it could be a node's ghost that only this session saw listed,
 *   and re-admitting it would show it to everyone as admitted by this member. At most MAX_SENDER_RECORDS.
 * @property {Set<string>} met every pair that was a member here (roots that proved it by their own view too):
 *   after a rejoin, the roots are those present of them. At most MAX_SENDER_RECORDS.
 * @property {import("./admission.js").Admission[]} pending valid admissions waiting for their admitter or admitted
 * @property {bigint} viewSeq
 * @property {import("./roster.js").RosterEntry[]|null} lastView participants of the last view signed
 * @property {KeyMessage|null} viewMsg
 * @property {Map<string, bigint>} viewSeqs highest view_seq per identity and key
 * @property {boolean} hold no new key goes out (not admitted, or views disagree)
 * @property {boolean} rekeyDue
 * @property {boolean} rekeyFresh
 * @property {number|null} since views disagree since (ms); null while they agree
 * @property {ReturnType<typeof setTimeout>|null} timer
 * @property {boolean} alert
 * @property {RosterMismatch[]|null} alerted the mismatches last reported
 * @property {MembershipEvent[]} events
 */

/**
 * The KID a sender with tag uses in epoch: tag << 8 | epoch & 0xff.
 * @param {number} tag 24 bits
 * @param {number} epoch
 * @returns {number}
 */
export function kidOf(tag, epoch) {
  return tag * 256 + (epoch & 0xff);
}

/**
 * The tag of a KID: kid >> 8, without 32-bit shifts.
 * @param {number} kid
 * @returns {number}
 */
export function tagOf(kid) {
  return Math.floor(kid / 256);
}

/**
 * @param {Uint8Array} b
 * @returns {string}
 */
export function hex(b) {
  let s = "";
  for (const x of b) {
    s += x.toString(16).padStart(2, "0");
  }
  return s;
}

/**
 * @typedef {object} SendKey one of this participant's own base keys
 * @property {number} kid
 * @property {number} epoch
 * @property {Uint8Array<ArrayBuffer>} base
 * @property {boolean} shared sent to at least one member
 * @property {Set<string>} to the members it was sealed to (by identity)
 */

/**
 * What replay protection keeps about one sender (its identity and
 * identity key) for the life of the session, across the sender leaving
 * and coming back (Go's senderRecord).
 * @typedef {object} SenderRecord
 * @property {bigint} highest the highest sequence number accepted; 0 none yet
 * @property {{session: string, kid: number}[]} retired KIDs removed from use, oldest first, with the sender session (hex) they belonged to
 */

/**
 * @typedef {object} RemoteKey one key of another participant
 * @property {number} kid
 * @property {number} order insertion counter
 * @property {Uint8Array<ArrayBuffer>} base
 */

/**
 * @typedef {object} Remote another participant's keys
 * @property {string} identity
 * @property {string} encoded its announcement as it came
 * @property {import("./identity.js").Announcement} ann
 * @property {string} session its session id, hex
 * @property {SenderRecord} rec
 * @property {number} tag of its latest key; 0 until then
 * @property {RemoteKey[]} keys oldest first
 * @property {number} order insertion counter for keys
 * @property {number} inUse KID of the latest key a frame decrypted with
 * @property {ReturnType<typeof setTimeout>|null} expiry
 */
