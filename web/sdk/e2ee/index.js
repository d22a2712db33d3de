// @ts-check
/**
 * @file Sotto's end-to-end encryption for the browser: what web/sdk's
 * client uses to encrypt every frame it sends and decrypt every frame it
 * receives with SFrame (RFC 9605), the keys shared between participants
 * sealed in relay messages the server cannot read. It interoperates with
 * the Go SDK byte for byte (docs/E2EE.md is the specification).
 *
 * The identity key (Ed25519) is made here unless the caller passes one it
 * kept, and the session key (X25519, for HPKE) is made here for this
 * E2EE; their private halves never leave WebCrypto (non-extractable).
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
 */

import { Identity, SessionKey, announce } from "./identity.js";
import { KeySession, isKeyMessage } from "./keys.js";
import { isSupportedSuite } from "./sframe.js";

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
 * @property {Identity} [identity] this participant's identity key, one kept from an earlier call
 *   (Identity.fromKeys rebuilds one from CryptoKeys stored in IndexedDB); a fresh one by default
 * @property {number} [suite] SFrame cipher suite (DEFAULT_SUITE); every participant of a room must use the same
 * @property {number} [ackTimeoutMs] how long a sender waits for acks before switching to a new key (2000)
 * @property {number} [graceMs] how long older keys of a sender stay after a newer one is in use (3000)
 * @property {string|URL} [workerUrl] where worker.js is served (next to this file by default)
 * @property {TransformMode} [transform] force one way of reaching the frames (tests); by default
 *   RTCRtpScriptTransform where the browser has it, else createEncodedStreams()
 */

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

/** Only E2EE.create constructs. */
const CREATE = Symbol("E2EE.create");

/**
 * The transform mode this browser supports, or null.
 * @returns {TransformMode|null}
 */
function detectMode() {
  const g = /** @type {any} */ (globalThis);
  if (typeof g.RTCRtpScriptTransform === "function") {
    return "script";
  }
  if (typeof g.RTCRtpSender === "function" && "createEncodedStreams" in g.RTCRtpSender.prototype) {
    return "streams";
  }
  return null;
}

/**
 * Whether mode works in this browser.
 * @param {TransformMode} mode
 * @returns {boolean}
 */
function supports(mode) {
  const g = /** @type {any} */ (globalThis);
  if (mode === "script") {
    return typeof g.RTCRtpScriptTransform === "function";
  }
  return typeof g.RTCRtpSender === "function" && "createEncodedStreams" in g.RTCRtpSender.prototype;
}

/**
 * One participant's end-to-end encryption: its identity key, its session
 * key, key management and the worker that transforms frames. Make it
 * with E2EE.create; it lasts as long as the client, across reconnects
 * (one session key for its whole life, so its announcement stays the
 * same).
 *
 * Events: "statechange" (detail {identity, state}) when a participant's
 * ParticipantState changes; "safetynumber" (detail {number}) after start
 * and whenever the membership changes.
 */
