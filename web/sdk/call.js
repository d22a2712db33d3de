// @ts-check
/** @file The call: joining, reconnecting, the room and its events; its own and remote tracks are in publish.js and receive.js. */

import { E2EE } from "./e2ee/index.js";
import { LocalTracks, Publication, attachments } from "./publish.js";
import { RemoteTracks } from "./receive.js";
import { JOIN_TIMEOUT_MS, Session, dial } from "./signal.js";
import { PROTOCOL_VERSION, SottoError, emptyParticipant, errorText, isPermanent, participantFromWire, serverError, signalURL, trackFromWire, withTimeout } from "./wire.js";

/**
 * @typedef {import("./types.js").ConnectionState} ConnectionState
 * @typedef {import("./types.js").E2EEState} E2EEState
 * @typedef {import("./types.js").TrackInfo} TrackInfo
 * @typedef {import("./types.js").Participant} Participant
 * @typedef {import("./types.js").ConnectOptions} ConnectOptions
 * @typedef {import("./types.js").CameraOptions} CameraOptions
 * @typedef {import("./types.js").MicrophoneOptions} MicrophoneOptions
 * @typedef {import("./types.js").PublishOptions} PublishOptions
 * @typedef {import("./types.js").InboundTrackStats} InboundTrackStats
 * @typedef {import("./types.js").ParticipantAdmission} ParticipantAdmission
 * @typedef {import("./types.js").RosterStatus} RosterStatus
 * @typedef {import("./types.js").KeyChange} KeyChange
 * @typedef {import("./types.js").KeyCheckFailure} KeyCheckFailure
 * @typedef {import("./types.js").Covered} Covered
 */

// Timings that are not worth an option; the Go SDK's values.
const INITIAL_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5000;
/** How often audio levels are read for the 'speaking' event. */
const LEVEL_INTERVAL_MS = 400;

/**
 * Connects to the node at url and joins the room of options.token. It
 * resolves once the node has answered the join: the call is then
 * 'connected', `call.self` and `call.participants` are filled, and events
 * start. A refused join rejects with a {@link SottoError}.
 * @param {string | URL} url "https://host", "http://host:7780", "wss://host/v1/signal", or a path on this page's origin
 * @param {ConnectOptions} options
 * @returns {Promise<Call>}
 */
export function connect(url, options) {
  return Call.connect(url, options);
}

/**
 * A call: this client's participation in one room. Made by {@link connect};
 * it lives until {@link Call#leave}, {@link Call#close} or a final error
 * ('connectionstate' 'disconnected'). See {@link CallEventName} for its
 * events.
 */
export class Call extends EventTarget {
  /** @type {string} */ url;
  /** The room, as the node named it in joined. @type {string} */ room = "";
  /** This client's participant; its tracks are those the node announced. @type {Participant} */
  self = emptyParticipant();
  /** The other participants, by identity. The same Map for the whole call. @type {Map<string, Participant>} */
  participants = new Map();
  /** @type {ConnectionState} */ state = "connecting";
  /** Why the call ended; null while it runs and after close or leave. @type {SottoError | null} */ error = null;
  /** End-to-end encryption, null when it is off. @type {E2EE | null} */ e2ee = null;

