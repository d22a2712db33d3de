// @ts-check
/**
 * @file Sotto's end-to-end encryption for the browser: what web/sdk's
 * client uses to encrypt every frame it sends and decrypt every frame it
 * receives with SFrame (RFC 9605), the keys shared between participants
 * sealed in relay messages the server cannot read. It interoperates with
 * the Go SDK byte for byte (docs/E2EE.md is the specification).
 *
 * The identity key (Ed25519) comes from an identity store (store.js): by
 * default this origin's, in IndexedDB, so a page keeps its identity (and
 * the safety number of the same people stays the same) across reloads.
 * The session key (X25519, for HPKE) is made here for this E2EE; their
 * private halves never leave WebCrypto (non-extractable).
 *
 * The store also remembers the identity key of everyone met (trust on
 * first use, docs/E2EE.md "Known people"): a participant who comes with
 * another key than the one remembered for their name, or who is new but
 * whose name looks like a known person's (the same skeleton), is held out
 * of key management (no key sealed to them, none accepted from them, not
 * in the safety number) and reported ("keychanged") until the application
 * calls acceptKeyChange with the change it showed, as the Go SDK's client
 * does. A participant whose key the store cannot check (it fails to read
 * or write) is held out too, and reported ("keycheckfailed"): a key not
 * checked is not trusted.
 *
 * Media keys leave this page only signed and sealed to another
 * participant's session key, and otherwise go to this E2EE's own worker,
 * which transforms the frames.
 *
 * Usage (what the SDK does):
 *
 *   const e2ee = await E2EE.create();           // or create({identity}) with a kept Identity
 *   join with public_key: e2ee.publicKey, e2ee: true
 *   new RTCPeerConnection({...config, ...e2ee.rtcConfiguration()})
 *   on joined:            e2ee.start({room, self, send: (to, data) => relay(to, data)})
 *   on every roster change: e2ee.setMembers(others with e2ee and a public key)
 *   on relay:             if (!e2ee.handleRelay(from, data)) give it to the app
 *   e2ee.attachSender(sender); e2ee.attachReceiver(receiver, identity, trackSid)
 *
 * A participant that attaches no sender only listens and, as in Go, sends
 * no key message at all; the first attachSender distributes its key.
 *
 * Admission by members is always on (docs/E2EE.md, "Admission and
 * rosters"; keys.js): the participants setMembers lists are candidates,
 * who get this participant's keys only once a member admits them, and no
 * key goes out while the members' signed views of the call disagree. The
 * first list after start names those already in the call (an empty one
 * makes this participant the first member); a newcomer waits ("waiting")
 * until a member admits it (admit, or the admission policy), and this
 * participant waits itself until a member admits it ("selfadmitted").
 */

import { Identity, SessionKey, announce, equalBytes, parseAnnouncement } from "./identity.js";
import { KeySession, NotAdmittedError, NotWaitingError, isKeyMessage } from "./keys.js";
import { verificationCode } from "./safety.js";
import { isSupportedSuite } from "./sframe.js";
import { MemoryStore, checkKey, defaultIdentityStore, markVerified } from "./store.js";
import { DEFAULT_SUITE, ROSTER_MISMATCH_MESSAGE, NoKeyChangeError, compareUTF8, copyChange, describeMismatches, hexOf, namedMismatches } from "./common.js";
import { FrameChannel, detectMode, supports } from "./frames.js";

export { IndexedDBStore, MemoryStore, defaultIdentityStore } from "./store.js";
export { NotAdmittedError, NotWaitingError } from "./keys.js";
export { skeleton } from "./skeleton.js";
export { DEFAULT_SUITE, ROSTER_MISMATCH_MESSAGE, NoKeyChangeError } from "./common.js";

