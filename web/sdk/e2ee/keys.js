// @ts-check
/**
 * @file Key management of Sotto's end-to-end encryption, the protocol and
 * rules of media/e2ee/keys.go and receive.go, so that browsers and Go
 * clients share keys in one room (docs/E2EE.md, "Key management").
 *
 * Each participant has its own sending key: a random base key of the
 * suite's hash size under KID = tag << 8 | epoch & 0xff, the tag a random
 * non-zero 24-bit number drawn when the session starts and again whenever
 * the epoch's low byte wraps to 0 (so a KID never repeats). The key
 * travels to every other participant in a relay message, version 2:
 *
 *   {"sotto_e2ee":2,"type":"key","kid":N,"boxes":{identity: base64url(box)}}
 *
 * each box signed by this participant's identity key and sealed to the
 * recipient's session key (seal.js), carrying the sender's key sequence
 * number (the Unix time in microseconds when the session was made, plus
 * one for every key message), and each recipient answers the sender alone
 * with {"sotto_e2ee":2,"type":"key_ack","kid":N}. A recipient refuses a
 * box that does not open, is not signed by the key its sender announced,
 * is bound to another room, sender, recipient or session, carries a
 * sequence number not above the highest it accepted from that sender, or
 * a KID it retired for that sender session (the last two counted as
 * replays as well as bad messages).
 *
 * A participant that publishes nothing sends no key at all; once it
 * publishes (startPublishing), when someone joins it ratchets its latest
 * key (if anyone had it) and sends it to everyone, and when someone leaves
 * it draws a fresh key for those who remain. It switches once every
 * recipient acknowledged, or after the ack timeout. Receivers keep at most
 * 4 keys per sender, and drop a sender's older keys a grace period after
 * the first frame under a newer one decrypted. They derive no key from
 * frames: a frame under a KID without a key waits for the key message
 * (anyone who held a sender's previous key, a participant who left among
 * them, could compute its ratchet). A key message that arrives before its
 * sender is a member is kept (this participant's box only, bounded, the
 * oldest making room) until it is.
 *
 * KIDs are below 2^32 (a 24-bit tag shifted by 8), so they are Numbers
 * here and in JSON; note that they exceed 2^31, so they are never built
 * with JavaScript's 32-bit shift operators. Sequence numbers are 64-bit:
 * BigInts.
 *
 * A KeySession works through one operation at a time (the WebCrypto calls
 * are asynchronous; Go's Session holds a lock instead), in the order the
 * calls were made.
 *
 * With the admission option (Go's Options.Admission; E2EE always sets it)
 * the rules of docs/E2EE.md, "Admission and rosters", apply, as in
 * media/e2ee/members.go: the participants setMembers lists are only
 * candidates, who get this session's keys once a member admits them with
 * a signed admission (or, for those listed when this session joined, once
 * they send a signed roster view of their own); every member signs its
 * view of the call whenever its set of members changes; and no new key
 * goes out while any member's latest view lists other people than this
 * session's (nor, for rosterTimeoutMs after joining, while a root has yet
 * to send its view), but for a fresh key after someone left, which goes
 * only to the members that had one of this session's current keys; an
 * alert ("rostermismatch") follows when views disagree for
 * rosterTimeoutMs. Three more messages travel, as Go marshals them:
 *
 *   {"sotto_e2ee":2,"type":"admit","kid":0,"admission":"sotto-admit-v1:…"}
 *   {"sotto_e2ee":2,"type":"roster","kid":0,"roster":"sotto-roster-v1:…"}
 *   {"sotto_e2ee":2,"type":"refuse","kid":0,"identity":NAME}
 *
 * ("kid":0 because Go's keyMessage struct always writes its kid; nobody
 * reads it for these types, and both sides take them with or without it).
 * Without the option, the session counts everyone listed as a member, as
 * before admission existed (the low-level interop tests use that).
 */

import { base64urlDecode, base64urlEncode, equalBytes, parseAnnouncement } from "./identity.js";
import { ADMISSION_VERSION, BodyReader, admit, checkAdmission, compareBytes, decodeSigned, decodeUTF8, parseAdmission } from "./admission.js";
import { diffRosters, parseRoster, signRoster } from "./roster.js";
import { openKeyBox, sealKeyBox } from "./seal.js";
import { safetyNumber, verificationCode } from "./safety.js";
import { ratchet, suiteParams, AES_128_GCM_SHA256_128 } from "./sframe.js";

/** The SFrame cipher suite Sotto clients use: AES_128_GCM_SHA256_128. */
export const DEFAULT_SUITE = AES_128_GCM_SHA256_128;
/** How long a sender waits for every recipient's ack before switching anyway. */
export const DEFAULT_ACK_TIMEOUT_MS = 2000;
/** How long a receiver keeps a sender's older keys after a newer one is in use. */
export const DEFAULT_GRACE_MS = 3000;

const MAX_KEYS_PER_SENDER = 4;
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
const MAX_RETIRED = 256;
// The longest identity a key box can name (a 16-bit length, in UTF-8 bytes).
const MAX_NAME_BYTES = 0xffff;
const utf8 = new TextEncoder();
const KEY_MESSAGE_VERSION = 2;