export class E2EE extends EventTarget {
  /**
   * Makes the identity key (unless opts.identity gives one) and the
   * session key, and starts the worker. Rejects when the suite is unknown
   * or the browser can neither RTCRtpScriptTransform nor
   * createEncodedStreams().
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
    const identity = opts.identity ?? (await Identity.generate());
    const sessionKey = await SessionKey.generate();
    const announcement = await announce(identity, sessionKey);
    const worker = new Worker(opts.workerUrl ?? new URL("./worker.js", import.meta.url), { type: "module", name: "sotto-e2ee" });
    const e = new E2EE(CREATE, { identity, sessionKey, announcement, worker, mode, suite, ackTimeoutMs: opts.ackTimeoutMs, graceMs: opts.graceMs });
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
   * @param {{identity: Identity, sessionKey: SessionKey, announcement: string, worker: Worker, mode: TransformMode, suite: number, ackTimeoutMs?: number, graceMs?: number}} o
   */
  constructor(token, o) {
    if (token !== CREATE) {
      throw new TypeError("e2ee: use E2EE.create()");
    }
    super();
    /**
     * This participant's identity key (the page may keep it for later calls).
     * @readonly
     */
    this.identity = o.identity;
    /** @private */
    this.sessionKey = o.sessionKey;
    /** @private */
    this.announcement = o.announcement;
    /** @private */
    this.worker = o.worker;
    /**
     * How frames reach the worker in this browser.
     * @readonly
     * @type {TransformMode}
     */
    this.transformMode = o.mode;
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
     * Test hook: while true, incoming key messages are dropped (not
     * opened, not acknowledged), so this client cannot decrypt anyone.
     * @type {boolean}
     */
    this.denyKeysForTest = false;

    /** @private @type {KeySession|null} */
    this.session = null;
    /** @private @type {import("./keys.js").Peer[]|null} members announced before start */
    this.early = null;
    /** @private */
    this.closed = false;
    /** @private a sender is attached: this participant publishes */
    this.publishing = false;
    /** @private @type {Map<number, {resolve: () => void, reject: (e: Error) => void}>} */
    this.calls = new Map();
    /** @private */
    this.nextCall = 1;
    /** @private @type {Map<string, TrackStats>} */
    this.tracks = new Map();
    /** @private */
    this.sent = { encrypted: 0, dropped: 0 };
    /** @private @type {Map<string, ParticipantState>} */
    this.states = new Map();
    /** @private @type {WeakSet<RTCRtpSender>} */
    this.senders = new WeakSet();
    /** @private @type {WeakMap<RTCRtpReceiver, object>} the options object of a fallback receiver's streams */
    this.receivers = new WeakMap();
    /** @private */
    this.nextTransform = 1;
    /** @private */
    this.safetyQueued = false;
    /** @private @type {Promise<void>} */
    this.safetyChain = Promise.resolve();

    this.worker.onmessage = (e) => this.onWorkerMessage(e.data);
    this.worker.onerror = (e) => {
      e.preventDefault();
      this.failCalls(new Error(`e2ee: worker failed: ${e.message || "could not load"}`));
    };
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
   * Starts key management once joined, and again after every reconnect
   * with the new session's relay. A reconnect behaves as the Go SDK's: the
   * others saw this participant leave and dropped its keys, so membership
   * is reset (a fresh key, which the next setMembers sends to everyone).
   * A different room or identity starts over.
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
      this.session.setSend(send);
      this.applyMembers(null);
      return;
    }
    this.session?.close();
    this.session = new KeySession({
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
    });
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
   * Call it with the whole list on every change.
   * @param {ReadonlyArray<{identity: string, publicKey: string}>} peers
   */
  setMembers(peers) {
    const list = peers.map((p) => ({ identity: p.identity, publicKey: p.publicKey }));
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
    s.setMembers(list).then(
      (changed) => {
        if (changed && s === this.session) {
          this.emitSafetyNumber();
        }
      },
      (err) => console.warn("e2ee: membership update failed", err),
    );
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
    if (this.denyKeysForTest || !this.session || this.closed) {
      return true;
    }
    // Refusals are counted (badKeyMessages) and logged by the session.
    this.session.handleMessage(from, data).catch(() => {});
    return true;
  }

  /**
   * Extra RTCPeerConnection configuration fields this E2EE needs:
   * {encodedInsertableStreams: true} with the createEncodedStreams()
   * fallback, nothing with RTCRtpScriptTransform.
   * @returns {object}
   */
  rtcConfiguration() {
    return this.transformMode === "streams" ? { encodedInsertableStreams: true } : {};
  }

  /**
   * Encrypts every frame sender sends, under this participant's current
   * key; frames that cannot be encrypted (no key yet, a codec other than
   * Opus, VP8 and H.264) are dropped, never sent in clear. Attaching a
   * sender twice does nothing. The first attached sender makes this
   * participant a publisher: until then it sends no key (as Go's
   * StartPublishing, which the Go SDK's PublishSample calls); now its key
   * goes to every member, and every later change of membership rekeys.
   * @param {RTCRtpSender} sender
   */
  attachSender(sender) {
    if (!this.publishing) {
      this.publishing = true;
      this.session?.startPublishing().catch(() => {});
    }
    if (this.senders.has(sender)) {
      return;
    }
    this.senders.add(sender);
    this.attach(sender, { side: "send", kind: sender.track?.kind });
  }