/**
 * @typedef {import("./common.js").TransformMode} TransformMode
 * @typedef {import("./common.js").E2EEOptions} E2EEOptions
 * @typedef {import("./common.js").AdmissionDecision} AdmissionDecision
 * @typedef {import("./common.js").Newcomer} Newcomer
 * @typedef {import("./common.js").AdmissionPolicy} AdmissionPolicy
 * @typedef {import("./common.js").ParticipantAdmission} ParticipantAdmission
 * @typedef {import("./common.js").RosterMismatch} RosterMismatch
 * @typedef {import("./common.js").RosterStatus} RosterStatus
 * @typedef {import("./common.js").RosterMismatchDetail} RosterMismatchDetail
 * @typedef {import("./common.js").StartOptions} StartOptions
 * @typedef {import("./common.js").E2EEStats} E2EEStats
 * @typedef {import("./common.js").TrackStats} TrackStats
 * @typedef {import("./common.js").ParticipantState} ParticipantState
 * @typedef {import("./common.js").KeyChange} KeyChange
 * @typedef {import("./common.js").KeyCheckFailure} KeyCheckFailure
 * @typedef {import("./common.js").Covered} Covered
 */

/** Only E2EE.create constructs. */
const CREATE = Symbol("E2EE.create");

/**
 * One participant's end-to-end encryption: its identity key, its session
 * key, key management and the worker that transforms frames. Make it
 * with E2EE.create; it lasts as long as the client, across reconnects
 * (one session key for its whole life, so its announcement stays the
 * same).
 *
 * Events: "statechange" (detail {identity, state}) when a participant's
 * ParticipantState changes; "safetynumber" (detail {number}) after start
 * and whenever the membership changes; "keychanged" (detail a KeyChange)
 * when a known person comes with another identity key, or someone new
 * with a name that looks like a known person's: they get no key and none
 * of theirs is taken until acceptKeyChange(change) (once per new key; a
 * later one supersedes it); "keycheckfailed" (detail a KeyCheckFailure)
 * when the store cannot check a participant's key: they get no key and
 * none of theirs is taken until a later check succeeds (once until then).
 *
 * Admission events (keys.js, docs/E2EE.md "Admission and rosters"):
 * "waiting" (detail a Newcomer) someone waits to be admitted, hearing and
 * seeing nothing (also, once this participant is admitted, everyone still
 * waiting, again); "admitted" ({identity, by}; by "" for a participant
 * present when this one joined) someone became a member; "refused"
 * ({identity, by}) a member refused someone waiting; "selfadmitted"
 * ({by}; "" when the call was empty, or everyone who could admit left)
 * this participant was admitted; "selfrefused" ({by}); "rostermismatch"
 * (detail a RosterMismatchDetail) the members' signed views have not
 * listed the same people as this participant's for rosterTimeoutMs: no
 * new key goes out, but for a fresh one after someone leaves, to those
 * who had the current one (repeated when what differs changes);
 * "rosteragreed" ({}) after it, they agree again.
 */
export class E2EE extends FrameChannel {
  /**
   * Takes the identity key from the store (made there the first time;
   * opts.identity instead, if given), makes the session key, and starts
   * the worker. Rejects when the suite is unknown, the browser can
   * neither RTCRtpScriptTransform nor createEncodedStreams(), or the
   * store's identity cannot be used.
   * @param {E2EEOptions} [opts]
   * @returns {Promise<E2EE>}
   */
  static async create(opts = {}) {
    const suite = opts.suite ?? DEFAULT_SUITE;
    if (!isSupportedSuite(suite)) {
      throw new Error(`e2ee: unsupported cipher suite ${suite}`);
    }
    const mode = opts.transform ?? detectMode();
    if (mode === null || !supports(mode)) {
      throw new Error(`e2ee: this browser cannot transform encoded frames${mode ? ` with ${mode}` : ""}`);
    }
    if (opts.identity !== undefined && !(opts.identity instanceof Identity)) {
      throw new TypeError("e2ee: the identity option must be an Identity");
    }
    if (opts.identity !== undefined && opts.store !== undefined) {
      throw new TypeError("e2ee: give an identity or a store, not both (the store holds the identity)");
    }
    const store = opts.store ?? (opts.identity ? new MemoryStore(opts.identity) : await defaultIdentityStore());
    if (typeof store?.identity !== "function" || typeof store.known !== "function" || typeof store.remember !== "function" ||
      typeof store.knownNames !== "function") {
      throw new TypeError("e2ee: the store option must be an IdentityStore (identity, known, remember, knownNames)");
    }
    const identity = await store.identity();
    if (!(identity instanceof Identity)) {
      throw new TypeError("e2ee: the store gave no Identity");
    }
    const sessionKey = await SessionKey.generate();
    const announcement = await announce(identity, sessionKey);
    const worker = new Worker(opts.workerUrl ?? new URL("./worker.js", import.meta.url), { type: "module", name: "sotto-e2ee" });
    if (opts.admission !== undefined && opts.admission !== null && typeof opts.admission !== "function") {
      throw new TypeError("e2ee: the admission option must be a function (newcomer) => \"admit\" | \"refuse\" | \"ask\"");
    }
    const e = new E2EE(CREATE, { identity, store, sessionKey, announcement, worker, mode, suite, ackTimeoutMs: opts.ackTimeoutMs, graceMs: opts.graceMs });
    e.configureAdmission({ admission: opts.admission ?? undefined, rosterTimeoutMs: opts.rosterTimeoutMs });
    try {
      await e.call({ op: "init", suite });
    } catch (err) {
      e.close();
      throw err;
    }
    return e;
  }

