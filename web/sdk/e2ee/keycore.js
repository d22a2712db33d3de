// @ts-check
/** @file Key management: own keys, members and rekeying (Go's keys.go). */

import { base64urlEncode, parseAnnouncement } from "./identity.js";
import { sealKeyBox } from "./seal.js";
import { safetyNumber, verificationCode } from "./safety.js";
import { ratchet, suiteParams } from "./sframe.js";
import { DEFAULT_SUITE, DEFAULT_ACK_TIMEOUT_MS, DEFAULT_GRACE_MS, MAX_SENDER_RECORDS, MAX_RETIRED, MAX_NAME_BYTES, utf8, KEY_MESSAGE_VERSION, DEFAULT_ROSTER_TIMEOUT_MS, DEFAULT_ADMISSION_AGE_MS, recipientKey, copyMismatches, kidOf, hex } from "./keymsg.js";

/**
 * @typedef {import("./keymsg.js").Peer} Peer
 * @typedef {import("./keymsg.js").KeyStats} KeyStats
 * @typedef {import("./keymsg.js").Logger} Logger
 * @typedef {import("./keymsg.js").KeyMessage} KeyMessage
 * @typedef {import("./keymsg.js").MembershipEventKind} MembershipEventKind
 * @typedef {import("./keymsg.js").RosterMismatch} RosterMismatch
 * @typedef {import("./keymsg.js").MembershipEvent} MembershipEvent
 * @typedef {import("./keymsg.js").KeySessionOptions} KeySessionOptions
 * @typedef {import("./keymsg.js").AdmissionData} AdmissionData
 * @typedef {import("./keymsg.js").SendKey} SendKey
 * @typedef {import("./keymsg.js").SenderRecord} SenderRecord
 * @typedef {import("./keymsg.js").Remote} Remote
 */

/**
 * The core of a KeySession: its own sending keys, the members and their
 * keys, rekeying (Go's keys.go). keyrecv.js and members.js build on it.
 */
export class KeyCore {
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
    /** @protected */
    this.identity = opts.identity;
    /** @protected */
    this.selfPub = opts.identity.publicKey;
    /** @protected */
    this.sessionKey = opts.sessionKey;
    /** @protected */
    this.sessionId = opts.sessionKey.id;
    /** @readonly */
    this.suite = opts.suite || DEFAULT_SUITE;
    /** @protected */
    this.hashSize = suiteParams(this.suite).nh;
    /** @protected */
    this.sendMessage = opts.send;
    /** @protected */
    this.sink = opts.keys;
    /** @protected */
    this.ackTimeout = opts.ackTimeoutMs && opts.ackTimeoutMs > 0 ? opts.ackTimeoutMs : DEFAULT_ACK_TIMEOUT_MS;
    /** @protected */
    this.grace = opts.graceMs && opts.graceMs > 0 ? opts.graceMs : DEFAULT_GRACE_MS;
    /** @protected */
    this.keyLog = opts.keyLog;
    /** @protected @type {Logger} */
    this.log = opts.logger ?? console;

    /** @protected */
    this.closed = false;
    /** @protected @type {Promise<unknown>} the operation queue */
    this.queue = Promise.resolve();
    /** @protected @type {Map<string, Remote>} */
    this.members = new Map();
    /** @protected @type {Set<string>|null} members yet to acknowledge next */
    this.pending = null;
    /** @protected @type {ReturnType<typeof setTimeout>|null} */
    this.timer = null;
    /** @protected @type {SendKey|null} waits for acks */
    this.next = null;
    /** @protected set by startPublishing: until then no key is sent and nothing rekeys */
    this.publishing = !!opts.publishing;
    /**
     * @protected @type {Map<string, {kid: number, boxes: Record<string, string>}[]>}
     * key messages of senders not yet members, this participant's box
     * only; the Map's order is the order senders were first heard from
     */
    this.early = new Map();
    /** @protected @type {Map<string, SenderRecord>} by identity and identity key, never forgotten */
    this.senders = new Map();
    /** @protected @type {Set<number>} every sender tag this session drew */
    this.usedTags = new Set();
    /** @protected */
    this.counters = { keysSent: 0, keysReceived: 0, badKeyMessages: 0, replayedKeyMessages: 0, acksReceived: 0, switchesOnAck: 0, switchesOnTimeout: 0 };
    /**
     * @protected the sequence number of this sender's next key message:
     * the Unix time in microseconds now, so it keeps rising across this
     * participant's sessions
     */
    this.seq = BigInt(Date.now()) * 1000n;
    /** @protected @type {AdmissionData|null} admission by members; null without opts.admission */
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

    /** @protected */
    this.tag = 0;
    this.newTag();
    /** @protected @type {SendKey} */
    this.cur = this.newSendKey(0, this.randomKey());
    this.logKey(this.self, this.cur);
    const first = this.cur;
    this.background(() => this.sink.setSendKey(first.kid, first.base));
  }

  /**
   * Draws a random 24-bit sender tag: not 0 and none this session used
   * before, so a KID never comes back (Go's newTag).
   * @protected
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
   * @protected
   */
  background(op) {
    this.run(op).catch((err) => this.log.error("e2ee: key management:", String(err)));
  }

  /**
   * Runs op after every operation queued before it.
   * @template T
   * @param {() => T|Promise<T>} op
   * @returns {Promise<T>}
   * @protected
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
   * @protected
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
   * @protected
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

  /** @protected */
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
   * @protected
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
   * @protected
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
   * @protected
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
   * @protected
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
   * @protected
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
   * @protected
   */
  isRetired(r, kid) {
    return r.rec.retired.some((x) => x.kid === kid && x.session === r.session);
  }

  /**
   * Records kid as retired for r's sender session: it is never installed
   * again.
   * @param {Remote} r
   * @param {number} kid
   * @protected
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
   * @protected
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
   * @protected
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
   * @protected
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
   * @protected
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
   * @protected
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
   * @protected
   */
  switchOnTimeout(kid) {
    if (this.closed || !this.next || this.next.kid !== kid) {
      return;
    }
    this.log.info("e2ee: switching key before every recipient acknowledged it", kid, "silent:", this.pending?.size ?? 0);
    this.counters.switchesOnTimeout++;
    return this.switchNow();
  }

  /** @protected */
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

  // Provided by KeyReceiver and KeySession (keyrecv.js, members.js).

  /**
   * @param {string} from
   * @param {number} kid
   * @param {Record<string, string>} boxes
   * @returns {Promise<void>}
   * @protected
   */
  async handleKey(from, kid, boxes) {
    throw new Error("e2ee: KeyCore.handleKey is KeyReceiver's");
  }

  /**
   * @param {Peer[]} peers
   * @returns {Promise<boolean>}
   * @protected
   */
  async list(peers) {
    throw new Error("e2ee: KeyCore.list is KeySession's");
  }
}
