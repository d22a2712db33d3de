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
 */

import { base64urlDecode, base64urlEncode, equalBytes, parseAnnouncement } from "./identity.js";
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
 * @property {"key"|"key_ack"} type
 * @property {number} kid
 * @property {Record<string, string>} [boxes] only in "key": recipient identity to base64url(box)
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
 */

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
 * @returns {{version: number, type: string, kid: number, boxes: Record<string, string>}|null}
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
  return { version, type, kid, boxes: bx };
}

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
    const p = this.queue.then(op);
    this.queue = p.catch(() => {});
    return p;
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
    return { kid: kidOf(this.tag, epoch), epoch, base, shared: false };
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
   * Resolves to whether the membership changed.
   * @param {ReadonlyArray<Peer>|null} peers
   * @returns {Promise<boolean>}
   */
  setMembers(peers) {
    const list = (peers ?? []).map((p) => ({ identity: String(p.identity), publicKey: String(p.publicKey) }));
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
    /** @type {Map<string, Peer>} */
    const want = new Map();
    for (const m of peers) {
      if (m.identity !== this.self) {
        want.set(m.identity, m);
      }
    }
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
      let ann;
      try {
        ann = await parseAnnouncement(m.publicKey);
      } catch (err) {
        this.log.warn("e2ee: member without a usable public key is left out", id, String(err));
        continue;
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
    if ((removed || added) && this.publishing) {
      await this.rekey(removed);
    }
    await this.drainEarly();
    return removed || added;
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
    const latest = this.next ?? this.cur;
    if (this.members.size === 0) {
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
      msg = await this.keyMessage(k);
    } catch (err) {
      this.log.error("e2ee: cannot seal the key", String(err));
      return;
    }
    if (this.next === k) {
      this.pending = new Set(this.members.keys());
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
   * The key message for k, with a box for each member, under this
   * sender's next sequence number.
   * @param {SendKey} k
   * @returns {Promise<KeyMessage>}
   * @private
   */
  async keyMessage(k) {
    const seq = this.seq++;
    /** @type {Record<string, string>} */
    const boxes = Object.create(null);
    for (const [id, r] of this.members) {
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

  /** Stops the session's timers and forgets every member's keys. */
  close() {
    this.closed = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    for (const r of [...this.members.values()]) {
      this.dropMember(r);
    }
  }
}