  /**
   * Use E2EE.create.
   * @param {symbol} token
   * @param {{identity: Identity, store: import("./store.js").IdentityStore, sessionKey: SessionKey, announcement: string, worker: Worker, mode: TransformMode, suite: number, ackTimeoutMs?: number, graceMs?: number}} o
   */
  constructor(token, o) {
    if (token !== CREATE) {
      throw new TypeError("e2ee: use E2EE.create()");
    }
    super(o.worker, o.mode);
    /**
     * This participant's identity key (the page may keep it for later calls).
     * @readonly
     */
    this.identity = o.identity;
    /**
     * Where the identity and the known people are kept.
     * @readonly
     */
    this.store = o.store;
    /** @private */
    this.sessionKey = o.sessionKey;
    /** @private */
    this.announcement = o.announcement;
    /**
     * The SFrame cipher suite.
     * @readonly
     */
    this.suite = o.suite;
    /** @private */
    this.ackTimeoutMs = o.ackTimeoutMs;
    /** @private */
    this.graceMs = o.graceMs;
    /**
     * Test hook: while true, incoming key messages and acks are dropped
     * (not opened, not acknowledged), so this client cannot decrypt
     * anyone; admissions and roster views still come through, so it is
     * admitted and the others still get its keys.
     * @type {boolean}
     */
    this.denyKeysForTest = false;

    /** @private @type {import("./keys.js").Peer[]|null} members announced before start */
    this.early = null;
    /** @private @type {import("./keys.js").Peer[]|null} the last list setMembers got, before trust */
    this.peers = null;
    /** @private @type {Map<string, KeyChange>} known people's new keys not accepted yet, by identity */
    this.changed = new Map();
    /** @private @type {Map<string, string>} participants whose key the store could not check → why */
    this.unchecked = new Map();
    /** @private @type {Map<string, Uint8Array<ArrayBuffer>|null>} announcement → its identity key (null: does not parse) */
    this.parsed = new Map();
    /** @private @type {Promise<unknown>} membership and trust changes, one at a time */
    this.trustQueue = Promise.resolve();
    /** @private */
    this.safetyQueued = false;
    /** @private @type {AdmissionPolicy|null} */
    this.policy = null;
    /** @private @type {number|undefined} */
    this.rosterTimeoutMs = undefined;
    /** @private @type {Set<string>} identity and key (hex) of those this E2EE met first: not known before */
    this.firstMet = new Set();
    /** @private @type {Promise<void>} admission events, dispatched in order */
    this.eventChain = Promise.resolve();
    /** @private @type {Promise<void>} */
    this.safetyChain = Promise.resolve();
  }

  /**
   * The join message's public_key: this participant's announcement, its
   * identity key, session key and session id signed by the identity key
   * ("sotto-e2ee-v2:" and 192 characters of base64url).
   * @returns {string}
   */
  get publicKey() {
    return this.announcement;
  }

  /**
   * Sets the admission policy and the roster timeout (E2EEOptions'
   * admission and rosterTimeoutMs); an option left undefined stays as it
   * is, a null policy is the default ("ask"). The policy applies from the
   * next "waiting" event; the timeout from the next start in another room.
   * @param {{admission?: AdmissionPolicy|null, rosterTimeoutMs?: number}} o
   */
  configureAdmission(o) {
    if (o.admission !== undefined) {
      if (o.admission !== null && typeof o.admission !== "function") {
        throw new TypeError("e2ee: the admission option must be a function (newcomer) => \"admit\" | \"refuse\" | \"ask\"");
      }
      this.policy = o.admission;
    }
    if (o.rosterTimeoutMs !== undefined) {
      this.rosterTimeoutMs = o.rosterTimeoutMs;
    }
  }

