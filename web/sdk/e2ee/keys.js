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


export {
  DEFAULT_SUITE,
  DEFAULT_ACK_TIMEOUT_MS,
  DEFAULT_GRACE_MS,
  MAX_EARLY_SENDERS,
  MAX_EARLY_PER_SENDER,
  MAX_SENDER_RECORDS,
  DEFAULT_ROSTER_TIMEOUT_MS,
  DEFAULT_ADMISSION_AGE_MS,
  NotAdmittedError,
  NotWaitingError,
  NotKeyMessageError,
  KeyMessageError,
  isKeyMessage,
  kidOf,
} from "./keymsg.js";
export { KeySession } from "./members.js";

/**
 * @typedef {import("./keymsg.js").KeySink} KeySink
 * @typedef {import("./keymsg.js").Peer} Peer
 * @typedef {import("./keymsg.js").KeyStats} KeyStats
 * @typedef {import("./keymsg.js").KeyEvent} KeyEvent
 * @typedef {import("./keymsg.js").Logger} Logger
 * @typedef {import("./keymsg.js").KeyMessage} KeyMessage
 * @typedef {import("./keymsg.js").AdmissionState} AdmissionState
 * @typedef {import("./keymsg.js").MembershipEventKind} MembershipEventKind
 * @typedef {import("./keymsg.js").RosterMismatch} RosterMismatch
 * @typedef {import("./keymsg.js").MembershipEvent} MembershipEvent
 * @typedef {import("./keymsg.js").AdmissionOptions} AdmissionOptions
 * @typedef {import("./keymsg.js").ParticipantStatus} ParticipantStatus
 * @typedef {import("./keymsg.js").RosterStatus} RosterStatus
 * @typedef {import("./keymsg.js").KeySessionOptions} KeySessionOptions
 * @typedef {import("./keymsg.js").DecodedMessage} DecodedMessage
 * @typedef {import("./keymsg.js").Candidate} Candidate
 * @typedef {import("./keymsg.js").AdmissionData} AdmissionData
 * @typedef {import("./keymsg.js").SendKey} SendKey
 * @typedef {import("./keymsg.js").SenderRecord} SenderRecord
 * @typedef {import("./keymsg.js").RemoteKey} RemoteKey
 * @typedef {import("./keymsg.js").Remote} Remote
 */