/** How long members' views may disagree before the alert (Go's DefaultRosterTimeout). */
export const DEFAULT_ROSTER_TIMEOUT_MS = 5000;
/** How far an admission's time may be from this clock (Go's DefaultAdmissionAge). */
export const DEFAULT_ADMISSION_AGE_MS = 2 * 60 * 1000;
// Admissions kept until their admitter or admitted participant is known
// (Go's maxPendingAdmissions).
const MAX_PENDING_ADMISSIONS = 64;
// How many more participants than are listed here a view may name and
// still be kept (Go's maxViewSlack).
const MAX_VIEW_SLACK = 16;
// The entries of all the views kept (Go's maxViewEntries).
const MAX_VIEW_ENTRIES = 1 << 17;

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
function decodeKeyMessage(data) {
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
function compareNames(a, b) {
  return compareBytes(utf8.encode(a), utf8.encode(b));
}

/**
 * The key of an (identity, identity key) pair in maps (Go's pairKey).
 * @param {string} identity
 * @param {Uint8Array} key
 * @returns {string}
 */
function pairKey(identity, key) {
  return `${identity}\u0000${hex(key)}`;
}

/**
 * Names one member's session in a key's `to` (Go's recipientKey): its
 * identity, identity key and session, so that someone else shown under
 * the same name (a key swapped after a reconnect) is not taken for it.
 * @param {{identity: string, ann: {identity: Uint8Array, sessionId: Uint8Array}}} r
 * @returns {string}
 */
function recipientKey(r) {
  return `${r.identity}\u0000${hex(r.ann.identity)}${hex(r.ann.sessionId)}`;
}

/**
 * The admitted name and key of an admission, read without checking it
 * (Go's decodeSigned and unmarshalAdmission, as alreadyAdmitted uses
 * them), or null for text that does not read as one.
 * @param {string} s
 * @returns {{name: string, key: Uint8Array<ArrayBuffer>}|null}
 */
function admittedOf(s) {
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
function copyEntry(e) {
  return { name: e.name, key: e.key.slice(), keySeq: e.keySeq };
}

/**
 * A copy of mismatches, keys and all.
 * @param {RosterMismatch[]} ms
 * @returns {RosterMismatch[]}
 */
function copyMismatches(ms) {
  return ms.map((m) => ({ member: m.member, missing: m.missing, onlyTheirs: m.onlyTheirs.map(copyEntry), onlyMine: m.onlyMine.map(copyEntry) }));
}

/**
 * Whether x and y list the same (name, key) pairs in the same order (Go's
 * sameEntries); y null is no list at all.
 * @param {{name: string, key: Uint8Array}[]} x
 * @param {{name: string, key: Uint8Array}[]|null} y
 * @returns {boolean}
 */
function sameEntries(x, y) {
  return y !== null && x.length === y.length && x.every((e, i) => e.name === y[i].name && equalBytes(e.key, y[i].key));
}

/**
 * Go's sameMismatches.
 * @param {RosterMismatch[]} x
 * @param {RosterMismatch[]|null} y
 * @returns {boolean}
 */
function sameMismatches(x, y) {
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
function tagOf(kid) {
  return Math.floor(kid / 256);
}

/**
 * @param {Uint8Array} b
 * @returns {string}
 */
function hex(b) {
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

/**
 * One participant's key management in a call: its own sending key (with
 * the next one while recipients acknowledge it) and the keys of every
 * other participant, as Go's e2ee.Session.
 */
export class KeySession {
  /** @param {KeySessionOptions} opts */
  constructor(opts) {
    if (!opts.identity) {
      throw new Error("e2ee: KeySession needs an identity");
    }
    if (!opts.sessionKey) {
      throw new Error("e2ee: KeySession needs a session key");
    }
    if (!opts.self) {
      throw new Error("e2ee: KeySession needs self");
    }
    /** @readonly */
    this.room = opts.room;
    /** @readonly */
    this.self = opts.self;
    /** @private */
    this.identity = opts.identity;
    /** @private */
    this.selfPub = opts.identity.publicKey;
    /** @private */
    this.sessionKey = opts.sessionKey;
    /** @private */
    this.sessionId = opts.sessionKey.id;
    /** @readonly */
    this.suite = opts.suite || DEFAULT_SUITE;
    /** @private */
    this.hashSize = suiteParams(this.suite).nh;
    /** @private */
    this.sendMessage = opts.send;
    /** @private */
    this.sink = opts.keys;
    /** @private */
    this.ackTimeout = opts.ackTimeoutMs && opts.ackTimeoutMs > 0 ? opts.ackTimeoutMs : DEFAULT_ACK_TIMEOUT_MS;
    /** @private */
    this.grace = opts.graceMs && opts.graceMs > 0 ? opts.graceMs : DEFAULT_GRACE_MS;
    /** @private */
    this.keyLog = opts.keyLog;
    /** @private @type {Logger} */
    this.log = opts.logger ?? console;

    /** @private */
    this.closed = false;
    /** @private @type {Promise<unknown>} the operation queue */
    this.queue = Promise.resolve();
    /** @private @type {Map<string, Remote>} */
    this.members = new Map();
    /** @private @type {Set<string>|null} members yet to acknowledge next */
    this.pending = null;
    /** @private @type {ReturnType<typeof setTimeout>|null} */
    this.timer = null;
    /** @private @type {SendKey|null} waits for acks */
    this.next = null;
    /** @private set by startPublishing: until then no key is sent and nothing rekeys */
    this.publishing = !!opts.publishing;
    /**
     * @private @type {Map<string, {kid: number, boxes: Record<string, string>}[]>}
     * key messages of senders not yet members, this participant's box
     * only; the Map's order is the order senders were first heard from
     */
    this.early = new Map();
    /** @private @type {Map<string, SenderRecord>} by identity and identity key, never forgotten */
    this.senders = new Map();
    /** @private @type {Set<number>} every sender tag this session drew */
    this.usedTags = new Set();
    /** @private */
    this.counters = { keysSent: 0, keysReceived: 0, badKeyMessages: 0, replayedKeyMessages: 0, acksReceived: 0, switchesOnAck: 0, switchesOnTimeout: 0 };
    /**
     * @private the sequence number of this sender's next key message:
     * the Unix time in microseconds now, so it keeps rising across this
     * participant's sessions
     */
    this.seq = BigInt(Date.now()) * 1000n;
    /** @private @type {AdmissionData|null} admission by members; null without opts.admission */
    this.adm = null;
    if (opts.admission) {
      const o = opts.admission;
      this.adm = {
        onEvent: typeof o.onEvent === "function" ? o.onEvent : () => {},
        rosterTimeoutMs: o.rosterTimeoutMs && o.rosterTimeoutMs > 0 ? o.rosterTimeoutMs : DEFAULT_ROSTER_TIMEOUT_MS,
        maxAgeMs: o.maxAgeMs && o.maxAgeMs > 0 ? o.maxAgeMs : DEFAULT_ADMISSION_AGE_MS,
        now: typeof o.now === "function" ? o.now : Date.now,
        joined: false,
        rejoined: false,
        joinedAt: 0,
        admitted: false,
        refused: "",
        cands: new Map(),
        remembered: new Set(),
        met: new Set(),
        pending: [],
        viewSeq: 0n,
        lastView: null,
        viewMsg: null,
        viewSeqs: new Map(),
        hold: true,
        rekeyDue: false,
        rekeyFresh: false,
        since: null,
        timer: null,
        alert: false,
        alerted: null,
        events: [],
      };
    }

    /** @private */
    this.tag = 0;
    this.newTag();
    /** @private @type {SendKey} */
    this.cur = this.newSendKey(0, this.randomKey());
    this.logKey(this.self, this.cur);
    const first = this.cur;
    this.background(() => this.sink.setSendKey(first.kid, first.base));
  }

  /**
   * Draws a random 24-bit sender tag: not 0 and none this session used
   * before, so a KID never comes back (Go's newTag).
   * @private
   */
  newTag() {
    const t = new Uint32Array(1);
    while (this.tag === 0 || this.usedTags.has(this.tag)) {
      crypto.getRandomValues(t);
      this.tag = t[0] & 0xffffff;
    }
    this.usedTags.add(this.tag);
  }

  /**
   * Runs op in the queue; a failure is logged, there being nobody to tell.
   * @param {() => unknown} op
   * @private
   */
  background(op) {
    this.run(op).catch((err) => this.log.error("e2ee: key management:", String(err)));
  }

  /**
   * Runs op after every operation queued before it.
   * @template T
   * @param {() => T|Promise<T>} op
   * @returns {Promise<T>}
   * @private
   */
  run(op) {
    const p = this.queue.then(op).finally(() => this.deliverEvents());
    this.queue = p.catch(() => {});
    return p;
  }

  /**
   * Hands the membership events an operation queued to onEvent, in order
   * (Go's deliverEvents). A handler that throws is logged; the others
   * still get theirs.
   * @private
   */
  deliverEvents() {
    const a = this.adm;
    if (!a) {
      return;
    }
    while (a.events.length > 0) {
      const e = /** @type {MembershipEvent} */ (a.events.shift());
      try {
        a.onEvent(e);
      } catch (err) {
        this.log.error("e2ee: membership event handler failed", String(err));
      }
    }
  }

  /**
   * Queues a membership event for the end of the operation (Go's emit).
   * @param {MembershipEventKind} kind
   * @param {{identity?: string, identityKey?: Uint8Array<ArrayBuffer>|null, by?: string, mismatches?: RosterMismatch[]}} [f]
   * @private
   */
  emit(kind, f = {}) {
    /** @type {AdmissionData} */ (this.adm).events.push({
      kind,
      identity: f.identity ?? "",
      identityKey: f.identityKey ? f.identityKey.slice() : null,
      by: f.by ?? "",
      mismatches: f.mismatches ? copyMismatches(f.mismatches) : [],
    });
  }

  /** @private */
  randomKey() {
    return crypto.getRandomValues(new Uint8Array(this.hashSize));
  }

  /**
   * This sender's key for epoch. When the epoch's low byte wraps to 0 the
   * KID would repeat an old one, so a new tag is drawn first: a KID never
   * comes back within a session.
   * @param {number} epoch
   * @param {Uint8Array<ArrayBuffer>} base
   * @returns {SendKey}
   * @private
   */
  newSendKey(epoch, base) {
    if (epoch !== 0 && (epoch & 0xff) === 0) {
      this.newTag();
    }
    return { kid: kidOf(this.tag, epoch), epoch, base, shared: false, to: new Set() };
  }

  /**
   * @param {string} sender
   * @param {{kid: number, base: Uint8Array<ArrayBuffer>}} k
   * @private
   */
  logKey(sender, k) {
    this.keyLog?.({ sender, kid: k.kid, baseKey: k.base.slice() });
  }

  /**
   * The KID frames are encrypted under now.
   * @returns {number}
   */
  get kid() {
    return this.cur.kid;
  }

  /**
   * The session's counters and current epoch.
   * @returns {KeyStats}
   */
  stats() {
    return { epoch: this.cur.epoch, ...this.counters };
  }

  /**
   * Resolves once every operation queued so far is done.
   * @returns {Promise<void>}
   */
  idle() {
    return this.run(() => {});
  }

  /**
   * The call's safety number over this participant and every member with
   * a usable announcement (safety.js), as the membership stands now.
   * @returns {Promise<string>}
   */
  safetyNumber() {
    const ms = [{ identity: this.self, publicKey: this.selfPub }];
    for (const r of this.members.values()) {
      ms.push({ identity: r.identity, publicKey: r.ann.identity });
    }
    return safetyNumber(this.room, ms);
  }

  /**
   * The verification code of this participant and member identity
   * (safety.js), or "" when identity is not a member now.
   * @param {string} identity
   * @returns {Promise<string>}
   */
  async verificationCode(identity) {
    const r = this.members.get(identity);
    if (!r) {
      return "";
    }
    return verificationCode({ identity: this.self, publicKey: this.selfPub }, { identity, publicKey: r.ann.identity });
  }

  /**
   * Each member's Ed25519 identity key, as announced and checked.
   * @returns {Map<string, Uint8Array<ArrayBuffer>>}
   */
  memberKeys() {
    return new Map([...this.members].map(([id, r]) => [id, r.ann.identity.slice()]));
  }

  /**
   * Replaces where key messages go (after a reconnect, the new signaling
   * session's relay).
   * @param {(to: string[]|null, msg: KeyMessage) => void} send
   */
  setSend(send) {
    this.sendMessage = send;
  }

  /**
   * Tells the session who else is in the call now: every participant with
   * E2EE on, with the announcement its join carried (this participant is
   * skipped if listed). Once this participant publishes, new members get
   * its key (ratcheted first if anyone had the current one), and if anyone
   * is gone a fresh key goes to those who remain. A member whose
   * announcement changed counts as one who left and one who joined.
   * Left out (logged) are members whose announcement does not parse,
   * whose identity is longer than a key box can name (65535 UTF-8 bytes),
   * and new senders once the session remembers MAX_SENDER_RECORDS for
   * replay protection. Key messages kept from new members are opened.
   * With admission, those listed are candidates: members only once
   * admitted (the first list after the start or a rejoin names this
   * participant's roots; an empty one makes it a member at once).
   * Resolves to whether the membership (of those who get keys) changed.
   * @param {ReadonlyArray<Peer>|null} peers
   * @returns {Promise<boolean>}
   */
  setMembers(peers) {
    const list = (peers ?? []).map((p) => ({ identity: String(p.identity), publicKey: String(p.publicKey), held: p.held === true }));
    return this.run(() => this.setMembersNow(list));
  }

  /**
   * @param {Peer[]} peers
   * @returns {Promise<boolean>}
   * @private
   */
  async setMembersNow(peers) {
    if (this.closed) {
      return false;
    }
    if (this.adm) {
      return this.list(peers);
    }
    /** @type {Map<string, Peer>} */
    const want = new Map();
    for (const m of peers) {
      if (m.identity !== this.self && !m.held) {
        want.set(m.identity, m);
      }
    }
    const { removed, added } = await this.applyMembers(want);
    if ((removed || added) && this.publishing) {
      await this.rekey(removed);
    }
    await this.drainEarly();
    return removed || added;
  }

  /**
   * Makes the members those of want (by identity, with the announcement
   * each carried; ann, when given, is that announcement parsed), and
   * reports whether anyone was removed or added (Go's applyMembersLocked).
   * @param {Map<string, Peer & {ann?: import("./identity.js").Announcement}>} want
   * @returns {Promise<{removed: boolean, added: boolean}>}
   * @private
   */
  async applyMembers(want) {
    let removed = false;
    let added = false;
    for (const [id, r] of [...this.members]) {
      const m = want.get(id);
      if (!m || m.publicKey !== r.encoded) {
        this.dropMember(r);
        removed = true;
      }
    }
    for (const [id, m] of want) {
      if (this.members.has(id)) {
        continue;
      }
      let ann = m.ann;
      if (!ann) {
        try {
          ann = await parseAnnouncement(m.publicKey);
        } catch (err) {
          this.log.warn("e2ee: member without a usable public key is left out", id, String(err));
          continue;
        }
      }
      const bytes = utf8.encode(id).length;
      if (bytes > MAX_NAME_BYTES) {
        this.log.warn("e2ee: member with an identity longer than a key message can name is left out", `${bytes} bytes`);
        continue;
      }
      const rec = this.senderRecord(id, ann.identity);
      if (!rec) {
        this.log.warn("e2ee: too many participants in this session to protect from replays; left out", id, `max ${MAX_SENDER_RECORDS}`);
        continue;
      }
      this.members.set(id, {
        identity: id,
        encoded: m.publicKey,
        ann,
        session: hex(ann.sessionId),
        rec,
        tag: 0,
        keys: [],
        order: 0,
        inUse: 0,
        expiry: null,
      });
      added = true;
    }
    return { removed, added };
  }

  /**
   * The replay record of sender identity with identity key key, made if
   * there is room; null when the session already remembers
   * MAX_SENDER_RECORDS others (Go's senderRecords.get). A record is never
   * forgotten while the session lives: forgetting one would let that
   * sender's old key messages in again, so a node that floods the
   * session with made-up participants only keeps more of them out.
   * @param {string} identity
   * @param {Uint8Array<ArrayBuffer>} key
   * @returns {SenderRecord|null}
   * @private
   */
  senderRecord(identity, key) {
    const k = `${identity}\u0000${hex(key)}`;
    let rec = this.senders.get(k);
    if (!rec) {
      if (this.senders.size >= MAX_SENDER_RECORDS) {
        return null;
      }
      rec = { highest: 0n, retired: [] };
      this.senders.set(k, rec);
    }
    return rec;
  }

  /**
   * Whether r's KID is one this session retired for r's sender session.
   * @param {Remote} r
   * @param {number} kid
   * @returns {boolean}
   * @private
   */
  isRetired(r, kid) {
    return r.rec.retired.some((x) => x.kid === kid && x.session === r.session);
  }

  /**
   * Records kid as retired for r's sender session: it is never installed
   * again.
   * @param {Remote} r
   * @param {number} kid
   * @private
   */
  retire(r, kid) {
    if (this.isRetired(r, kid)) {
      return;
    }
    if (r.rec.retired.length >= MAX_RETIRED) {
      r.rec.retired.shift();
    }
    r.rec.retired.push({ session: r.session, kid });
  }

  /**
   * Handles the kept key messages of senders that became members.
   * @private
   */
  async drainEarly() {
    for (const [from, msgs] of [...this.early]) {
      if (!this.members.has(from)) {
        continue;
      }
      this.early.delete(from);
      for (const m of msgs) {
        try {
          await this.handleKey(from, m.kid, m.boxes);
        } catch {
          // Refused: counted and logged.
        }
      }
    }
  }

  /**
   * Tells the session that this participant is about to send frames: its
   * key goes to every member now, and from now on every change of
   * membership rekeys. Before it, a participant that only listens sends no
   * key message at all (in a large room most do, and each key message
   * costs every member an acknowledgement). Calling it again does nothing.
   * @returns {Promise<void>}
   */
  startPublishing() {
    return this.run(async () => {
      if (this.closed || this.publishing) {
        return;
      }
      this.publishing = true;
      if (this.members.size > 0) {
        await this.rekey(false);
      }
    });
  }

  /**
   * Whether startPublishing was called.
   * @returns {boolean}
   */
  get isPublishing() {
    return this.publishing;
  }

  /**
   * Forgets a member; its keys are retired.
   * @param {Remote} r
   * @private
   */
  dropMember(r) {
    this.members.delete(r.identity);
    this.pending?.delete(r.identity);
    if (r.expiry !== null) {
      clearTimeout(r.expiry);
    }
    for (const k of r.keys) {
      this.retire(r, k.kid);
      k.base.fill(0);
    }
    r.keys = [];
    this.sink.removeParticipant(r.identity);
  }

  /**
   * Makes and distributes the key that fits a membership change. fresh: a
   * member left, so the new key must not derive from any earlier one.
   * @param {boolean} fresh
   * @private
   */
  async rekey(fresh) {
    const a = this.adm;
    /** @type {Set<string>|null} */
    let only = null;
    if (a && a.hold) {
      // Views disagree (or this participant is not admitted yet): no key
      // goes to anyone new until they agree (sync sends it then).
      a.rekeyDue = true;
      if (!fresh) {
        return;
      }
      a.rekeyFresh = false;
      // Someone left: the leaver must not read what follows, so a fresh
      // key goes now, but only to members that had one of this sender's
      // current keys already (they learn nothing new).
      only = new Set();
      for (const id of this.members.keys()) {
        const rk = recipientKey(/** @type {Remote} */ (this.members.get(id)));
        if (this.cur.to.has(rk) || (this.next !== null && this.next.to.has(rk))) {
          only.add(id);
        }
      }
      // Those left out get the key (ratcheted) once views agree; if
      // nobody is, nothing more is due.
      a.rekeyDue = only.size < this.members.size;
    } else if (a) {
      fresh = fresh || a.rekeyFresh;
      a.rekeyDue = false;
      a.rekeyFresh = false;
    }
    const latest = this.next ?? this.cur;
    if (this.members.size === 0 || (only !== null && only.size === 0)) {
      // Nobody to tell. A fresh key still matters: a leaver had the
      // current one.
      if (fresh && latest.shared) {
        await this.switchToFresh();
      }
      return;
    }
    /** @type {SendKey} */
    let k;
    if (fresh || latest.shared) {
      try {
        const base = fresh ? this.randomKey() : await ratchet(this.suite, latest.base);
        k = this.newSendKey((latest.epoch + 1) >>> 0, base);
      } catch (err) {
        this.log.error("e2ee: cannot make a new key; keeping the current one", String(err));
        return;
      }
      this.logKey(this.self, k);
      this.next = k;
    } else {
      // Nobody has the latest key yet: send it as it is.
      k = latest;
    }
    k.shared = true;
    let msg;
    try {
      msg = await this.keyMessage(k, only);
    } catch (err) {
      this.log.error("e2ee: cannot seal the key", String(err));
      return;
    }
    if (this.next === k) {
      this.pending = new Set([...this.members.keys()].filter((id) => only === null || only.has(id)));
      if (this.timer !== null) {
        clearTimeout(this.timer);
      }
      const kid = k.kid;
      this.timer = setTimeout(() => this.background(() => this.switchOnTimeout(kid)), this.ackTimeout);
    }
    this.counters.keysSent++;
    this.sendMessage(null, msg);
  }

  /**
   * Replaces the current key at once with a fresh one nobody has (the
   * room is empty apart from this participant).
   * @private
   */
  switchToFresh() {
    const base = this.randomKey();
    const epoch = Math.max(this.cur.epoch, this.next?.epoch ?? 0) + 1;
    const k = this.newSendKey(epoch >>> 0, base);
    this.logKey(this.self, k);
    this.cur = k;
    this.next = null;
    this.pending = null;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    return this.sink.setSendKey(k.kid, k.base);
  }

  /**
   * The key message for k, with a box for each member (only those in
   * only, if not null), under this sender's next sequence number; notes
   * them in k.to (Go's keyMessageLocked).
   * @param {SendKey} k
   * @param {Set<string>|null} only
   * @returns {Promise<KeyMessage>}
   * @private
   */
  async keyMessage(k, only) {
    const seq = this.seq++;
    /** @type {Record<string, string>} */
    const boxes = Object.create(null);
    for (const [id, r] of this.members) {
      if (only !== null && !only.has(id)) {
        continue;
      }
      let box;
      try {
        box = await sealKeyBox(this.identity, r.ann.hpke, {
          suite: this.suite,
          kid: k.kid,
          seq,
          room: this.room,
          sender: this.self,
          senderKey: this.selfPub,
          senderSession: this.sessionId,
          recipient: id,
          recipientKey: r.ann.identity,
          recipientSession: r.ann.sessionId,
          baseKey: k.base,
        });
      } catch (err) {
        // That member gets no key; the others must still get theirs, or
        // a leaver would keep reading.
        this.log.error("e2ee: cannot seal the key to a member; it gets none", id, String(err));
        continue;
      }
      boxes[id] = base64urlEncode(box);
      k.to.add(recipientKey(r));
    }
    return { sotto_e2ee: KEY_MESSAGE_VERSION, type: "key", kid: k.kid, boxes };
  }

  /**
   * @param {number} kid
   * @private
   */
  switchOnTimeout(kid) {
    if (this.closed || !this.next || this.next.kid !== kid) {
      return;
    }
    this.log.info("e2ee: switching key before every recipient acknowledged it", kid, "silent:", this.pending?.size ?? 0);
    this.counters.switchesOnTimeout++;
    return this.switchNow();
  }

  /** @private */
  switchNow() {
    const k = /** @type {SendKey} */ (this.next);
    this.cur = k;
    this.next = null;
    this.pending = null;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    return this.sink.setSendKey(k.kid, k.base);
  }

  /**
   * Takes a key-management message that participant from sent through
   * signaling's relay (parsed JSON, or its text). Resolves when it is
   * handled (a key installed and acknowledged, an ack counted); rejects
   * with NotKeyMessageError for anything else, and with KeyMessageError
   * (counted in badKeyMessages, and in replayedKeyMessages when it is
   * old) for a message that is refused; nothing else in the session
   * changes then.
   * @param {string} from
   * @param {unknown} data
   * @returns {Promise<void>}
   */
  handleMessage(from, data) {
    const m = decodeKeyMessage(data);
    return this.run(async () => {
      if (!m || m.version === 0) {
        throw new NotKeyMessageError();
      }
      if (m.version !== KEY_MESSAGE_VERSION) {
        throw this.bad(from, `version ${m.version}, this client speaks ${KEY_MESSAGE_VERSION}`);
      }
      switch (m.type) {
        case "key":
          return this.handleKey(from, m.kid, m.boxes);
        case "key_ack":
          if (!this.next || this.next.kid !== m.kid || !this.pending?.has(from)) {
            return; // a late or duplicate ack
          }
          this.counters.acksReceived++;
          this.pending.delete(from);
          if (this.pending.size === 0) {
            this.counters.switchesOnAck++;
            await this.switchNow();
          }
          return;
        case "admit":
        case "refuse":
        case "roster":
          if (!this.adm) {
            return; // admission is off here
          }
          if (m.type === "admit") {
            return this.handleAdmission(from, m);
          }
          if (m.type === "refuse") {
            return this.handleRefusal(from, m);
          }
          return this.handleRoster(from, m);
        default:
          throw this.bad(from, `unknown type ${JSON.stringify(m.type)}`);
      }
    });
  }

  /**
   * Counts and logs a refused message and returns the error to throw.
   * @param {string} from
   * @param {string} why
   * @param {boolean} [replayed] refused as old (rules 4 and 5)
   * @returns {KeyMessageError}
   * @private
   */
  bad(from, why, replayed = false) {
    this.counters.badKeyMessages++;
    if (replayed) {
      this.counters.replayedKeyMessages++;
    }
    const err = new KeyMessageError(`from ${JSON.stringify(from)}: ${replayed ? "replayed: " : ""}${why}`, replayed);
    this.log.warn("e2ee: key message refused", err.message);
    return err;
  }

  /**
   * What is wrong with a body for a message of kid from member r, or
   * null: every rule 3 of docs/E2EE.md ("Key messages").
   * @param {string} from
   * @param {Remote} r
   * @param {number} kid
   * @param {import("./seal.js").OpenedKeyBody} b
   * @returns {string|null}
   * @private
   */
  checkBody(from, r, kid, b) {
    if (b.suite !== this.suite) {
      return `cipher suite 0x${b.suite.toString(16).padStart(4, "0")}, this client uses 0x${this.suite.toString(16).padStart(4, "0")}`;
    }
    if (!Number.isSafeInteger(kid) || b.kid !== BigInt(kid)) {
      return "sealed KID differs from the message's";
    }
    if (b.room !== this.room) {
      return "sealed for another room";
    }
    if (b.sender !== from) {
      return `sealed as from ${JSON.stringify(b.sender)}`;
    }
    if (!equalBytes(b.senderKey, r.ann.identity) || !equalBytes(b.senderSession, r.ann.sessionId)) {
      return "sealed by another key or session of the sender than it announced";
    }
    if (b.recipient !== this.self) {
      return `sealed for ${JSON.stringify(b.recipient)}`;
    }
    if (!equalBytes(b.recipientKey, this.selfPub) || !equalBytes(b.recipientSession, this.sessionId)) {
      return "sealed for another key or session of this participant";
    }
    if (b.baseKey.length !== this.hashSize) {
      return `base key of ${b.baseKey.length} bytes, the suite wants ${this.hashSize}`;
    }
    return null;
  }

  /**
   * @param {string} from
   * @param {number} kid
   * @param {Record<string, string>} boxes
   * @private
   */
  async handleKey(from, kid, boxes) {
    if (!Object.hasOwn(boxes, this.self)) {
      return; // a key for others only (we joined after it was sent)
    }
    if (kid >= 2 ** 32 || kid < 2 ** 8) {
      // Every KID is a 24-bit tag, never 0, and an 8-bit epoch.
      throw this.bad(from, `KID ${kid} is not a 24-bit tag and an 8-bit epoch`);
    }
    let sealed;
    try {
      sealed = base64urlDecode(boxes[this.self]);
    } catch (err) {
      throw this.bad(from, `box: ${String(err)}`);
    }
    const r = this.members.get(from);
    if (!r) {
      // Perhaps its announcement is still on its way (or the application
      // has not accepted its changed key yet): keep this participant's
      // box for setMembers.
      this.queueEarly(from, kid, boxes[this.self]);
      return;
    }
    let b;
    try {
      b = await openKeyBox(this.sessionKey, r.ann.identity, sealed);
    } catch (err) {
      throw this.bad(from, String(err));
    }
    const base = b.baseKey;
    const why = this.checkBody(from, r, kid, b);
    if (why !== null) {
      base.fill(0);
      throw this.bad(from, why);
    }
    if (this.members.get(from) !== r) {
      base.fill(0);
      return; // left meanwhile
    }
    if (b.seq <= r.rec.highest) {
      base.fill(0);
      throw this.bad(from, `sequence number ${b.seq}, already accepted ${r.rec.highest}`, true);
    }
    if (this.isRetired(r, kid)) {
      base.fill(0);
      throw this.bad(from, `KID 0x${kid.toString(16)} was retired`, true);
    }
    if (r.tag !== 0 && tagOf(kid) !== r.tag && (kid & 0xff) !== 0) {
      base.fill(0);
      throw this.bad(from, `KID 0x${kid.toString(16)} neither carries the sender's tag 0x${r.tag.toString(16)} nor starts a new one`);
    }
    if (r.keys.some((k) => k.kid === kid && !equalBytes(k.base, base))) {
      base.fill(0);
      throw this.bad(from, `KID 0x${kid.toString(16)} sent again with another key`);
    }
    try {
      await this.sink.setReceiveKey(from, kid, base);
    } catch (err) {
      base.fill(0);
      throw this.bad(from, String(err));
    }
    r.rec.highest = b.seq;
    r.tag = tagOf(kid);
    this.keep(r, kid, base);
    this.counters.keysReceived++;
    this.logKey(from, { kid, base });
    this.sendMessage([from], { sotto_e2ee: KEY_MESSAGE_VERSION, type: "key_ack", kid });
  }

  /**
   * Keeps the box of a key message from a sender that is not a member,
   * bounded: the newest MAX_EARLY_PER_SENDER messages of the
   * MAX_EARLY_SENDERS senders first heard from last (Go's
   * queueEarlyLocked). Nothing in it is authenticated yet, so it evicts
   * rather than refuses: a node that floods it with messages of senders
   * who never come displaces them, but cannot fill it for good.
   * @param {string} from
   * @param {number} kid
   * @param {string} box
   * @private
   */
  queueEarly(from, kid, box) {
    let q = this.early.get(from);
    if (!q) {
      while (this.early.size >= MAX_EARLY_SENDERS) {
        this.early.delete(/** @type {string} */ (this.early.keys().next().value));
      }
      q = [];
      this.early.set(from, q);
    }
    if (q.length >= MAX_EARLY_PER_SENDER) {
      q.shift();
    }
    /** @type {Record<string, string>} */
    const boxes = Object.create(null);
    boxes[this.self] = box;
    q.push({ kid, boxes });
  }

  /**
   * Adds a key the sink holds to r's keys, evicting (and retiring) the
   * oldest beyond MAX_KEYS_PER_SENDER (Go's keepKeyLocked).
   * @param {Remote} r
   * @param {number} kid
   * @param {Uint8Array<ArrayBuffer>} base
   * @private
   */
  keep(r, kid, base) {
    r.keys = r.keys.filter((k) => k.kid !== kid);
    r.order++;
    r.keys.push({ kid, order: r.order, base });
    while (r.keys.length > MAX_KEYS_PER_SENDER) {
      const old = /** @type {RemoteKey} */ (r.keys.shift());
      this.retire(r, old.kid);
      old.base.fill(0);
      this.sink.removeReceiveKey(r.identity, old.kid);
    }
  }

  /**
   * Records that a frame from participant from decrypted under kid; the
   * first time a newer key is seen in use, the older keys are dropped
   * (and retired) after the grace period (Go's noteInUseLocked).
   * @param {string} from
   * @param {number} kid
   * @returns {Promise<void>}
   */
  noteInUse(from, kid) {
    return this.run(() => {
      const r = this.members.get(from);
      if (!r || r.inUse === kid) {
        return;
      }
      const order = r.keys.find((k) => k.kid === kid)?.order ?? 0;
      const oldOrder = r.keys.find((k) => k.kid === r.inUse)?.order ?? 0;
      if (r.inUse !== 0 && order < oldOrder) {
        return; // a late frame under an older key
      }
      r.inUse = kid;
      if (r.expiry !== null) {
        clearTimeout(r.expiry);
      }
      r.expiry = setTimeout(() => {
        this.background(() => {
          if (this.members.get(r.identity) !== r || r.inUse !== kid) {
            return;
          }
          r.keys = r.keys.filter((k) => {
            if (k.order < order) {
              this.retire(r, k.kid);
              k.base.fill(0);
              this.sink.removeReceiveKey(r.identity, k.kid);
              return false;
            }
            return true;
          });
        });
      }, this.grace);
    });
  }

  // ---- Admission by members and roster views (Go's members.go) ----------

  /**
   * Tells a session with admission that this participant joined the call
   * again (after a reconnect): it is waiting again, and the next
   * setMembers lists its roots: those of them that were members here
   * before, or, if none of them is listed, all (Go's Rejoin). What it
   * remembers (who was admitted, the highest sequence numbers seen)
   * stays. Without admission, it does nothing.
   * @returns {Promise<void>}
   */
  rejoin() {
    return this.run(async () => {
      const a = this.adm;
      if (!a || this.closed) {
        return;
      }
      a.joined = false;
      a.admitted = false;
      a.refused = "";
      a.rejoined = true;
      // Views are awaited afresh: the timer starts again once admitted,
      // and a raised alert ends (it rises again if views still disagree
      // a roster timeout after the new admission).
      a.since = null;
      this.stopRosterTimer();
      if (a.alert) {
        a.alert = false;
        a.alerted = null;
        this.emit("rosteragreed");
      }
      a.cands.clear();
      a.pending = [];
      a.lastView = null;
      a.viewMsg = null;
      await this.sync();
    });
  }

  /**
   * Takes the node's list of participants in admission mode (Go's
   * listLocked): candidates, the first list's roots, newcomers waiting.
   * @param {Peer[]} peers
   * @returns {Promise<boolean>} whether the members changed
   * @private
   */
  async list(peers) {
    const a = /** @type {AdmissionData} */ (this.adm);
    /** @type {Map<string, Peer>} */
    const want = new Map();
    for (const m of peers) {
      if (m.identity !== this.self) {
        want.set(m.identity, m);
      }
    }
    const first = !a.joined;
    a.joined = true;
    if (first) {
      a.joinedAt = a.now();
    }
    for (const [id, c] of [...a.cands]) {
      const m = want.get(id);
      if (!m || m.publicKey !== c.peer.publicKey) {
        a.cands.delete(id);
      } else {
        c.peer.held = m.held === true;
      }
    }
    /** @type {string[]} */
    const newcomers = [];
    for (const [id, m] of want) {
      if (a.cands.has(id)) {
        continue;
      }
      let ann;
      try {
        ann = await parseAnnouncement(m.publicKey);
      } catch (err) {
        this.log.warn("e2ee: participant without a usable public key is left out", id, String(err));
        continue;
      }
      // After a rejoin only those who were members before are roots: a
      // node that makes everyone reconnect cannot slip in a root of its
      // own.
      const root = first && (!a.rejoined || a.met.has(pairKey(id, ann.identity)));
      a.cands.set(id, { peer: m, ann, state: "waiting", by: "", root, view: null });
      newcomers.push(id);
    }
    if (first && a.rejoined && !newcomers.some((id) => a.cands.get(id)?.root)) {
      // Nobody met before is here: roots as on a first join, the same
      // trust as then.
      for (const id of newcomers) {
        /** @type {Candidate} */ (a.cands.get(id)).root = true;
      }
    }
    newcomers.sort(compareNames);
    if (first && a.cands.size === 0) {
      // Alone in the call: nobody can admit this participant, and nobody
      // else is there to admit.
      this.selfAdmitted("");
    }
    for (const id of newcomers) {
      const c = /** @type {Candidate} */ (a.cands.get(id));
      if (a.admitted && a.remembered.has(pairKey(id, c.ann.identity))) {
        // Admitted before in this session: admitted again.
        try {
          this.sendMessage(null, await this.admitCandidate(c));
          continue;
        } catch (err) {
          this.log.error("e2ee: cannot admit a participant again", id, String(err));
        }
      }
      if (c.root) {
        // Present already: a member once its view arrives, or shown as
        // waiting when this participant is admitted.
        continue;
      }
      this.emit("waiting", { identity: id, identityKey: c.ann.identity });
      if (a.admitted && a.viewMsg !== null) {
        // A newcomer learns who this member counts as admitted.
        this.sendMessage([id], a.viewMsg);
      }
    }
    if (!a.admitted && a.cands.size === 0 && !first) {
      // Everyone who could have admitted this participant left.
      this.selfAdmitted("");
    }
    const changed = await this.sync();
    await this.drainEarly();
    return changed;
  }

  /**
   * Makes c a member on this session's own authority and returns the
   * signed admission to send to everyone (Go's admitLocked).
   * @param {Candidate} c
   * @returns {Promise<KeyMessage>}
   * @private
   */
  async admitCandidate(c) {
    const a = /** @type {AdmissionData} */ (this.adm);
    const admission = await admit(this.identity, {
      room: this.room,
      admitter: this.self,
      admitterKey: this.selfPub,
      admitted: c.peer.identity,
      admittedKey: c.ann.identity,
      time: Math.floor(a.now()),
    });
    this.makeMember(c, this.self);
    return { sotto_e2ee: KEY_MESSAGE_VERSION, type: "admit", kid: 0, admission };
  }

  /**
   * Makes this participant a member (by: who admitted it, "" if nobody
   * could) and shows it everyone still waiting, whom it may now admit
   * (Go's selfAdmittedLocked).
   * @param {string} by
   * @private
   */
  selfAdmitted(by) {
    const a = /** @type {AdmissionData} */ (this.adm);
    a.admitted = true;
    a.refused = "";
    this.emit("selfadmitted", { by });
    const ids = [...a.cands].filter(([, c]) => c.state !== "member").map(([id]) => id);
    ids.sort(compareNames);
    for (const id of ids) {
      this.emit("waiting", { identity: id, identityKey: /** @type {Candidate} */ (a.cands.get(id)).ann.identity });
    }
  }

  /**
   * Whether the member named identity is remembered: this session admitted
   * it, or took its admission from a remembered member (Go's chained).
   * @param {string} identity
   * @returns {boolean}
   * @private
   */
  chained(identity) {
    const a = /** @type {AdmissionData} */ (this.adm);
    const c = a.cands.get(identity);
    return c !== undefined && a.remembered.has(pairKey(identity, c.ann.identity));
  }

  /**
   * @param {Candidate} c
   * @param {string} by
   * @private
   */
  makeMember(c, by) {
    const a = /** @type {AdmissionData} */ (this.adm);
    c.state = "member";
    c.by = by;
    const pk = pairKey(c.peer.identity, c.ann.identity);
    // Re-admitted on return only if this session admitted it, or took the
    // admission of one it admitted on that same footing: never one whose
    // trust comes from a root (the node chose the roots).
    if ((by === this.self || (by !== "" && this.chained(by))) && a.remembered.size < MAX_SENDER_RECORDS) {
      a.remembered.add(pk);
    }
    if (a.met.size < MAX_SENDER_RECORDS) {
      a.met.add(pk);
    }
    this.emit("admitted", { identity: c.peer.identity, identityKey: c.ann.identity, by });
  }

  /**
   * The candidate identity names if admit or refuse may act on it, or
   * throws what they reject with.
   * @param {string} identity
   * @returns {Candidate}
   * @private
   */
  waitingCandidate(identity) {
    const a = this.adm;
    if (!a) {
      throw new Error("e2ee: admission is off (the admission option)");
    }
    if (!a.admitted) {
      throw new NotAdmittedError();
    }
    const c = a.cands.get(identity);
    if (!c || c.state === "member") {
      throw new NotWaitingError(identity);
    }
    return c;
  }

  /**
   * Admits a waiting (or refused) participant (Go's Admit): it becomes a
   * member here, and a signed admission goes to everyone, which makes it a
   * member for every member that counts this participant as one. Rejects
   * with NotAdmittedError while this participant is not a member itself,
   * and NotWaitingError for an identity not waiting (unknown, gone, or a
   * member already).
   * @param {string} identity
   * @returns {Promise<void>}
   */
  admit(identity) {
    const id = String(identity);
    return this.run(async () => {
      const c = this.waitingCandidate(id);
      this.sendMessage(null, await this.admitCandidate(c));
      await this.sync();
      await this.drainEarly();
    });
  }

  /**
   * Refuses a waiting participant (Go's Refuse): it stays out here, and
   * everyone is told this member refused it (unsigned: a node could forge
   * or drop that, which shows a participant as refused or waiting, never
   * admits one). Rejects as admit does.
   * @param {string} identity
   * @returns {Promise<void>}
   */
  refuse(identity) {
    const id = String(identity);
    return this.run(() => {
      const c = this.waitingCandidate(id);
      c.state = "refused";
      c.by = this.self;
      this.emit("refused", { identity: id, identityKey: c.ann.identity, by: this.self });
      this.sendMessage(null, { sotto_e2ee: KEY_MESSAGE_VERSION, type: "refuse", kid: 0, identity: id });
    });
  }

  /**
   * The participants the node lists, as this session sees them, sorted by
   * identity (Go's Participants); empty without admission.
   * @returns {ParticipantStatus[]}
   */
  participants() {
    if (!this.adm) {
      return [];
    }
    const ps = [...this.adm.cands.values()].map((c) => ({
      identity: c.peer.identity,
      identityKey: c.ann.identity.slice(),
      state: c.state,
      by: c.by,
      root: c.root,
    }));
    return ps.sort((x, y) => compareNames(x.identity, y.identity));
  }

  /**
   * This session's standing (Go's RosterStatus). Without admission,
   * admitted and agreed.
   * @returns {RosterStatus}
   */
  rosterStatus() {
    const a = this.adm;
    if (!a) {
      return { admitted: true, refused: false, agreed: true, alert: false, mismatches: [] };
    }
    return {
      admitted: a.admitted,
      refused: !a.admitted && a.refused !== "",
      agreed: a.admitted && !a.hold,
      alert: a.alert,
      mismatches: this.mismatches(),
    };
  }

  /**
   * Takes an "admit" message (Go's handleAdmission).
   * @param {string} from
   * @param {DecodedMessage} m
   * @private
   */
  async handleAdmission(from, m) {
    const a = /** @type {AdmissionData} */ (this.adm);
    if (this.alreadyAdmitted(m.admission)) {
      // Every member admits a newcomer it sees waiting, so most
      // admissions come after one already counted: skip their signature
      // checks (Go's alreadyAdmitted).
      return;
    }
    let adm;
    try {
      adm = await parseAdmission(m.admission);
      checkAdmission(adm, this.room, a.now(), a.maxAgeMs);
    } catch (err) {
      throw this.bad(from, String(err));
    }
    if (this.closed) {
      return;
    }
    if (a.pending.length >= MAX_PENDING_ADMISSIONS) {
      a.pending.shift();
    }
    a.pending.push(adm);
    await this.sync();
    await this.drainEarly();
  }

  /**
   * Whether an admission, read without checking it, names someone this
   * session counts as a member already, with the key named: taking it
   * could change nothing (Go's alreadyAdmitted).
   * @param {string} s
   * @returns {boolean}
   * @private
   */
  alreadyAdmitted(s) {
    const a = /** @type {AdmissionData} */ (this.adm);
    const adm = admittedOf(s);
    if (!adm) {
      return false;
    }
    if (adm.name === this.self) {
      return a.admitted && equalBytes(adm.key, this.selfPub);
    }
    const c = a.cands.get(adm.name);
    return !!c && c.state === "member" && equalBytes(c.ann.identity, adm.key);
  }

  /**
   * Applies every pending admission whose admitter is a member here and
   * whose admitted participant is listed with the key named (or is this
   * participant, with its key). Admissions of members already, or of this
   * participant once admitted, are dropped; the others wait, within the
   * bound (Go's applyAdmissionsLocked).
   * @private
   */
  applyAdmissions() {
    const a = /** @type {AdmissionData} */ (this.adm);
    for (let progress = true; progress; ) {
      progress = false;
      // Each was checked for its time when it came: it may wait for its
      // admitter (a key change the user has yet to accept) as long as it
      // takes, within the bound.
      /** @type {import("./admission.js").Admission[]} */
      const keep = [];
      for (const adm of a.pending) {
        const admitter = a.cands.get(adm.admitter);
        if (adm.admitter === this.self || !admitter || admitter.state !== "member" || admitter.peer.held || !equalBytes(admitter.ann.identity, adm.admitterKey)) {
          keep.push(adm); // not (yet) someone whose admissions count
          continue;
        }
        if (adm.admitted === this.self) {
          if (equalBytes(adm.admittedKey, this.selfPub) && !a.admitted) {
            this.selfAdmitted(adm.admitter);
            progress = true;
          }
          continue;
        }
        const c = a.cands.get(adm.admitted);
        if (!c || !equalBytes(c.ann.identity, adm.admittedKey)) {
          keep.push(adm); // the admitted one is not listed (yet) with that key
          continue;
        }
        if (c.state !== "member") {
          this.makeMember(c, adm.admitter);
          progress = true;
        }
      }
      a.pending = keep;
    }
  }

  /**
   * Takes a "roster" message (Go's handleRoster).
   * @param {string} from
   * @param {DecodedMessage} m
   * @private
   */
  async handleRoster(from, m) {
    const a = /** @type {AdmissionData} */ (this.adm);
    let v;
    try {
      v = await parseRoster(m.roster);
    } catch (err) {
      throw this.bad(from, String(err));
    }
    if (this.closed) {
      return;
    }
    const c = a.cands.get(v.member);
    const k = pairKey(v.member, v.memberKey);
    const last = a.viewSeqs.get(k) ?? 0n;
    if (v.entries.length > a.cands.size + 1 + MAX_VIEW_SLACK || !this.roomForView(c, v.entries.length)) {
      // It lists far more people than are here: it cannot agree with this
      // session's, and is not worth keeping.
      throw this.bad(from, `roster view of ${v.entries.length} participants, ${a.cands.size + 1} listed here`);
    }
    if (v.room !== this.room) {
      throw this.bad(from, `roster view for room ${JSON.stringify(v.room)}`);
    }
    if (v.member !== from) {
      throw this.bad(from, `roster view of ${JSON.stringify(v.member)}`);
    }
    if (!c || !equalBytes(c.ann.identity, v.memberKey)) {
      throw this.bad(from, "roster view of someone not listed with that key");
    }
    if (v.viewSeq <= last) {
      throw this.bad(from, `roster view ${v.viewSeq}, not above ${last}`, true);
    }
    if (!a.viewSeqs.has(k) && a.viewSeqs.size >= MAX_SENDER_RECORDS) {
      // Full: forget those not listed now (one coming back needs a new
      // admission anyway); if all are, refuse rather than forget a
      // present member's highest view.
      for (const pk of [...a.viewSeqs.keys()]) {
        // The key is hex, so the last NUL ends the name.
        const i = pk.lastIndexOf("\u0000");
        const o = a.cands.get(pk.slice(0, i));
        if (!o || hex(o.ann.identity) !== pk.slice(i + 1)) {
          a.viewSeqs.delete(pk);
        }
      }
      if (a.viewSeqs.size >= MAX_SENDER_RECORDS) {
        throw this.bad(from, "too many roster views to remember");
      }
    }
    a.viewSeqs.set(k, v.viewSeq);
    c.view = v;
    if (c.root && c.state !== "member") {
      // Listed when this session joined and signing views: a member
      // before this session came. If it is not one in the others' eyes,
      // their views differ from this one's and the alert says so.
      this.makeMember(c, "");
    }
    await this.sync();
    await this.drainEarly();
  }

  /**
   * Takes a "refuse" message (Go's handleRefusal): shown only when a
   * member sent it.
   * @param {string} from
   * @param {DecodedMessage} m
   * @private
   */
  handleRefusal(from, m) {
    const a = /** @type {AdmissionData} */ (this.adm);
    const by = a.cands.get(from);
    if (this.closed || !by || by.state !== "member") {
      return;
    }
    if (m.identity === this.self) {
      if (!a.admitted && a.refused === "") {
        a.refused = from;
        this.emit("selfrefused", { by: from });
      }
      return;
    }
    const c = a.cands.get(m.identity);
    if (c && c.state === "waiting") {
      c.state = "refused";
      c.by = from;
      this.emit("refused", { identity: c.peer.identity, identityKey: c.ann.identity, by: from });
    }
  }

  /**
   * Brings everything in line with the candidates' states (Go's
   * syncLocked): pending admissions, the key members, this session's
   * signed view, the hold on keys and the alert. Resolves to whether the
   * key members changed.
   * @returns {Promise<boolean>}
   * @private
   */
  async sync() {
    const a = /** @type {AdmissionData} */ (this.adm);
    this.applyAdmissions();
    /** @type {Map<string, Peer & {ann: import("./identity.js").Announcement}>} */
    const want = new Map();
    if (a.admitted) {
      for (const [id, c] of a.cands) {
        if (c.state === "member" && !c.peer.held) {
          want.set(id, { identity: c.peer.identity, publicKey: c.peer.publicKey, ann: c.ann });
        }
      }
    }
    const { removed, added } = await this.applyMembers(want);
    if (removed || added) {
      a.rekeyDue = true;
      a.rekeyFresh = a.rekeyFresh || removed;
    }
    if (a.admitted) {
      const entries = this.entries();
      if (!sameEntries(entries, a.lastView)) {
        const micros = BigInt(Math.floor(a.now() * 1000));
        a.viewSeq = a.viewSeq + 1n > micros ? a.viewSeq + 1n : micros;
        try {
          const roster = await signRoster(this.identity, { room: this.room, member: this.self, memberKey: this.selfPub, viewSeq: a.viewSeq, entries });
          /** @type {KeyMessage} */
          const msg = { sotto_e2ee: KEY_MESSAGE_VERSION, type: "roster", kid: 0, roster };
          a.lastView = entries;
          a.viewMsg = msg;
          this.sendMessage(null, msg);
        } catch (err) {
          this.log.error("e2ee: cannot sign this participant's roster view", String(err));
        }
      }
    }
    // Keys flow only while every member's latest view lists the same
    // people as this one.
    const now = a.now();
    const agreed = a.admitted && this.mismatches().length === 0 && !this.rootsPending(now);
    a.hold = !agreed;
    if (agreed) {
      a.since = null;
      this.stopRosterTimer();
      if (a.alert) {
        a.alert = false;
        a.alerted = null;
        this.emit("rosteragreed");
      }
      if (this.publishing && a.rekeyDue) {
        await this.rekey(false);
      }
    } else if (a.admitted) {
      if (this.publishing && a.rekeyFresh) {
        // A leaver must not read on while views disagree.
        await this.rekey(true);
      }
      if (a.since === null) {
        a.since = now;
      }
      if (a.alert) {
        this.reportMismatch();
      } else if (now - a.since >= a.rosterTimeoutMs) {
        // Still apart after the timeout: roots that sent no view by now
        // count as waiting, and any other difference raises the alert.
        if (this.mismatches().length > 0) {
          a.alert = true;
          this.reportMismatch();
        }
      } else if (a.timer === null) {
        const timer = setTimeout(() => this.background(() => this.rosterTimeout(timer)), Math.max(0, a.rosterTimeoutMs - (now - a.since)));
        a.timer = timer;
      }
    }
    return removed || added;
  }

  /** @private */
  stopRosterTimer() {
    const a = this.adm;
    if (a && a.timer !== null) {
      clearTimeout(a.timer);
      a.timer = null;
    }
  }

  /**
   * Looks again once views have disagreed (or roots have been silent) for
   * rosterTimeoutMs: sync then raises the alert, or lets keys flow if only
   * silent roots held them (Go's rosterTimeout).
   * @param {ReturnType<typeof setTimeout>} timer the timer that fired
   * @returns {Promise<void>}
   * @private
   */
  async rosterTimeout(timer) {
    const a = /** @type {AdmissionData} */ (this.adm);
    if (this.closed || a.timer !== timer) {
      return;
    }
    a.timer = null;
    await this.sync();
  }

  /**
   * Whether a view of n entries from c may be kept: the views kept (c's
   * replaced) stay within MAX_VIEW_ENTRIES (Go's roomForViewLocked).
   * @param {Candidate|undefined} c
   * @param {number} n
   * @returns {boolean}
   * @private
   */
  roomForView(c, n) {
    const a = /** @type {AdmissionData} */ (this.adm);
    let total = n;
    for (const o of a.cands.values()) {
      if (o !== c && o.view !== null) {
        total += o.view.entries.length;
      }
    }
    return total <= MAX_VIEW_ENTRIES;
  }

  /**
   * Whether a participant listed when this session joined has neither
   * become a member nor had rosterTimeoutMs to send its view: until then
   * this session sends no key, so that a node that delays the real
   * members' views cannot have it agree with a ghost's first (Go's
   * rootsPendingLocked).
   * @param {number} now
   * @returns {boolean}
   * @private
   */
  rootsPending(now) {
    const a = /** @type {AdmissionData} */ (this.adm);
    if (now - a.joinedAt >= a.rosterTimeoutMs) {
      return false;
    }
    for (const c of a.cands.values()) {
      if (c.root && c.state !== "member") {
        return true;
      }
    }
    return false;
  }

  /**
   * Emits the mismatches if they differ from the last reported (Go's
   * reportMismatchLocked).
   * @private
   */
  reportMismatch() {
    const a = /** @type {AdmissionData} */ (this.adm);
    const ms = this.mismatches();
    if (ms.length === 0 || sameMismatches(ms, a.alerted)) {
      return;
    }
    a.alerted = ms;
    this.emit("rostermismatch", { mismatches: ms });
  }

  /**
   * This session's view: itself and its members, each with the latest
   * key sequence number accepted from it, its own that of the last key
   * message it sent; sorted by name, then key (Go's entriesLocked).
   * @returns {import("./roster.js").RosterEntry[]}
   * @private
   */
  entries() {
    const a = /** @type {AdmissionData} */ (this.adm);
    const own = this.counters.keysSent > 0 ? this.seq - 1n : 0n;
    /** @type {{name: string, key: Uint8Array<ArrayBuffer>, keySeq: bigint, utf8: Uint8Array}[]} */
    const es = [{ name: this.self, key: this.selfPub, keySeq: own, utf8: utf8.encode(this.self) }];
    for (const c of a.cands.values()) {
      if (c.state !== "member") {
        continue;
      }
      const id = c.peer.identity;
      es.push({ name: id, key: c.ann.identity, keySeq: this.members.get(id)?.rec.highest ?? 0n, utf8: utf8.encode(id) });
    }
    es.sort((x, y) => compareBytes(x.utf8, y.utf8) || compareBytes(x.key, y.key));
    return es.map((e) => ({ name: e.name, key: e.key, keySeq: e.keySeq }));
  }

  /**
   * The members whose latest view is missing or lists other people than
   * this session's, sorted by member (Go's mismatchesLocked).
   * @returns {RosterMismatch[]}
   * @private
   */
  mismatches() {
    const a = /** @type {AdmissionData} */ (this.adm);
    if (!a.admitted) {
      return [];
    }
    const mine = { entries: this.entries() };
    /** @type {RosterMismatch[]} */
    const ms = [];
    for (const c of a.cands.values()) {
      if (c.state !== "member") {
        continue;
      }
      if (c.view === null) {
        ms.push({ member: c.peer.identity, missing: true, onlyTheirs: [], onlyMine: [] });
        continue;
      }
      const { onlyA, onlyB } = diffRosters(c.view, mine);
      if (onlyA.length > 0 || onlyB.length > 0) {
        ms.push({ member: c.peer.identity, missing: false, onlyTheirs: onlyA, onlyMine: onlyB });
      }
    }
    return ms.sort((x, y) => compareNames(x.member, y.member));
  }

  /** Stops the session's timers and forgets every member's keys. */
  close() {
    this.closed = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.stopRosterTimer();
    for (const r of [...this.members.values()]) {
      this.dropMember(r);
    }
  }
}