  /**
   * Starts key management once joined, and again after every reconnect
   * with the new session's relay. A reconnect behaves as the Go SDK's: the
   * others saw this participant leave and dropped its keys, so membership
   * is reset (a fresh key, which goes to everyone once admitted again);
   * this participant waits to be admitted again (the others who admitted
   * it before do so on their own), and the next setMembers names those
   * already in the call. A different room or identity starts over.
   * @param {StartOptions} o
   */
  start(o) {
    if (this.closed) {
      throw new Error("e2ee: closed");
    }
    /** @type {StartOptions["send"]} */
    const send = (to, data) => {
      try {
        o.send(to, data);
      } catch (err) {
        console.warn("e2ee: sending a key message failed", err);
      }
    };
    if (this.session && this.session.room === o.room && this.session.self === o.self) {
      const s = this.session;
      s.setSend(send);
      // Joined again (Go's Rejoin, where the Go client reset with
      // SetMembers(nil) before admission): waiting again, everyone's keys
      // dropped, and the next list names the roots.
      this.runTrust(() => s.rejoin()).catch((err) => console.warn("e2ee: rejoin failed", err));
      return;
    }
    this.session?.close();
    /** @type {KeySession} */
    const session = new KeySession({
      room: o.room,
      self: o.self,
      identity: this.identity,
      sessionKey: this.sessionKey,
      suite: this.suite,
      send,
      keys: {
        setSendKey: (kid, base) => this.call({ op: "setSendKey", kid, base }),
        setReceiveKey: (from, kid, base) => this.call({ op: "setReceiveKey", from, kid, base }),
        removeReceiveKey: (from, kid) => this.post({ op: "removeReceiveKey", from, kid }),
        removeParticipant: (from) => this.post({ op: "removeParticipant", from }),
      },
      ackTimeoutMs: this.ackTimeoutMs,
      graceMs: this.graceMs,
      publishing: this.publishing,
      admission: {
        onEvent: (ev) => this.onMembership(session, ev),
        rosterTimeoutMs: this.rosterTimeoutMs,
      },
    });
    this.session = session;
    const early = this.early;
    this.early = null;
    if (early) {
      this.applyMembers(early);
    } else {
      this.emitSafetyNumber();
    }
  }

  /**
   * Tells key management who else is in the call: every other
   * participant whose ParticipantInfo has e2ee true and a public_key (its
   * announcement).
   * Call it with the whole list on every change. Each one's identity key
   * is checked against the store first: a first sight is remembered, and
   * a person remembered with another key is held out (and reported with
   * "keychanged") until acceptKeyChange(change): no key goes to them and
   * none of theirs is taken, but they count in the roster (admission),
   * since the node shows them.
   * @param {ReadonlyArray<{identity: string, publicKey: string}>} peers
   */
  setMembers(peers) {
    const list = peers.map((p) => ({ identity: p.identity, publicKey: p.publicKey }));
    this.peers = list;
    if (!this.session) {
      this.early = list;
      return;
    }
    this.applyMembers(list);
  }

  /**
   * @param {import("./keys.js").Peer[]|null} list
   * @private
   */
  applyMembers(list) {
    const s = /** @type {KeySession} */ (this.session);
    this.runTrust(() => this.updateMembers(s, list)).catch((err) => console.warn("e2ee: membership update failed", err));
  }

  /**
   * Runs op after every membership or trust change queued before it.
   * @template T
   * @param {() => T|Promise<T>} op
   * @returns {Promise<T>}
   * @private
   */
  runTrust(op) {
    const p = this.trustQueue.then(op);
    this.trustQueue = p.catch(() => {});
    return p;
  }