  /** @type {ConnectOptions} */ #opts;
  /** @type {Session | null} */ #session = null;
  /** @type {Set<string>} */ #subscribed = new Set();
  /** @type {Set<string>} */ #unsubscribed = new Set();
  /**
   * The identities announced with E2EE at some point of this call: they
   * encrypt for its whole life (see Participant.e2ee).
   * @type {Set<string>}
   */
  #encrypts = new Set();
  /** @type {{maxMessageBytes: number, messagesPerSecond: number, tracksPerParticipant: number}} */
  #limits = { maxMessageBytes: 0, messagesPerSecond: 0, tracksPerParticipant: 0 };
  #ids = 0;
  #closing = false;
  #finished = false;
  #ownE2EE = false;
  /** Wakes a reconnect backoff early (close, the browser came online). @type {(() => void) | null} */
  #wake = null;
  /** @type {ReturnType<typeof setInterval> | undefined} */ #levelTimer;
  /** @type {Promise<void>} */ #done;
  /** @type {() => void} */ #resolveDone = () => {};
  #onOnline = () => this.#wake?.();
  /** Events held until connect has resolved. @type {[string, unknown][] | null} */
  #deferred = null;
  #local = new LocalTracks({
    session: () => this.#session,
    liveSession: () => this.#liveSession(),
    nextId: () => this.#nextId(),
    self: () => this.self,
    limits: () => this.#limits,
    e2ee: () => this.e2ee,
  });
  #remote = new RemoteTracks({
    session: () => this.#session,
    nextId: () => this.#nextId(),
    self: () => this.self,
    participants: this.participants,
    participantBySid: (sid) => this.#participantBySid(sid),
    e2ee: () => this.e2ee,
    emit: (type, detail) => this.#emit(type, detail),
    micOn: (s) => this.#local.pubs.some((p) => p.kind === "audio" && !p.muted && attachments.get(p)?.session === s),
  });

  /**
   * Use {@link connect}.
   * @param {string} url
   * @param {ConnectOptions} opts
   */
  constructor(url, opts) {
    super();
    this.url = url;
    this.#opts = opts;
    this.#done = new Promise((resolve) => { this.#resolveDone = resolve; });
  }

  /**
   * Same as {@link connect}.
   * @param {string | URL} url
   * @param {ConnectOptions} options
   * @returns {Promise<Call>}
   */
  static async connect(url, options) {
    if (!options || (typeof options.token !== "string" && typeof options.token !== "function") || options.token === "") {
      throw new TypeError("sotto: connect needs options.token (a string or a function returning one)");
    }
    if (options.admission !== undefined && typeof options.admission !== "function") {
      throw new TypeError("sotto: options.admission must be a function (newcomer) => \"admit\" | \"refuse\" | \"ask\"");
    }
    const call = new Call(signalURL(url), { ...options });
    await call.#start();
    return call;
  }

  async #start() {
    const e2ee = this.#opts.e2ee ?? true;
    const admission = { admission: this.#opts.admission, rosterTimeoutMs: this.#opts.rosterTimeoutMs };
    if (e2ee instanceof E2EE) {
      this.e2ee = e2ee;
      e2ee.configureAdmission(admission);
    } else if (e2ee) {
      try {
        this.e2ee = await E2EE.create(admission);
      } catch (err) {
        throw new SottoError("e2ee_unsupported",
          `this browser cannot encrypt calls end to end: ${errorText(err)}`, { cause: err });
      }
      this.#ownE2EE = true;
    }
    if (this.e2ee) {
      this.e2ee.addEventListener("statechange", (ev) => {
        const { identity, state } = /** @type {CustomEvent} */ (ev).detail ?? {};
        const p = this.participants.get(identity);
        if (p && p.e2ee) this.#emit("e2eestate", { identity, state });
      });
      this.e2ee.addEventListener("safetynumber", (ev) => {
        this.#emit("safetynumber", { number: /** @type {CustomEvent} */ (ev).detail?.number ?? "" });
      });
      this.e2ee.addEventListener("keychanged", (ev) => {
        this.#emit("keychanged", /** @type {CustomEvent} */ (ev).detail);
      });
      this.e2ee.addEventListener("keycheckfailed", (ev) => {
        this.#emit("keycheckfailed", /** @type {CustomEvent} */ (ev).detail);
      });
      for (const type of ["waiting", "admitted", "refused", "selfadmitted", "selfrefused", "rostermismatch", "rosteragreed"]) {
        this.e2ee.addEventListener(type, (ev) => this.#emit(type, /** @type {CustomEvent} */ (ev).detail));
      }
    }
    let dialed;
    let session;
    try {
      dialed = await this.#dial();
      session = this.#newSession(dialed.ws, dialed.joined);
    } catch (err) {
      dialed?.ws.close();
      if (this.#ownE2EE) this.e2ee?.close();
      throw err;
    }
    // The room is installed now, so call.self and call.participants are
    // filled when connect resolves; its announcements, and the messages
    // that followed joined, wait for the next task, by when the caller has
    // added its listeners (right after the await).
    this.#deferred = [];
    this.#install(session, dialed.joined);
    this.state = "connected";
    setTimeout(() => {
      const queued = this.#deferred ?? [];
      this.#deferred = null;
      for (const [type, detail] of queued) this.dispatchEvent(new CustomEvent(type, { detail }));
      session.start(dialed.backlog);
    }, 0);
    this.#supervise(session);
    this.#levelTimer = setInterval(() => { void this.#remote.readLevels(); }, LEVEL_INTERVAL_MS);
    if (typeof window !== "undefined") window.addEventListener("online", this.#onOnline);
  }

  // ---- public API ----------------------------------------------------

  /** This client's publications. @returns {Publication[]} */
  get publications() { return [...this.#local.pubs]; }

  /** Resolves when the call has ended, for whatever reason. @returns {Promise<void>} */
  get done() { return this.#done; }

  /**
   * How many remote tracks this call refused to give the application
   * because the track's `identity` is not that of the participant whose
   * track list holds it. An honest node never does that; one that does is
   * presenting one participant's media as another's (docs/E2EE.md). Each
   * refusal is also logged as a warning.
   * @returns {number}
   */
  get refusedTracks() { return this.#remote.refusedTracks; }

  /**
   * Captures a camera and publishes it.
   * @param {CameraOptions} [opts]
   * @returns {Promise<Publication>}
   */
  async publishCamera(opts = {}) {
    /** @type {MediaTrackConstraints} */
    const video = {};
    if (opts.deviceId) video.deviceId = { exact: opts.deviceId };
    if (opts.width) video.width = { ideal: opts.width };
    if (opts.height) video.height = { ideal: opts.height };
    if (opts.frameRate) video.frameRate = { ideal: opts.frameRate };
    const stream = await navigator.mediaDevices.getUserMedia({ video: Object.keys(video).length ? video : true });
    return this.#publishOwned(stream.getVideoTracks()[0], "camera");
  }

  /**
   * Captures a microphone and publishes it.
   * @param {MicrophoneOptions} [opts]
   * @returns {Promise<Publication>}
   */
  async publishMicrophone(opts = {}) {
    /** @type {MediaTrackConstraints} */
    const audio = {
      echoCancellation: opts.echoCancellation ?? true,
      noiseSuppression: opts.noiseSuppression ?? true,
      autoGainControl: opts.autoGainControl ?? true,
    };
    if (opts.deviceId) audio.deviceId = { exact: opts.deviceId };
    const stream = await navigator.mediaDevices.getUserMedia({ audio });
    return this.#publishOwned(stream.getAudioTracks()[0], "microphone");
  }

  /**
   * Asks the person for a screen, window or tab and publishes it. When they
   * stop sharing (the browser's own button), it is unpublished.
   * @returns {Promise<Publication>}
   */
  async publishScreen() {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const track = stream.getVideoTracks()[0];
    const pub = await this.#publishOwned(track, "screen");
    track.addEventListener("ended", () => { void this.unpublish(pub).catch(() => {}); });
    return pub;
  }

  /**
   * @param {MediaStreamTrack} track
   * @param {string} source
   */
  async #publishOwned(track, source) {
    try {
      return await this.publish(track, { source, stopOnUnpublish: true });
    } catch (err) {
      track.stop();
      throw err;
    }
  }

  /**
   * Publishes a track: adds it to the publisher connection, negotiates,
   * and resolves once the node has answered. The node announces it
   * ('trackpublished' with local true, and `publication.info`) when its
   * media starts. It rejects while the call reconnects (code
   * 'disconnected'), without the publish grant ('permission_denied') and
   * beyond the node's track limit ('too_many_tracks').
   * @param {MediaStreamTrack} track
   * @param {PublishOptions} [opts]
   * @returns {Promise<Publication>}
   */
  async publish(track, opts = {}) {
    return this.#local.publish(track, opts);
  }

  /**
   * Stops publishing: tells the node (waiting for its ack), removes the
   * track from the publisher connection and renegotiates. While the call
   * reconnects it is only dropped locally. Unpublishing twice does nothing.
   * @param {Publication} pub
   * @returns {Promise<void>}
   */
  async unpublish(pub) {
    return this.#local.unpublish(pub);
  }

  /**
   * Mutes or unmutes a publication: the track is disabled (silence or
   * black frames are sent, so nothing renegotiates) and the node tells
   * everyone ('trackmuted'). Before the node announced the track, or while
   * reconnecting, the state is kept and told once it is announced.
   * @param {Publication} pub
   * @param {boolean} muted
   * @returns {Promise<void>}
   */
  async setMuted(pub, muted) {
    return this.#local.setMuted(pub, muted);
  }

  /**
   * Asks the node to forward these tracks (with autoSubscribe off, or
   * after unsubscribe). Made again after a reconnect.
   * @param {string[]} trackSids
   * @returns {Promise<void>}
   */
  async subscribe(trackSids) {
    if (!trackSids.length) return;
    const s = this.#liveSession();
    await s.request({ type: "subscribe", id: this.#nextId(), track_sids: [...trackSids] });
    for (const sid of trackSids) {
      this.#subscribed.add(sid);
      this.#unsubscribed.delete(sid);
    }
  }

  /**
   * Asks the node to stop forwarding these tracks. With autoSubscribe
   * this is made again after a reconnect (the node would otherwise
   * forward them again).
   * @param {string[]} trackSids
   * @returns {Promise<void>}
   */
  async unsubscribe(trackSids) {
    if (!trackSids.length) return;
    const s = this.#liveSession();
    await s.request({ type: "unsubscribe", id: this.#nextId(), track_sids: [...trackSids] });
    for (const sid of trackSids) {
      this.#subscribed.delete(sid);
      if (this.#opts.autoSubscribe ?? true) this.#unsubscribed.add(sid);
    }
  }

  /**
   * Sends a relay message: data, any JSON value, to the participants with
   * these identities (null or empty: everyone else), and resolves on the
   * node's ack. The node passes it on as it is and never stores it. One
   * identity not in the room and nobody gets it ('unknown_participant').
   * @param {string[] | null} to
   * @param {unknown} data
   * @returns {Promise<void>}
   */
  async sendRelay(to, data) {
    const s = this.#liveSession();
    /** @type {{id: string, [k: string]: unknown}} */
    const msg = { type: "relay", id: this.#nextId(), data: data === undefined ? null : data };
    if (to && to.length) msg.to = [...to];
    await s.request(msg);
  }

  /**
   * Leaves the call: the others see this participant leave (reason
   * "left"), the connection closes and nothing reconnects. Resolves when
   * the call has ended.
   * @returns {Promise<void>}
   */
  async leave() {
    if (this.#finished) return;
    const s = this.#session;
    this.#closing = true;
    if (s && !s.failed) {
      s.send({ type: "leave" });
      await s.flushed(2000);
    }
    return this.close();
  }

  /**
   * Ends the call without telling the node why (the others see reason
   * "disconnected") and does not reconnect. Resolves when it has ended.
   * @returns {Promise<void>}
   */
  async close() {
    this.#closing = true;
    this.#wake?.();
    const s = this.#session;
    if (s && !s.failed) {
      s.fail(new SottoError("closed", "the call was closed")); // the supervisor finishes
    } else if (!s) {
      // Reconnecting: an attempt in flight sees #closing and tears its
      // session down itself; nobody waits for it.
      this.#finish(null);
    }
    return this.#done;
  }

  /**
   * The call's safety number: six groups of five digits, the same on every
   * participant's screen if and only if nobody's identity key was swapped
   * on the way. People read it aloud or compare it over a channel they
   * trust; it changes when someone joins or leaves. "" when E2EE is off.
   * @returns {Promise<string>}
   */
  async safetyNumber() {
    return this.e2ee ? this.e2ee.safetyNumber() : "";
  }

  /**
   * Exactly the people the safety number covers, this client included,
   * sorted by identity, each with whether this client marked their key
   * verified. Someone whose changed key was not accepted is not in it.
   * Empty when E2EE is off.
   * @returns {Promise<Covered[]>}
   */
  async safetyNumberCovers() {
    return this.e2ee ? this.e2ee.safetyNumberCovers() : [];
  }

  /**
   * The verification code of this client and identity: six groups of five
   * digits over the two identity keys, identity's the one this call covers
   * for them (the `key` {@link Call#safetyNumberCovers} lists), the same on
   * both sides and in every call for as long as neither changes identity
   * key. Two people compare it once over a channel they trust, then mark
   * each other verified. "" for someone the call does not cover (not here,
   * or held out), or when E2EE is off.
   * @param {string} identity
   * @returns {Promise<string>}
   */
  async verificationCode(identity) {
    return this.e2ee ? this.e2ee.verificationCode(identity) : "";
  }

  /**
   * Records (kept by this browser) that the user compared identity's
   * verification code, computed over key, and it matched, or with false
   * withdraws that. Pass the key the code was shown for: the covered key
   * from {@link Call#safetyNumberCovers}. The mark belongs to the key: it
   * is made only while key is the one this browser knows for them, and
   * lost if their key changes. Rejects, marking nothing, for someone never
   * met or known with another key, or when E2EE is off.
   * @param {string} identity
   * @param {Uint8Array<ArrayBuffer>} key
   * @param {boolean} verified
   * @returns {Promise<void>}
   */
  async markVerified(identity, key, verified) {
    if (!this.e2ee) throw new Error("sotto: end-to-end encryption is off");
    return this.e2ee.markVerified(identity, key, verified);
  }

  /**
   * Takes the new identity key a `keychanged` event reported as the
   * person's from now on, unverified: they get and give keys again. Pass
   * the change that was shown (the event's detail, or an entry of
   * {@link Call#pendingKeyChanges}): only its `current` key is accepted.
   * Rejects with a `NoKeyChangeError`, accepting nothing, when that change
   * is not the one waiting (the person's key changed again since: a new
   * `keychanged` event carries it, show that one; or nothing waits), and
   * when E2EE is off.
   * @param {Pick<KeyChange, "identity"|"current">} change
   * @returns {Promise<void>}
   */
  async acceptKeyChange(change) {
    if (!this.e2ee) throw new Error("sotto: end-to-end encryption is off");
    return this.e2ee.acceptKeyChange(change);
  }

  /**
   * The changed identity keys not accepted yet.
   * @returns {KeyChange[]}
   */
  pendingKeyChanges() {
    return this.e2ee ? this.e2ee.pendingKeyChanges() : [];
  }

  /**
   * The participants whose identity key this browser's store could not
   * check (it failed to read or write): held out of the call's keys (they
   * get none from this client, and none of theirs is taken) until a later
   * check succeeds; a `keycheckfailed` event announced each.
   * @returns {KeyCheckFailure[]}
   */
  keyCheckFailures() {
    return this.e2ee ? this.e2ee.keyCheckFailures() : [];
  }

  /**
   * Admits a participant waiting to be admitted (a `waiting` event named
   * them; a refused one too): they get this client's media keys, and a
   * signed admission tells every other member, who then let them in too.
   * Rejects (a `NotAdmittedError`) while this client is not admitted
   * itself, (a `NotWaitingError`) when nobody by that name waits (unknown,
   * gone, or a member already), and when E2EE is off.
   * @param {string} identity
   * @returns {Promise<void>}
   */
  async admit(identity) {
    if (!this.e2ee) throw new Error("sotto: end-to-end encryption is off");
    return this.e2ee.admit(identity);
  }

  /**
   * Refuses a participant waiting to be admitted: they stay out here, and
   * everyone is told (another member may still admit them). Rejects as
   * {@link Call#admit} does.
   * @param {string} identity
   * @returns {Promise<void>}
   */
  async refuse(identity) {
    if (!this.e2ee) throw new Error("sotto: end-to-end encryption is off");
    return this.e2ee.refuse(identity);
  }

  /**
   * The participants with end-to-end encryption, as this client sees them:
   * waiting, refused or member, sorted by identity. Someone whose changed
   * key was not accepted is listed (the node shows them) but gets no key,
   * whatever their state, until {@link Call#acceptKeyChange}. Empty when
   * E2EE is off.
   * @returns {ParticipantAdmission[]}
   */
  admissions() {
    return this.e2ee ? this.e2ee.admissions() : [];
  }

  /**
   * Whether this client is admitted (`admitted`; `refused` when a member
   * said no and none admitted it), whether every member's view of the call
   * agrees with its own (`agreed`: only then do its keys go out), whether
   * the roster alert is up (`alert`) and what differs (`mismatches`). With
   * E2EE off nothing waits: admitted and agreed.
   * @returns {RosterStatus}
   */
  rosterStatus() {
    if (!this.e2ee) return { admitted: true, refused: false, agreed: true, alert: false, mismatches: [] };
    return this.e2ee.rosterStatus();
  }

  /**
   * What this client can say about a participant's media (this client's
   * own identity included), or null for an identity not in the call.
   * @param {string} identity
   * @returns {E2EEState | null}
   */
  e2eeState(identity) {
    if (identity === this.self.identity) return this.e2ee ? "encrypted" : "not-encrypted";
    const p = this.participants.get(identity);
    if (!p) return null;
    if (!p.e2ee) return "not-encrypted";
    // Its frames are encrypted, and without E2EE here nobody sends us keys.
    if (!this.e2ee) return "cannot-decrypt";
    return this.e2ee.participantState(identity);
  }

  /**
   * Receive statistics of every remote track on the subscriber connection.
   * @returns {Promise<InboundTrackStats[]>}
   */
  async inboundStats() {
    return this.#remote.inboundStats();
  }

  // ---- connecting and reconnecting -------------------------------------

  /**
   * Opens the WebSocket, joins, and resolves with the joined message and
   * whatever the node sent after it before a session took over.
   * @returns {Promise<{ws: WebSocket, joined: any, backlog: string[]}>}
   */
  async #dial() {
    let token;
    try {
      token = typeof this.#opts.token === "function" ? await this.#opts.token() : this.#opts.token;
    } catch (err) {
      if (err instanceof SottoError) throw err;
      throw new SottoError("connection_lost", `could not get an access token: ${errorText(err)}`, { cause: err });
    }
    /** @type {Record<string, unknown>} */
    const join = { type: "join", protocol: PROTOCOL_VERSION, token };
    if (this.#opts.room) join.room = this.#opts.room;
    if (this.#opts.autoSubscribe === false) join.auto_subscribe = false;
    if (this.e2ee) {
      join.public_key = this.e2ee.publicKey;
      join.e2ee = true;
    }
    return dial(this.url, join);
  }

  /**
   * @param {WebSocket} ws
   * @param {any} joined
   * @returns {Session}
   */
  #newSession(ws, joined) {
    /** @type {RTCConfiguration} */
    const config = {
      ...(this.e2ee ? this.e2ee.rtcConfiguration() : {}),
      iceServers: (joined.ice_servers ?? []).map((/** @type {any} */ s) => ({
        urls: s.urls, username: s.username, credential: s.credential,
      })),
      bundlePolicy: "max-bundle",
      rtcpMuxPolicy: "require",
    };
    if (this.#opts.iceTransportPolicy) config.iceTransportPolicy = this.#opts.iceTransportPolicy;
    return new Session(ws, joined.limits ?? {}, config, {
      message: (s, m) => this.#onMessage(s, m),
      track: (s, ev) => this.#remote.onTrack(s, ev),
      nextId: () => this.#nextId(),
    });
  }

  /**
   * Waits for each session to end, then finishes the call or reconnects.
   * @param {Session} session
   */
  async #supervise(session) {
    let s = session;
    for (;;) {
      await s.ended;
      const cause = s.error();
      s.teardown();
      this.#detach(s);
      if (this.#closing) {
        this.#finish(null);
        return;
      }
      if (isPermanent(cause) || this.#opts.reconnect === false) {
        this.#finish(cause);
        return;
      }
      this.#setState("reconnecting", cause);
      const next = await this.#reconnect(cause);
      if (!next) return;
      s = next;
      this.#setState("connected", null);
    }
  }

  /**
   * Dials until a session is joined and restored, and returns it; or
   * finishes the call and returns null.
   * @param {SottoError} cause
   * @returns {Promise<Session | null>}
   */
  async #reconnect(cause) {
    const policy = this.#opts.reconnect || {};
    const initial = policy.initialBackoffMs ?? INITIAL_BACKOFF_MS;
    const max = Math.max(policy.maxBackoffMs ?? MAX_BACKOFF_MS, initial);
    let backoff = initial;
    let last = cause;
    for (let attempt = 1; ; attempt++) {
      if (policy.maxAttempts && attempt > policy.maxAttempts) {
        this.#finish(new SottoError("gave_up",
          `could not reconnect after ${policy.maxAttempts} attempts: ${last.message}`, { cause: last }));
        return null;
      }
      // Jitter spreads the clients of a restarted node over the wait.
      const wait = backoff / 2 + Math.random() * (backoff / 2);
      backoff = Math.min(2 * backoff, max);
      await new Promise((resolve) => {
        const t = setTimeout(done, wait);
        function done() { clearTimeout(t); resolve(undefined); }
        this.#wake = done;
      });
      this.#wake = null;
      if (this.#closing) {
        this.#finish(null);
        return null;
      }
      try {
        const s = await this.#attempt();
        if (this.#closing) {
          s.fail(new SottoError("closed", "the call was closed"));
          s.teardown();
          this.#detach(s);
          this.#finish(null);
          return null;
        }
        return s;
      } catch (err) {
        last = err instanceof SottoError ? err : new SottoError("connection_lost", errorText(err), { cause: err });
        if (this.#closing) {
          this.#finish(null);
          return null;
        }
        if (isPermanent(last)) {
          this.#finish(last);
          return null;
        }
      }
    }
  }

  /**
   * One reconnect attempt: dial, join, install the new session, and
   * restore the publications and subscriptions.
   * @returns {Promise<Session>}
   */
  async #attempt() {
    const dialed = await this.#dial();
    let s;
    try {
      s = this.#newSession(dialed.ws, dialed.joined);
    } catch (err) {
      dialed.ws.close();
      throw err;
    }
    if (this.#closing) {
      s.fail(new SottoError("closed", "the call was closed"));
      s.teardown();
      throw s.error();
    }
    this.#install(s, dialed.joined);
    s.start(dialed.backlog);
    try {
      await withTimeout(this.#restore(s), JOIN_TIMEOUT_MS, () =>
        new SottoError("timeout", "restoring the call after a reconnect took too long"));
      return s;
    } catch (err) {
      if (err instanceof SottoError && !err.fatal && err.refId && !s.failed) {
        // The node refused part of the restore (a grant withdrawn with a
        // fresh token, say): the session itself is fine.
        this.#emit("error", { error: err });
        return s;
      }
      s.fail(err instanceof SottoError ? err : new SottoError("connection_lost", errorText(err), { cause: err }));
      const cause = s.error();
      s.teardown();
      this.#detach(s);
      throw cause;
    }
  }

  /** @param {Session} s */
  async #restore(s) {
    if (this.#local.pubs.length) {
      try {
        this.#local.checkCanPublish(0);
      } catch (err) {
        // A fresh token without the publish grant, or a lower track limit:
        // the publications end here rather than on every reconnect.
        for (const p of [...this.#local.pubs]) this.#local.removePublication(p);
        this.#emit("error", { error: err });
      }
    }
    for (const p of this.#local.pubs) this.#local.attach(s, p);
    if (this.#local.pubs.length) await this.#local.negotiate(s);
    const restores = [["subscribe", [...this.#subscribed]]];
    if (this.#opts.autoSubscribe ?? true) restores.push(["unsubscribe", [...this.#unsubscribed]]);
    for (const [type, sids] of /** @type {[string, string[]][]} */ (restores)) {
      for (const sid of sids) {
        try {
          await s.request({ type, id: this.#nextId(), track_sids: [sid] });
        } catch (err) {
          if (!(err instanceof SottoError && err.code === "unknown_track")) throw err;
          this.#subscribed.delete(sid);
          this.#unsubscribed.delete(sid);
        }
      }
    }
  }

  /**
   * Forgets a session that ended: publications lose their sender and sid
   * (the node announces them again after a reconnect), remote tracks held
   * for a description are dropped.
   * @param {Session} s
   */
  #detach(s) {
    if (this.#session === s) this.#session = null;
    for (const p of this.#local.pubs) {
      if (attachments.get(p)?.session === s) attachments.delete(p);
      p.info = null;
    }
    this.self.tracks.clear();
    this.#remote.held.clear();
    this.#remote.receivers.clear();
  }

  /** @param {SottoError | null} err */
  #finish(err) {
    if (this.#finished) return;
    this.#finished = true;
    this.#closing = true;
    this.error = err;
    clearInterval(this.#levelTimer);
    if (typeof window !== "undefined") window.removeEventListener("online", this.#onOnline);
    for (const p of this.#local.pubs) {
      p.removed = true;
      p.info = null;
      if (p.ownsTrack) p.track.stop();
    }
    this.#local.pubs = [];
    if (this.e2ee) this.e2ee.close();
    this.#setState("disconnected", err);
    this.#resolveDone();
  }

  /**
   * @param {ConnectionState} state
   * @param {SottoError | null} error
   */
  #setState(state, error) {
    this.state = state;
    this.#emit("connectionstate", { state, error });
  }

  /** @returns {Session} */
  #liveSession() {
    if (this.#finished || this.#closing) throw new SottoError("closed", "the call has ended");
    const s = this.#session;
    if (!s || s.failed) throw new SottoError("disconnected", "the call is reconnecting; try again once it has");
    return s;
  }

  #nextId() { return `c${++this.#ids}`; }

  /**
   * @param {string} type
   * @param {unknown} detail
   */
  #emit(type, detail) {
    if (this.#deferred) this.#deferred.push([type, detail]);
    else this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // ---- the room -------------------------------------------------------

  /**
   * Makes s the current session and replaces the room with joined's,
   * announcing the differences (after a reconnect only what changed).
   * @param {Session} s
   * @param {any} joined
   */
  #install(s, joined) {
    this.#session = s;
    this.room = joined.room ?? "";
    this.self = participantFromWire(joined.participant ?? {});
    this.self.tracks.clear(); // own tracks are announced by track_published
    const l = joined.limits ?? {};
    this.#limits = {
      maxMessageBytes: l.max_message_bytes ?? 0,
      messagesPerSecond: l.messages_per_second ?? 0,
      tracksPerParticipant: l.tracks_per_participant ?? 0,
    };
    this.#remote.held.clear();
    this.#remote.receivers.clear();

    const old = new Map(this.participants);
    /** @type {Map<string, Participant>} */
    const next = new Map();
    for (const w of joined.participants ?? []) {
      const p = participantFromWire(w);
      if (p.identity && p.identity !== this.self.identity) next.set(p.identity, this.#trustEncryption(p));
    }
    this.participants.clear();
    for (const [id, p] of next) this.participants.set(id, p);
    this.#startE2EE();

    for (const [id, o] of old) {
      const n = next.get(id);
      if (n && n.sid === o.sid) continue;
      for (const t of o.tracks.values()) this.#emit("trackunpublished", { info: t, participant: o, local: false });
      this.#remote.speaking.delete(id);
      this.#emit("participantleft", { participant: o, reason: "disconnected" });
    }
    for (const [id, n] of next) {
      const o = old.get(id);
      const same = o && o.sid === n.sid;
      if (!same) this.#announceJoined(n);
      const before = same ? o.tracks : new Map();
      for (const t of before.values()) {
        if (!n.tracks.has(t.sid)) this.#emit("trackunpublished", { info: t, participant: n, local: false });
      }
      for (const t of n.tracks.values()) {
        const b = before.get(t.sid);
        if (!b) this.#emit("trackpublished", { info: t, participant: n, local: false });
        else if (b.muted !== t.muted) this.#emit("trackmuted", { info: t, participant: n, local: false, muted: t.muted });
      }
    }
  }

  /**
   * Makes "encrypts" sticky per identity: a participant announced with
   * E2EE now is remembered so, and one announced without it after it was
   * once announced with it (a reconnect, a leave and a rejoin: the node's
   * word either way) still encrypts in this call. Its tracks are then
   * decrypted under its keys, and what does not decrypt is dropped, so the
   * node cannot turn media this client has seen encrypted into media it
   * plays as it comes. It stays a key-management member as long as it is
   * announced with an identity key.
   * @param {Participant} p
   * @returns {Participant} p
   */
  #trustEncryption(p) {
    if (p.e2ee) this.#encrypts.add(p.identity);
    else if (this.#encrypts.has(p.identity)) p.e2ee = true;
    return p;
  }

  /** Tells key management where we are and who else is here. */
  #startE2EE() {
    if (!this.e2ee) return;
    this.e2ee.start({
      room: this.room,
      self: this.self.identity,
      send: (/** @type {string[] | null} */ to, /** @type {object} */ data) => this.#sendKeyMessage(to, data),
    });
    this.#updateMembers();
  }

  #updateMembers() {
    if (!this.e2ee) return;
    /** @type {{identity: string, publicKey: string}[]} */
    const peers = [];
    for (const p of this.participants.values()) {
      if (p.e2ee && p.publicKey) peers.push({ identity: p.identity, publicKey: p.publicKey });
    }
    this.e2ee.setMembers(peers);
  }

  /**
   * Sends a key-management relay on the current session; nobody waits for
   * it. A relay to a participant who left meanwhile is refused by the
   * node, which nobody needs to hear about.
   * @param {string[] | null} to
   * @param {object} data
   */
  #sendKeyMessage(to, data) {
    const s = this.#session;
    if (!s || s.failed) return;
    /** @type {{id: string, [k: string]: unknown}} */
    const msg = { type: "relay", id: this.#nextId(), data };
    if (to && to.length) msg.to = to;
    s.request(msg).catch(() => {});
  }

  /** @param {Participant} p */
  #announceJoined(p) {
    this.#emit("participantjoined", { participant: p });
    if (!p.e2ee) this.#emit("e2eestate", { identity: p.identity, state: "not-encrypted" });
    else if (!this.e2ee) this.#emit("e2eestate", { identity: p.identity, state: "cannot-decrypt" });
  }

  /**
   * @param {string} sid
   * @returns {Participant | undefined}
   */
  #participantBySid(sid) {
    if (!sid) return undefined;
    for (const p of this.participants.values()) if (p.sid === sid) return p;
    return undefined;
  }

  /**
   * Acts on one message of the node's, in order. Offers are answered
   * before the next message is looked at.
   * @param {Session} s
   * @param {any} m
   * @returns {Promise<void> | void}
   */
  #onMessage(s, m) {
    if (s !== this.#session) return;
    switch (m.type) {
      case "offer":
        if (m.target === "subscriber") return this.#remote.answerSubscriber(s, m);
        return;
      case "participant_joined": return this.#onParticipantJoined(m.participant ?? {});
      case "participant_left": return this.#onParticipantLeft(m);
      case "track_published": return this.#onTrackPublished(s, trackFromWire(m.track ?? {}));
      case "track_unpublished": return this.#onTrackUnpublished(m);
      case "track_muted": return this.#onTrackMuted(m);
      case "relay": return this.#onRelay(m);
      case "error":
        this.#emit("error", { error: serverError(m) });
    }
  }

  /** @param {any} w */
  #onParticipantJoined(w) {
    const p = participantFromWire(w);
    if (!p.identity || p.identity === this.self.identity) return;
    this.#trustEncryption(p);
    const old = this.participants.get(p.identity);
    if (old && old.sid === p.sid) return;
    if (old) this.#removeParticipant(old, "replaced");
    this.participants.set(p.identity, p);
    this.#updateMembers();
    this.#announceJoined(p);
    for (const rec of this.#remote.held.values()) {
      if (rec.participantSid === p.sid) this.#remote.attachReceiver(rec, p);
    }
    for (const t of p.tracks.values()) {
      this.#emit("trackpublished", { info: t, participant: p, local: false });
      this.#remote.releaseHeld(t.sid);
    }
  }

  /** @param {any} m */
  #onParticipantLeft(m) {
    const p = this.participants.get(m.identity);
    if (!p || p.sid !== m.sid) return;
    this.#removeParticipant(p, m.reason ?? "disconnected");
  }

  /**
   * @param {Participant} p
   * @param {string} reason
   */
  #removeParticipant(p, reason) {
    this.participants.delete(p.identity);
    this.#updateMembers();
    for (const t of p.tracks.values()) {
      this.#remote.held.delete(t.sid);
      this.#emit("trackunpublished", { info: t, participant: p, local: false });
    }
    this.#remote.speaking.delete(p.identity);
    this.#emit("participantleft", { participant: p, reason });
  }

  /**
   * @param {Session} s
   * @param {TrackInfo} t
   */
  #onTrackPublished(s, t) {
    if (!t.sid) return;
    if (t.participantSid === this.self.sid) {
      if (this.self.tracks.has(t.sid)) return;
      this.self.tracks.set(t.sid, t);
      const pub = this.#local.pubs.find((p) => !p.info && p.id === t.clientTrackId && attachments.get(p)?.session === s);
      if (pub) {
        pub.info = t;
        if (pub.muted !== t.muted) {
          // Muted before it was announced, or before a reconnect: tell
          // the node now. Nobody waits for the ack.
          s.request({ type: "mute", id: this.#nextId(), track_sid: t.sid, muted: pub.muted }).catch(() => {});
        }
      }
      this.#emit("trackpublished", { info: t, participant: this.self, local: true });
      return;
    }
    const owner = this.#participantBySid(t.participantSid);
    if (!owner || owner.tracks.has(t.sid)) return;
    owner.tracks.set(t.sid, t);
    this.#emit("trackpublished", { info: t, participant: owner, local: false });
    this.#remote.releaseHeld(t.sid);
  }

  /** @param {any} m */
  #onTrackUnpublished(m) {
    const own = this.self.tracks.get(m.sid);
    if (own) {
      this.self.tracks.delete(m.sid);
      for (const p of this.#local.pubs) if (p.info?.sid === m.sid) p.info = null;
      this.#emit("trackunpublished", { info: own, participant: this.self, local: true });
      return;
    }
    this.#remote.held.delete(m.sid);
    this.#subscribed.delete(m.sid);
    this.#unsubscribed.delete(m.sid);
    const owner = this.#participantBySid(m.participant_sid) ?? this.participants.get(m.identity);
    const t = owner?.tracks.get(m.sid);
    if (!owner || !t) return;
    owner.tracks.delete(m.sid);
    this.#emit("trackunpublished", { info: t, participant: owner, local: false });
  }

  /** @param {any} m */
  #onTrackMuted(m) {
    const muted = !!m.muted;
    const own = this.self.tracks.get(m.sid);
    if (own) {
      own.muted = muted;
      for (const p of this.#local.pubs) if (p.info && p.info.sid === m.sid) p.info.muted = muted;
      this.#emit("trackmuted", { info: own, participant: this.self, local: true, muted });
      return;
    }
    const owner = this.#participantBySid(m.participant_sid) ?? this.participants.get(m.identity);
    const t = owner?.tracks.get(m.sid);
    if (!owner || !t) return;
    t.muted = muted;
    this.#emit("trackmuted", { info: t, participant: owner, local: false, muted });
  }

  /** @param {any} m */
  #onRelay(m) {
    const from = String(m.from ?? "");
    if (this.e2ee && this.e2ee.handleRelay(from, m.data)) return;
    // Key management's, even with E2EE off here: never the application's.
    if (m.data && typeof m.data === "object" && "sotto_e2ee" in m.data) return;
    const participant = this.participants.get(from) ?? null;
    this.#emit("relay", { from, participant, data: m.data });
  }
}