  /**
   * Decrypts every frame receiver receives as participant from's (its
   * identity) and counts them under trackSid. Frames that fail are
   * dropped. Attaching a receiver again (a reused transceiver) moves it to
   * the new participant and track.
   * @param {RTCRtpReceiver} receiver
   * @param {string} from
   * @param {string} trackSid
   */
  attachReceiver(receiver, from, trackSid) {
    const options = { side: "receive", kind: receiver.track?.kind, from, trackSid };
    const known = this.receivers.get(receiver);
    if (known && this.transformMode === "streams") {
      // The streams can be taken once; the worker's options follow.
      this.post({ op: "retarget", options: { ...known, ...options } });
      return;
    }
    const tid = this.nextTransform++;
    this.receivers.set(receiver, { tid });
    this.attach(receiver, { ...options, tid });
  }

  /**
   * @param {RTCRtpSender|RTCRtpReceiver} target
   * @param {object} options
   * @private
   */
  attach(target, options) {
    const t = /** @type {any} */ (target);
    if (this.transformMode === "script") {
      const Transform = /** @type {any} */ (globalThis).RTCRtpScriptTransform;
      t.transform = new Transform(this.worker, options);
      return;
    }
    const { readable, writable } = t.createEncodedStreams();
    this.worker.postMessage({ op: "streams", readable, writable, options }, [readable, writable]);
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
   * The verification code of this participant and member identity, as
   * Go's VerificationCode: six groups of five digits, the same in every
   * call for as long as neither changes identity key. "" when identity
   * is not a member with a usable announcement (or before start).
   * @param {string} identity
   * @returns {Promise<string>}
   */
  verificationCode(identity) {
    return this.session ? this.session.verificationCode(identity) : Promise.resolve("");
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

  /**
   * A remote track's frame counters (updated within about 100 ms).
   * @param {string} trackSid
   * @returns {TrackStats}
   */
  trackStats(trackSid) {
    const t = this.tracks.get(trackSid);
    return t ? { ...t } : { decrypted: 0, rejected: 0, noKey: 0, replayed: 0 };
  }

  /**
   * Frames this participant encrypted and sent, and dropped because they
   * could not be encrypted (an addition to the SDK's API, for diagnosis).
   * @returns {{encrypted: number, dropped: number}}
   */
  sendStats() {
    return { ...this.sent };
  }

  /**
   * Whether participant identity's frames decrypt here.
   * @param {string} identity
   * @returns {ParticipantState}
   */
  participantState(identity) {
    return this.states.get(identity) ?? "waiting";
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

  /**
   * Sends an operation to the worker and resolves when it is done.
   * @param {Record<string, unknown>} msg
   * @returns {Promise<void>}
   * @private
   */
  call(msg) {
    if (this.closed) {
      return Promise.reject(new Error("e2ee: closed"));
    }
    const id = this.nextCall++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      this.worker.postMessage({ ...msg, id });
    });
  }

  /**
   * Sends an operation to the worker, not waiting for it.
   * @param {Record<string, unknown>} msg
   * @private
   */
  post(msg) {
    if (!this.closed) {
      this.worker.postMessage(msg);
    }
  }

  /**
   * @param {Error} err
   * @private
   */
  failCalls(err) {
    for (const c of this.calls.values()) {
      c.reject(err);
    }
    this.calls.clear();
  }

  /**
   * @param {any} m
   * @private
   */
  onWorkerMessage(m) {
    switch (m.op) {
      case "reply": {
        const c = this.calls.get(m.id);
        this.calls.delete(m.id);
        if (m.error === undefined) {
          c?.resolve();
        } else {
          c?.reject(new Error(m.error));
        }
        break;
      }
      case "inUse":
        this.session?.noteInUse(m.from, m.kid).catch(() => {});
        break;
      case "derived":
        this.session?.noteDerived(m.from, m.kid).catch(() => {});
        break;
      case "stats":
        for (const [sid, t] of Object.entries(m.tracks)) {
          this.tracks.set(sid, /** @type {TrackStats} */ (t));
        }
        this.sent = m.sent;
        break;
      case "state":
        if (this.participantState(m.identity) !== m.state) {
          this.states.set(m.identity, m.state);
          this.dispatchEvent(new CustomEvent("statechange", { detail: { identity: m.identity, state: m.state } }));
        }
        break;
      case "log":
        (m.level === "warn" ? console.warn : console.info)(m.msg);
        break;
    }
  }
}