  /**
   * Gives session s the members of list it may trust (null: nobody, a
   * reset), and announces the safety number if that changed them.
   * @param {KeySession} s
   * @param {import("./keys.js").Peer[]|null} list
   * @private
   */
  async updateMembers(s, list) {
    if (s !== this.session || this.closed) {
      return;
    }
    const trusted = list && (await this.trusted(s, list));
    if (s !== this.session || this.closed) {
      return;
    }
    const changed = await s.setMembers(trusted);
    if (changed && s === this.session) {
      this.emitSafetyNumber();
    }
  }

  /**
   * The peers of list, each held (Go's Peer.Held) unless the store trusts
   * its identity key (Go's trustedKeyLocked for each): a first sight is
   * remembered, the known key passes, and a different one is held out and
   * reported once per new key. One held out still counts in the roster,
   * which is about whom the node shows: key management lists it, sends it
   * no key and takes none of its keys or admissions. An announcement that
   * does not parse passes here; the session refuses it.
   * @param {KeySession} s
   * @param {import("./keys.js").Peer[]} list
   * @returns {Promise<import("./keys.js").Peer[]>}
   * @private
   */
  async trusted(s, list) {
    /** @type {Map<string, Uint8Array<ArrayBuffer>|null>} */
    const parsed = new Map();
    const out = [];
    for (const p of list) {
      if (p.identity === s.self) {
        out.push(p); // the session skips it
        continue;
      }
      let key = this.parsed.get(p.publicKey);
      if (key === undefined) {
        try {
          key = (await parseAnnouncement(p.publicKey)).identity;
        } catch {
          key = null;
        }
      }
      parsed.set(p.publicKey, key);
      const held = key !== null && !(await this.trustedKey(p.identity, key));
      out.push({ identity: p.identity, publicKey: p.publicKey, held });
    }
    this.parsed = parsed;
    // Someone not checked who left is held out of nothing any more.
    const here = new Set(list.map((p) => p.identity));
    for (const identity of [...this.unchecked.keys()]) {
      if (!here.has(identity)) {
        this.unchecked.delete(identity);
        this.emitSafetyNumber();
      }
    }
    return out;
  }

  /**
   * Whether person's identity key may take part in key management now.
   * @param {string} person
   * @param {Uint8Array<ArrayBuffer>} key
   * @returns {Promise<boolean>}
   * @private
   */
  async trustedKey(person, key) {
    let seen;
    try {
      seen = await checkKey(this.store, person, key);
    } catch (err) {
      // A key the store could not check (nor, if new, remember) is not
      // trusted: held out, and reported, until a later check succeeds.
      const why = err instanceof Error ? err.message : String(err);
      if (this.unchecked.get(person) !== why) {
        const first = !this.unchecked.has(person);
        this.unchecked.set(person, why);
        console.error(`e2ee: identity store: cannot check ${JSON.stringify(person)}'s security key; holding them out of the call's keys:`, why);
        if (first) {
          this.dispatchEvent(new CustomEvent("keycheckfailed", { detail: { identity: person, error: why } }));
        }
      }
      return false;
    }
    if (this.unchecked.delete(person)) {
      this.emitSafetyNumber();
    }
    if (seen.trust !== "changed" && seen.trust !== "lookalike") {
      if (seen.trust === "new") {
        this.firstMet.add(`${person}\u0000${hexOf(key)}`);
      }
      this.changed.delete(person);
      return true;
    }
    const prev = this.changed.get(person);
    if (prev && equalBytes(prev.current, key)) {
      return false;
    }
    const known = /** @type {import("./store.js").KnownKey} */ (seen.known);
    /** @type {KeyChange} */
    const kc = { identity: person, previous: known.key.slice(), current: key.slice(), wasVerified: known.verified, looksLike: seen.looksLike };
    this.changed.set(person, kc);
    if (kc.looksLike) {
      console.warn("e2ee: a new participant's name looks like a known person's; holding them out of the call's keys until the application accepts:",
        person, "looks like", kc.looksLike);
    } else {
      console.warn("e2ee: a known person's security key changed; holding them out of the call's keys until the application accepts:", person);
    }
    this.dispatchEvent(new CustomEvent("keychanged", { detail: copyChange(kc) }));
    return false;
  }

  /**
   * Takes change.current as change.identity's key (Go's AcceptKeyChange):
   * exactly the key a "keychanged" event reported (and the application
   * showed). It replaces the known one, unverified (for a look-alike name,
   * that name is remembered with it, as someone other than the person it
   * looks like), and the participant gets and gives keys again. Resolves once key management has them
   * back. Rejects with a NoKeyChangeError, accepting nothing, when that
   * change is not the one waiting: nothing waits for that person, or
   * their key changed again since (a new "keychanged" was dispatched for
   * it: show that one).
   * @param {Pick<KeyChange, "identity"|"current">} change the change that was shown
   * @returns {Promise<void>}
   */
  acceptKeyChange(change) {
    const identity = String(change?.identity);
    const current = change?.current instanceof Uint8Array ? change.current.slice() : null;
    return this.runTrust(async () => {
      const waiting = this.changed.get(identity);
      if (!waiting || !current || !equalBytes(waiting.current, current)) {
        throw new NoKeyChangeError(identity);
      }
      await this.store.remember(identity, { key: waiting.current.slice(), verified: false, firstSeen: new Date() });
      this.firstMet.add(`${identity}\u0000${hexOf(waiting.current)}`);
      this.changed.delete(identity);
      if (this.session && this.peers) {
        await this.updateMembers(this.session, this.peers);
      }
    });
  }

  /**
   * The changed keys the application has not accepted yet (Go's
   * PendingKeyChanges).
   * @returns {KeyChange[]}
   */
  pendingKeyChanges() {
    return [...this.changed.values()].map(copyChange);
  }

  /**
   * The participants whose identity key the store could not check, held
   * out of key management until a later check succeeds (the next change
   * of membership checks again).
   * @returns {KeyCheckFailure[]}
   */
  keyCheckFailures() {
    return [...this.unchecked].map(([identity, error]) => ({ identity, error }));
  }

  /**
   * Records that the user compared identity's verification code, computed
   * over key (the key the call covers for them: verificationCode and
   * safetyNumberCovers), and it matched, or with false withdraws that, in
   * the store (Go's MarkVerified). It applies only while key is the key
   * the store knows for them, read and written in one step, and is lost if
   * their key changes. Rejects, marking nothing, for someone never met or
   * known with another key (compare the code again).
   * @param {string} identity
   * @param {Uint8Array<ArrayBuffer>} key
   * @param {boolean} verified
   * @returns {Promise<void>}
   */
  markVerified(identity, key, verified) {
    const k = key instanceof Uint8Array ? key.slice() : null;
    return this.runTrust(async () => {
      if (!k) {
        throw new TypeError("e2ee: markVerified takes the identity key the code was compared over");
      }
      const r = await markVerified(this.store, identity, k, !!verified);
      if (r === "unknown") {
        throw new Error(`e2ee: ${JSON.stringify(identity)} has not been met`);
      }
      if (r === "otherkey") {
        throw new Error(`e2ee: the key known for ${JSON.stringify(identity)} is not the one given: nothing was marked; compare the code again`);
      }
    });
  }

  /**
   * Exactly the people safetyNumber is computed over, this participant
   * included, sorted by identity (Go's SafetyNumberCovers): someone held
   * out (a changed key not accepted, no usable announcement) is not in
   * it. Empty before start.
   * @returns {Promise<Covered[]>}
   */
  async safetyNumberCovers() {
    const s = this.session;
    if (!s) {
      return [];
    }
    const ms = [{ identity: s.self, key: this.identity.publicKey }];
    for (const [identity, key] of s.memberKeys()) {
      ms.push({ identity, key });
    }
    ms.sort((a, b) => compareUTF8(a.identity, b.identity));
    /** @type {Covered[]} */
    const out = [];
    for (const m of ms) {
      let verified = false;
      try {
        const k = await this.store.known(m.identity);
        verified = !!k && k.verified && equalBytes(k.key, m.key);
      } catch (err) {
        console.warn("e2ee: identity store:", String(err));
      }
      out.push({ identity: m.identity, key: m.key, verified, self: m.identity === s.self });
    }
    return out;
  }

  /**
   * Computes the safety number and announces it, once for any number of
   * changes while it is being computed.
   * @private
   */
  emitSafetyNumber() {
    if (this.safetyQueued) {
      return;
    }
    this.safetyQueued = true;
    this.safetyChain = this.safetyChain.then(async () => {
      this.safetyQueued = false;
      if (!this.session || this.closed) {
        return;
      }
      try {
        const number = await this.session.safetyNumber();
        this.dispatchEvent(new CustomEvent("safetynumber", { detail: { number } }));
      } catch (err) {
        console.warn("e2ee: safety number", err);
      }
    });
  }

  /**
   * Turns key management's membership events into this E2EE's events, in
   * order, and asks the admission policy about each waiting participant.
   * @param {KeySession} s
   * @param {import("./keys.js").MembershipEvent} ev
   * @private
   */
  onMembership(s, ev) {
    this.eventChain = this.eventChain.then(async () => {
      if (s !== this.session || this.closed) {
        return;
      }
      switch (ev.kind) {
        case "waiting": {
          const detail = await this.newcomer(ev.identity, /** @type {Uint8Array<ArrayBuffer>} */ (ev.identityKey));
          if (s !== this.session || this.closed) {
            return;
          }
          this.dispatch("waiting", { ...detail, identityKey: detail.identityKey.slice() });
          this.applyPolicy(s, detail);
          return;
        }
        case "admitted":
          this.dispatch("admitted", { identity: ev.identity, by: ev.by });
          this.emitSafetyNumber();
          return;
        case "refused":
          this.dispatch("refused", { identity: ev.identity, by: ev.by });
          return;
        case "selfadmitted":
          this.dispatch("selfadmitted", { by: ev.by });
          this.emitSafetyNumber();
          return;
        case "selfrefused":
          this.dispatch("selfrefused", { by: ev.by });
          return;
        case "rostermismatch": {
          const mismatches = namedMismatches(ev.mismatches);
          console.warn(`e2ee: ${ROSTER_MISMATCH_MESSAGE}; sending no new media key until the views agree:`, describeMismatches(mismatches));
          this.dispatch("rostermismatch", { message: ROSTER_MISMATCH_MESSAGE, mismatches });
          return;
        }
        case "rosteragreed":
          console.info("e2ee: every member's view of the call agrees again");
          this.dispatch("rosteragreed", {});
          return;
      }
    });
  }

  /**
   * Dispatches a CustomEvent. dispatchEvent reports a listener that throws
   * and goes on, so the events after it still come.
   * @param {string} type
   * @param {unknown} detail
   * @private
   */
  dispatch(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /**
   * The Newcomer for identity with key: whether the store knew them
   * before this call, and with the key marked verified.
   * @param {string} identity
   * @param {Uint8Array<ArrayBuffer>} key
   * @returns {Promise<Newcomer>}
   * @private
   */
  async newcomer(identity, key) {
    /** @type {Newcomer} */
    const n = { identity, identityKey: key.slice(), known: false, verified: false };
    try {
      const k = await this.store.known(identity);
      if (k && equalBytes(k.key, key)) {
        n.known = !this.firstMet.has(`${identity}\u0000${hexOf(key)}`);
        n.verified = k.verified === true;
      }
    } catch (err) {
      console.warn("e2ee: identity store:", String(err));
    }
    return n;
  }

  /**
   * Asks the admission policy about newcomer n, and admits or refuses it
   * as it says. Someone no longer waiting, or this participant not being
   * admitted yet, is no failure: the policy is asked again then.
   * @param {KeySession} s
   * @param {Newcomer} n
   * @private
   */
  applyPolicy(s, n) {
    const policy = this.policy;
    if (!policy) {
      return;
    }
    (async () => {
      const decision = await policy({ ...n, identityKey: n.identityKey.slice() });
      if (s !== this.session || this.closed) {
        return;
      }
      if (decision === "admit") {
        await s.admit(n.identity);
      } else if (decision === "refuse") {
        await s.refuse(n.identity);
      }
    })().catch((err) => {
      if (!(err instanceof NotWaitingError) && !(err instanceof NotAdmittedError)) {
        console.warn("e2ee: admission policy:", n.identity, err);
      }
    });
  }

  /**
   * Admits a waiting (or refused) participant: it gets this participant's
   * keys, and a signed admission tells every other member, who then count
   * it as a member too. Rejects with a NotAdmittedError while this
   * participant is not admitted itself, a NotWaitingError when nobody by
   * that name waits (unknown, gone, or a member already), and before start.
   * @param {string} identity
   * @returns {Promise<void>}
   */
  admit(identity) {
    if (!this.session || this.closed) {
      return Promise.reject(new Error("e2ee: not started"));
    }
    return this.session.admit(identity);
  }

  /**
   * Refuses a waiting participant: everyone is told this participant
   * refused it (another member may still admit it). Rejects as admit.
   * @param {string} identity
   * @returns {Promise<void>}
   */
  refuse(identity) {
    if (!this.session || this.closed) {
      return Promise.reject(new Error("e2ee: not started"));
    }
    return this.session.refuse(identity);
  }

  /**
   * The participants with E2EE the node lists, as this participant sees
   * them (waiting, refused or member), sorted by identity; empty before
   * start. Someone held out by a key change not accepted is listed (the
   * node shows them), and gets no key whatever their state.
   * @returns {ParticipantAdmission[]}
   */
  admissions() {
    return this.session ? this.session.participants() : [];
  }

  /**
   * Whether this participant is admitted, and whether every member's view
   * of the call agrees with its own. Before start: nothing admitted.
   * @returns {RosterStatus}
   */
  rosterStatus() {
    if (!this.session) {
      return { admitted: false, refused: false, agreed: false, alert: false, mismatches: [] };
    }
    const st = this.session.rosterStatus();
    return { ...st, mismatches: namedMismatches(st.mismatches) };
  }

  /**
   * Takes a relay message. Returns true when it was a key-management
   * message (it has "sotto_e2ee"): consumed here, not for the application.
   * @param {string} from the sender's identity, as the server reports it
   * @param {any} data the relay's data
   * @returns {boolean}
   */
  handleRelay(from, data) {
    if (!isKeyMessage(data)) {
      return false;
    }
    if (!this.session || this.closed) {
      return true;
    }
    if (this.denyKeysForTest && (data.type === "key" || data.type === "key_ack")) {
      return true;
    }
    // After the membership changes before it, as signaling delivered them:
    // those wait for the store's checks, and a roster view or an admission
    // must not overtake the list that names its sender (Go's client takes
    // both in order on one goroutine). Refusals are counted
    // (badKeyMessages) and logged by the session.
    const s = this.session;
    this.runTrust(() => {
      if (s === this.session && !this.closed) {
        s.handleMessage(from, data).catch(() => {});
      }
    });
    return true;
  }

  /**
   * The call's safety number over this participant and every member, as
   * Go's Session.SafetyNumber: six groups of five digits. "" before start.
   * @returns {Promise<string>}
   */
  safetyNumber() {
    return this.session ? this.session.safetyNumber() : Promise.resolve("");
  }

  /**
   * The verification code of this participant and identity, as the Go
   * client's VerificationCode: six groups of five digits over the two
   * identity keys, identity's the one this call covers for them (what
   * safetyNumberCovers lists and memberKeys has), whatever the store
   * holds now (another tab may have accepted another key for that name);
   * the same in every call for as long as neither changes key. "" for
   * someone the call does not cover (not here, or held out) and before
   * start.
   * @param {string} identity
   * @returns {Promise<string>}
   */
  async verificationCode(identity) {
    const s = this.session;
    const key = s?.memberKeys().get(identity);
    if (!s || !key) {
      return "";
    }
    return verificationCode({ identity: s.self, publicKey: this.identity.publicKey }, { identity, publicKey: key });
  }

  /**
   * Each member's Ed25519 identity key as its announcement carried it and
   * key management checked it (empty before start): what the safety
   * number covers, and what a page remembers people by.
   * @returns {Map<string, Uint8Array<ArrayBuffer>>}
   */
  memberKeys() {
    return this.session ? this.session.memberKeys() : new Map();
  }

  /**
   * Key management counters; zeros before start.
   * @returns {E2EEStats}
   */
  stats() {
    if (!this.session) {
      return { epoch: 0, keysSent: 0, keysReceived: 0, badKeyMessages: 0, replayedKeyMessages: 0, acksReceived: 0, switchesOnAck: 0, switchesOnTimeout: 0 };
    }
    return this.session.stats();
  }

  /** Stops the worker and forgets every key. The E2EE cannot be used again. */
  close() {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this.session?.close();
    this.worker.terminate();
    this.failCalls(new Error("e2ee: closed"));
  }
}
