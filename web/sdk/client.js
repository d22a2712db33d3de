// @ts-check
/**
 * @file Sotto's browser SDK: connect to a Sotto node, join a room with an
 * access token, publish the camera, microphone or screen, receive the
 * others' media, exchange relay messages, and reconnect on its own when the
 * connection drops. It speaks signaling protocol v1 (docs/PROTOCOL.md) and
 * behaves like the Go SDK (signaling/client), which is the reference.
 *
 * Each participant has two peer connections with the node: the publisher
 * connection, on which this client offers the media it sends, and the
 * subscriber connection, on which the node offers the media it forwards.
 * Neither side ever has to resolve an offer collision.
 *
 * End-to-end encryption (docs/E2EE.md) is on by default: frames are
 * encrypted with SFrame before they leave the browser, keys travel sealed in
 * relay messages, and the node forwards what it cannot read. The key
 * management and the frame transforms live in ./e2ee/; this file wires them
 * to the call.
 *
 * With end-to-end encryption on, nobody gets this client's media keys
 * before a member of the call admits them (docs/E2EE.md, "Admission and
 * rosters"): a newcomer waits (`waiting`) until a member admits it
 * ({@link Call#admit}, or the `admission` option of {@link connect}), and
 * this client waits too until a member admits it (`selfadmitted`; the
 * first in the call is admitted at once). Every member signs its view of
 * who is in the call; when they disagree for a few seconds the call raises
 * `rostermismatch`, and this client sends no new key until they agree.
 */

import { E2EE } from "./e2ee/index.js";

/** The signaling protocol version this SDK speaks. */
export const PROTOCOL_VERSION = 1;

/** The HTTP path of the node's WebSocket signaling endpoint. */
export const SIGNAL_PATH = "/v1/signal";

// Timings that are not worth an option; the Go SDK's values.
const INITIAL_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5000;
/** Bounds one connection attempt: dial, join, and restoring what we had. */
const JOIN_TIMEOUT_MS = 15000;
/** Bounds the wait for the answer to a publisher offer. */
const NEGOTIATION_TIMEOUT_MS = 20000;
const RATE_LIMITED_RETRY_MS = 250;
/** How often an application ping checks that the node still answers. */
const KEEPALIVE_MS = 15000;
/**
 * How long a peer connection may stay "disconnected" before the session is
 * given up and rebuilt: v1 has no ICE restart, and browsers take about half
 * a minute to declare "failed" on their own.
 */
const ICE_DISCONNECTED_GRACE_MS = 10000;
/** How often audio levels are read for the 'speaking' event. */
const LEVEL_INTERVAL_MS = 400;
/** An audio level (0..1) at or above this counts as speech. */
const SPEAKING_LEVEL = 0.02;
/** Speaking ends this long after the last loud sample. */
const SPEAKING_HOLD_MS = 800;
/** Remote candidates kept until the description they belong to is set. */
const MAX_EARLY_CANDIDATES = 64;

/**
 * The state of the call's connection to the node.
 * @typedef {'connecting' | 'connected' | 'reconnecting' | 'disconnected'} ConnectionState
 */

/**
 * What this client can say about a participant's media: `encrypted` (frames
 * decrypt with keys it received), `not-encrypted` (the participant does not
 * encrypt end to end: the node could read its media; never said of an identity
 * once announced with E2EE in this call), `cannot-decrypt`
 * (frames arrive but no key opens them), `waiting` (no frame or key yet).
 * @typedef {'encrypted' | 'not-encrypted' | 'cannot-decrypt' | 'waiting'} E2EEState
 */

/**
 * A published track, as the node describes it.
 * @typedef {object} TrackInfo
 * @property {string} sid the node's track id (`TR_…`); the track id of the subscriber connection's msid
 * @property {string} participantSid the owner's participant sid
 * @property {string} identity the owner's identity, as the node says; a track whose identity is not that of the
 *   participant listing it is refused (never given to the application: {@link Call#refusedTracks})
 * @property {string} clientTrackId the id the owner gave the track ("camera", "microphone", "screen", …)
 * @property {'audio' | 'video'} kind
 * @property {string} codec MIME type, e.g. "video/VP8"
 * @property {boolean} muted the owner's mute flag
 * @property {boolean} e2ee the node's word that the track's frames are end-to-end encrypted; the SDK does not act on
 *   it (whether frames are decrypted is its owner's {@link Participant}.e2ee)
 */

/**
 * A participant in the room, as the node describes it.
 * @typedef {object} Participant
 * @property {string} sid participant session id (`PA_…`), new on every join
 * @property {string} identity from the access token; unique in the room
 * @property {string} publicKey the identity key it announced ("" if none)
 * @property {boolean} e2ee it encrypts its media end to end: it said so when it joined, in this announcement or an
 *   earlier one of the same identity in this call. Once true for an identity, it stays true for the call's life,
 *   whatever the node announces later (after a reconnect, or a leave and a rejoin): its tracks are decrypted
 *   under its keys, and frames that do not decrypt are dropped, never played as they came (docs/E2EE.md)
 * @property {boolean} canPublish
 * @property {boolean} canSubscribe
 * @property {Map<string, TrackInfo>} tracks its published tracks, by sid
 */

/**
 * Tuning of reconnects. Reconnecting waits 250 ms before the first attempt
 * and doubles the wait up to 5 s, each wait jittered.
 * @typedef {object} ReconnectOptions
 * @property {number} [maxAttempts] consecutive failed attempts before giving up; 0 or absent: no limit
 * @property {number} [initialBackoffMs] default 250
 * @property {number} [maxBackoffMs] default 5000
 */

/**
 * Options of {@link connect}.
 * @typedef {object} ConnectOptions
 * @property {string | (() => string | Promise<string>)} token the access token, or a function returning a
 *   fresh one, called on every connect and reconnect (tokens are checked at join only)
 * @property {string} [room] when set, must equal the token's room (the node refuses the join otherwise)
 * @property {boolean | E2EE} [e2ee] end-to-end encryption: true (default) makes an E2EE instance, false
 *   turns it off (everyone sees this participant marked "not encrypted"), an instance from `E2EE.create()`
 *   is used as it is (to choose its options or set test hooks before joining)
 * @property {RTCIceTransportPolicy} [iceTransportPolicy] "relay": only TURN-relayed candidates
 * @property {boolean} [autoSubscribe] receive every track in the room, present and future (default true)
 * @property {ReconnectOptions | false} [reconnect] false: a dropped connection ends the call
 * @property {AdmissionPolicy} [admission] decides about each participant waiting to be admitted (the `waiting`
 *   event's detail, a {@link Newcomer}): "admit", "refuse", or "ask" to leave them waiting for
 *   {@link Call#admit} / {@link Call#refuse} (the default, without this option). It is asked again for everyone
 *   still waiting once this client is admitted itself. `() => "admit"` admits everyone: for bots and tests, never
 *   for people. With an E2EE instance of the application's, this option (when given) replaces its own.
 * @property {number} [rosterTimeoutMs] how long the members' views of the call may disagree before
 *   `rostermismatch` (default 5000)
 */

/**
 * Options of {@link Call#publishCamera}.
 * @typedef {object} CameraOptions
 * @property {string} [deviceId] a camera from `navigator.mediaDevices.enumerateDevices()`
 * @property {number} [width] ideal width in pixels
 * @property {number} [height] ideal height in pixels
 * @property {number} [frameRate] ideal frames per second
 */

/**
 * Options of {@link Call#publishMicrophone}.
 * @typedef {object} MicrophoneOptions
 * @property {string} [deviceId] a microphone from `navigator.mediaDevices.enumerateDevices()`
 * @property {boolean} [echoCancellation] default true
 * @property {boolean} [noiseSuppression] default true
 * @property {boolean} [autoGainControl] default true
 */

/**
 * Options of {@link Call#publish}.
 * @typedef {object} PublishOptions
 * @property {string} [source] what the track is ("camera", "microphone", "screen", or the application's
 *   word); it becomes the track's client id, which the others see as `TrackInfo.clientTrackId`
 * @property {boolean} [stopOnUnpublish] stop the track when it is unpublished or the call ends (default false:
 *   the application owns the track)
 */

/**
 * A remote track's receive statistics (from the subscriber connection's
 * `inbound-rtp` stats) and, for an end-to-end encrypted track, its frame
 * counters.
 * @typedef {object} InboundTrackStats
 * @property {string} identity the owner
 * @property {string} trackSid
 * @property {'audio' | 'video'} kind
 * @property {number} packetsReceived
 * @property {number} bytesReceived
 * @property {number} framesReceived video
 * @property {number} framesDecoded video
 * @property {number} frameWidth video, 0 until a frame decoded
 * @property {number} frameHeight video
 * @property {number} audioLevel audio, 0..1
 * @property {number} totalAudioEnergy audio
 * @property {{decrypted: number, rejected: number, noKey: number} | null} e2ee null: not decrypted here
 */

/**
 * Detail of the 'track' event: the media of a subscribed track. After a
 * reconnect it fires again for the same sid with a new MediaStreamTrack.
 * @typedef {object} TrackEventDetail
 * @property {MediaStreamTrack} track
 * @property {MediaStream} stream the owner's stream (its id is the owner's participant sid)
 * @property {RTCRtpReceiver} receiver
 * @property {TrackInfo} info
 * @property {Participant} participant
 */

/**
 * The events a {@link Call} dispatches, all `CustomEvent`s, by name and
 * detail:
 * - `participantjoined` `{participant}`; participants already in the room are announced too, right
 *   after connect resolves (add listeners at once: `const call = await connect(…); call.addEventListener(…)`)
 * - `participantleft` `{participant, reason}`: "left", "disconnected", "replaced" or "shutdown"
 * - `trackpublished` `{info, participant, local}`: local is true for this client's own tracks
 * - `trackunpublished` `{info, participant, local}`
 * - `trackmuted` `{info, participant, local, muted}`
 * - `track` {@link TrackEventDetail}
 * - `speaking` `{identity, speaking, level}`: from audio levels, this client included
 * - `connectionstate` `{state, error}`: error is why it is reconnecting or disconnected (null after close/leave)
 * - `e2eestate` `{identity, state}`: see {@link E2EEState}
 * - `safetynumber` `{number}`: the call's safety number changed
 * - `keychanged` {@link KeyChange}: a person this browser met before comes with another identity key, or
 *   someone new comes with a name that looks like a known person's (`looksLike`: the same skeleton); they get
 *   no key from this client and none of theirs is taken (they hear and see nothing of this client, and it
 *   cannot decrypt them) until {@link Call#acceptKeyChange} with that detail; a later change of the same person's
 *   key is a new event, which supersedes this one
 * - `keycheckfailed` {@link KeyCheckFailure}: this browser's identity store failed while checking a
 *   participant's key; they are held out the same way until a later check succeeds (see
 *   {@link Call#keyCheckFailures}); show it: the call does not reach them
 * - `waiting` {@link Newcomer}: someone waits to be admitted; they hear and see nothing of this client until a
 *   member admits them. Show "NAME is waiting to join", with Admit ({@link Call#admit}) and Refuse
 *   ({@link Call#refuse}), never as a normal participant. Fires again, for everyone still waiting, once this
 *   client is admitted itself (until then it cannot admit anyone)
 * - `admitted` `{identity, by}`: a participant became a member (by: the member whose admission counted; "" for
 *   one already in the call when this client joined)
 * - `refused` `{identity, by}`: a member refused a waiting participant; it stays waiting, and another member may
 *   still admit it
 * - `selfadmitted` `{by}`: this client was admitted (by "": it found the call empty, or everyone who could admit
 *   it left); until then it waits: show "Waiting to be admitted"
 * - `selfrefused` `{by}`: a member refused this client; it stays waiting (another member may still admit it)
 * - `rostermismatch` {@link RosterMismatchDetail}: for a few seconds (`rosterTimeoutMs`) the members' signed views
 *   of the call have not listed the same people as this client's (or a member's view is missing): show `message`,
 *   blocking, naming the mismatches; this client sends no new media key until they agree. Fires again when what
 *   differs changes
 * - `rosteragreed` `{}`: after `rostermismatch`, every member's view agrees again
 * - `relay` `{from, participant, data}`: a relay message from another participant
 * - `error` `{error}`: a {@link SottoError} not tied to a request of this client's
 * @typedef {'participantjoined' | 'participantleft' | 'trackpublished' | 'trackunpublished' | 'trackmuted' |
 *   'track' | 'speaking' | 'connectionstate' | 'e2eestate' | 'safetynumber' | 'keychanged' | 'keycheckfailed' |
 *   'waiting' | 'admitted' | 'refused' | 'selfadmitted' | 'selfrefused' | 'rostermismatch' | 'rosteragreed' |
 *   'relay' | 'error'} CallEventName
 */

/**
 * A participant waiting to be admitted: the `waiting` event's detail and
 * what the `admission` option is asked about: `identity`, `identityKey`
 * (the Ed25519 identity key it announced), `known` (this browser met this
 * identity with this key before this call) and `verified` (the user
 * marked that key verified, {@link Call#markVerified}).
 * @typedef {import("./e2ee/index.js").Newcomer} Newcomer
 */

/**
 * What the `admission` option decides: "admit", "refuse" or "ask".
 * @typedef {import("./e2ee/index.js").AdmissionDecision} AdmissionDecision
 */

/**
 * The `admission` option of {@link connect}: `(newcomer) => "admit" | "refuse" | "ask"`, or a promise of it.
 * @typedef {import("./e2ee/index.js").AdmissionPolicy} AdmissionPolicy
 */

/**
 * One participant with end-to-end encryption, as this client sees it:
 * what {@link Call#admissions} lists (`identity`, `identityKey`, `state`
 * "waiting", "member" or "refused", `by` who admitted or refused it, `root`
 * already in the call when this client joined).
 * @typedef {import("./e2ee/index.js").ParticipantAdmission} ParticipantAdmission
 */

/**
 * This client's standing in the call: {@link Call#rosterStatus}.
 * @typedef {import("./e2ee/index.js").RosterStatus} RosterStatus
 */

/**
 * One member whose view of the call differs from this client's: `member`,
 * `missing` (its view never came), else `onlyTheirs` (names only its view
 * lists) and `onlyMine` (names only this client's lists).
 * @typedef {import("./e2ee/index.js").RosterMismatch} RosterMismatch
 */

/**
 * The `rostermismatch` event's detail: `message` ("The server is showing
 * different people to different participants") and `mismatches`.
 * @typedef {import("./e2ee/index.js").RosterMismatchDetail} RosterMismatchDetail
 */

/**
 * A known person's new identity key, or someone new whose name looks like
 * a known person's: the `keychanged` event's detail.
 * @typedef {import("./e2ee/index.js").KeyChange} KeyChange
 */

/**
 * A participant whose identity key this browser's store could not check:
 * the `keycheckfailed` event's detail.
 * @typedef {import("./e2ee/index.js").KeyCheckFailure} KeyCheckFailure
 */

/**
 * One person the safety number covers, with whether this client marked
 * their key verified.
 * @typedef {import("./e2ee/index.js").Covered} Covered
 */

/**
 * An error from the node (its `code` is one of the protocol's error codes,
 * docs/PROTOCOL.md section 7) or of this SDK. Branch on `code`:
 * - protocol codes: `token_expired`, `room_full`, `permission_denied`, …
 * - `replaced`: the same identity joined the room elsewhere (another tab)
 * - `shutdown`: the node is shutting down
 * - `connection_lost`: the WebSocket closed or could not open
 * - `ice_failed`: a peer connection failed
 * - `timeout`: the node did not answer in time
 * - `disconnected`: a request made or pending while the connection was down
 * - `closed`: the call was closed or left
 * - `e2ee_unsupported`: this browser cannot encrypt end to end
 * - `gave_up`: reconnecting failed `maxAttempts` times
 */
export class SottoError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{fatal?: boolean, ref?: string, refId?: string, cause?: unknown}} [opts]
   */
  constructor(code, message, opts = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "SottoError";
    /** @type {string} */
    this.code = code;
    /** The node closes the connection after this error. @type {boolean} */
    this.fatal = !!opts.fatal;
    /** The type of the message that caused it, when known. @type {string} */
    this.ref = opts.ref ?? "";
    /** The id of the request that caused it, when it had one. @type {string} */
    this.refId = opts.refId ?? "";
  }
}

/**
 * Codes after which connecting again the same way cannot succeed, or must
 * not be tried: the call ends with the error.
 */
const PERMANENT_CODES = new Set([
  "token_missing", "token_malformed", "token_algorithm", "token_unknown_key", "token_signature",
  "token_expired", "token_not_yet_valid", "room_mismatch", "unsupported_version", "permission_denied",
  "room_full", "replaced", "bad_message", "not_joined", "message_too_large", "closed", "e2ee_unsupported",
]);

/**
 * Reports whether a call that ended with err cannot be joined again by
 * simply retrying (a bad or expired token, a full room, another tab took
 * over, …).
 * @param {unknown} err
 * @returns {boolean}
 */
export function isPermanent(err) {
  return err instanceof SottoError && PERMANENT_CODES.has(err.code);
}

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
 * The WebSocket URL to dial for what a caller was given.
 * @param {string | URL} raw
 * @returns {string}
 */
export function signalURL(raw) {
  const base = typeof location !== "undefined" ? location.href : undefined;
  const u = new URL(String(raw), base);
  switch (u.protocol) {
    case "http:": case "ws:": u.protocol = "ws:"; break;
    case "https:": case "wss:": u.protocol = "wss:"; break;
    default: throw new TypeError(`sotto: server URL ${raw}: the scheme must be http, https, ws or wss`);
  }
  if (u.pathname === "" || u.pathname === "/") u.pathname = SIGNAL_PATH;
  u.hash = "";
  return u.toString();
}

/**
 * A local track this client publishes. It survives reconnects: the same
 * MediaStreamTrack is sent on every new publisher connection, and only its
 * sid changes.
 */
export class Publication {
  /**
   * @param {MediaStreamTrack} track
   * @param {string} id
   * @param {string} source
   * @param {boolean} ownsTrack
   */
  constructor(track, id, source, ownsTrack) {
    /** The track sent. @type {MediaStreamTrack} */
    this.track = track;
    /** The client track id the others see (TrackInfo.clientTrackId). @type {string} */
    this.id = id;
    /** What the track is: "camera", "microphone", "screen", or the application's word. @type {string} */
    this.source = source;
    /** The node's description, null until it announced the track (again, after a reconnect). @type {TrackInfo | null} */
    this.info = null;
    /** The mute state this client asked for. @type {boolean} */
    this.muted = false;
    /** Unpublished, or the call ended. @type {boolean} */
    this.removed = false;
    /** @type {boolean} */
    this.ownsTrack = ownsTrack;
  }

  /** The node's track id, "" until it announced the track. @returns {string} */
  get sid() { return this.info?.sid ?? ""; }

  /** @returns {string} "audio" or "video" */
  get kind() { return this.track.kind; }
}

/**
 * Per-publication state of the session it is attached to.
 * @typedef {object} Attachment
 * @property {Session} session
 * @property {RTCRtpTransceiver} transceiver
 * @property {boolean} negotiated an offer carrying it was answered
 */

/** @type {WeakMap<Publication, Attachment>} */
const attachments = new WeakMap();

/**
 * A remote track as received on the subscriber connection, before and
 * after it is matched with its description.
 * @typedef {object} Received
 * @property {MediaStreamTrack} track
 * @property {RTCRtpReceiver} receiver
 * @property {MediaStream} stream
 * @property {string} trackSid
 * @property {string} participantSid
 * @property {boolean} attached given to E2EE under its owner (or decided not to be); until then, in an
 *   encrypted call, E2EE drops its frames
 */

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
  /** @type {Publication[]} */ #pubs = [];
  /** @type {Set<string>} */ #subscribed = new Set();
  /** @type {Set<string>} */ #unsubscribed = new Set();
  /** Remote tracks whose description has not arrived, by sid. @type {Map<string, Received>} */ #held = new Map();
  /** Remote receivers by their MediaStreamTrack id, for stats. @type {Map<string, {identity: string, sid: string}>} */
  #receivers = new Map();
  /**
   * The identities announced with E2EE at some point of this call: they
   * encrypt for its whole life (see Participant.e2ee).
   * @type {Set<string>}
   */
  #encrypts = new Set();
  #refusedTracks = 0;
  /** @type {{maxMessageBytes: number, messagesPerSecond: number, tracksPerParticipant: number}} */
  #limits = { maxMessageBytes: 0, messagesPerSecond: 0, tracksPerParticipant: 0 };
  #ids = 0;
  #closing = false;
  #finished = false;
  #ownE2EE = false;
  /** Wakes a reconnect backoff early (close, the browser came online). @type {(() => void) | null} */
  #wake = null;
  /** @type {ReturnType<typeof setInterval> | undefined} */ #levelTimer;
  #levelsBusy = false;
  /** @type {Map<string, {speaking: boolean, loudAt: number}>} */ #speaking = new Map();
  /** @type {Promise<void>} */ #done;
  /** @type {() => void} */ #resolveDone = () => {};
  /** One MediaStream names every published track's stream in the msid. */
  #stream = new MediaStream();
  #onOnline = () => this.#wake?.();
  /** Events held until connect has resolved. @type {[string, unknown][] | null} */
  #deferred = null;

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
    this.#levelTimer = setInterval(() => { void this.#readLevels(); }, LEVEL_INTERVAL_MS);
    if (typeof window !== "undefined") window.addEventListener("online", this.#onOnline);
  }

  // ---- public API ----------------------------------------------------

  /** This client's publications. @returns {Publication[]} */
  get publications() { return [...this.#pubs]; }

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
  get refusedTracks() { return this.#refusedTracks; }

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
    if (!(track instanceof MediaStreamTrack)) throw new TypeError("sotto: publish needs a MediaStreamTrack");
    if (track.readyState === "ended") throw new TypeError("sotto: publish: the track has ended");
    const s = this.#liveSession();
    this.#checkCanPublish(1);
    const source = opts.source || (track.kind === "audio" ? "microphone" : "camera");
    const pub = new Publication(track, this.#uniqueTrackId(source), source, !!opts.stopOnUnpublish);
    this.#pubs.push(pub);
    this.#attach(s, pub);
    try {
      await this.#negotiate(s);
    } catch (err) {
      if (this.#removePublication(pub) && !s.failed) void this.#negotiate(s).catch(() => {});
      throw err;
    }
    return pub;
  }

  /**
   * Stops publishing: tells the node (waiting for its ack), removes the
   * track from the publisher connection and renegotiates. While the call
   * reconnects it is only dropped locally. Unpublishing twice does nothing.
   * @param {Publication} pub
   * @returns {Promise<void>}
   */
  async unpublish(pub) {
    if (!(pub instanceof Publication) || !this.#pubs.includes(pub)) return;
    const s = this.#session && !this.#session.failed ? this.#session : null;
    /** @type {unknown} */
    let failure = null;
    if (s && pub.sid) {
      try {
        await s.request({ type: "unpublish", id: this.#nextId(), track_sid: pub.sid });
      } catch (err) {
        if (!(err instanceof SottoError && (err.code === "unknown_track" || err.code === "disconnected"))) failure = err;
      }
    }
    const att = this.#removePublication(pub);
    if (att && !att.session.failed) {
      try {
        await this.#negotiate(att.session);
      } catch (err) {
        if (!(err instanceof SottoError && err.code === "disconnected")) failure ??= err;
      }
    }
    if (failure) throw failure;
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
    if (!(pub instanceof Publication)) throw new TypeError("sotto: setMuted needs a Publication");
    pub.muted = !!muted;
    pub.track.enabled = !muted;
    const s = this.#session;
    if (!s || s.failed || !pub.sid || pub.removed) return;
    await s.request({ type: "mute", id: this.#nextId(), track_sid: pub.sid, muted: !!muted });
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
    const s = this.#session;
    if (!s || s.failed) return [];
    const report = await s.sub.pc.getStats();
    /** @type {InboundTrackStats[]} */
    const out = [];
    report.forEach((r) => {
      if (r.type !== "inbound-rtp") return;
      const byMid = r.mid != null ? s.midMap.get(String(r.mid)) : undefined;
      const byTrack = r.trackIdentifier ? this.#receivers.get(r.trackIdentifier) : undefined;
      const trackSid = byMid?.trackSid ?? byTrack?.sid;
      if (!trackSid) return;
      const owner = this.#participantBySid(byMid?.participantSid ?? "") ??
        (byTrack ? this.participants.get(byTrack.identity) : undefined);
      if (!owner || !owner.tracks.has(trackSid)) return;
      out.push({
        identity: owner.identity,
        trackSid,
        kind: r.kind,
        packetsReceived: r.packetsReceived ?? 0,
        bytesReceived: r.bytesReceived ?? 0,
        framesReceived: r.framesReceived ?? 0,
        framesDecoded: r.framesDecoded ?? 0,
        frameWidth: r.frameWidth ?? 0,
        frameHeight: r.frameHeight ?? 0,
        audioLevel: r.audioLevel ?? 0,
        totalAudioEnergy: r.totalAudioEnergy ?? 0,
        e2ee: this.e2ee && owner.e2ee ? this.e2ee.trackStats(trackSid) : null,
      });
    });
    return out;
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
    const ws = new WebSocket(this.url);
    return new Promise((resolve, reject) => {
      /** @type {string[]} */
      const backlog = [];
      let joined = false;
      /** @param {SottoError} err */
      const fail = (err) => {
        if (joined) return;
        joined = true;
        clearTimeout(timer);
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        try { ws.close(); } catch { /* already closed */ }
        reject(err);
      };
      const timer = setTimeout(() => fail(new SottoError("timeout",
        `the server did not answer the join within ${JOIN_TIMEOUT_MS / 1000} s`)), JOIN_TIMEOUT_MS);
      ws.onopen = () => ws.send(JSON.stringify(join));
      ws.onerror = () => {};
      ws.onclose = (ev) => fail(closeError(ev));
      ws.onmessage = (ev) => {
        if (joined) {
          backlog.push(String(ev.data));
          return;
        }
        const m = parseMessage(ev.data);
        if (!m) return;
        switch (m.type) {
          case "joined":
            joined = true;
            clearTimeout(timer);
            ws.onclose = null;
            resolve({ ws, joined: m, backlog });
            return;
          case "error":
            fail(serverError(m));
            return;
          case "going_away":
            fail(goingAwayError(m));
            return;
          case "ping":
            ws.send(JSON.stringify({ type: "pong", id: m.id }));
        }
      };
    });
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
      track: (s, ev) => this.#onTrack(s, ev),
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
    if (this.#pubs.length) {
      try {
        this.#checkCanPublish(0);
      } catch (err) {
        // A fresh token without the publish grant, or a lower track limit:
        // the publications end here rather than on every reconnect.
        for (const p of [...this.#pubs]) this.#removePublication(p);
        this.#emit("error", { error: err });
      }
    }
    for (const p of this.#pubs) this.#attach(s, p);
    if (this.#pubs.length) await this.#negotiate(s);
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
    for (const p of this.#pubs) {
      if (attachments.get(p)?.session === s) attachments.delete(p);
      p.info = null;
    }
    this.self.tracks.clear();
    this.#held.clear();
    this.#receivers.clear();
  }

  /** @param {SottoError | null} err */
  #finish(err) {
    if (this.#finished) return;
    this.#finished = true;
    this.#closing = true;
    this.error = err;
    clearInterval(this.#levelTimer);
    if (typeof window !== "undefined") window.removeEventListener("online", this.#onOnline);
    for (const p of this.#pubs) {
      p.removed = true;
      p.info = null;
      if (p.ownsTrack) p.track.stop();
    }
    this.#pubs = [];
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
    this.#held.clear();
    this.#receivers.clear();

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
      this.#speaking.delete(id);
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
        if (m.target === "subscriber") return this.#answerSubscriber(s, m);
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
    for (const rec of this.#held.values()) {
      if (rec.participantSid === p.sid) this.#attachReceiver(rec, p);
    }
    for (const t of p.tracks.values()) {
      this.#emit("trackpublished", { info: t, participant: p, local: false });
      this.#releaseHeld(t.sid);
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
      this.#held.delete(t.sid);
      this.#emit("trackunpublished", { info: t, participant: p, local: false });
    }
    this.#speaking.delete(p.identity);
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
      const pub = this.#pubs.find((p) => !p.info && p.id === t.clientTrackId && attachments.get(p)?.session === s);
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
    this.#releaseHeld(t.sid);
  }

  /** @param {any} m */
  #onTrackUnpublished(m) {
    const own = this.self.tracks.get(m.sid);
    if (own) {
      this.self.tracks.delete(m.sid);
      for (const p of this.#pubs) if (p.info?.sid === m.sid) p.info = null;
      this.#emit("trackunpublished", { info: own, participant: this.self, local: true });
      return;
    }
    this.#held.delete(m.sid);
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
      for (const p of this.#pubs) if (p.info && p.info.sid === m.sid) p.info.muted = muted;
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

  // ---- media ------------------------------------------------------------

  /**
   * @param {number} adding
   */
  #checkCanPublish(adding) {
    if (!this.self.canPublish) {
      throw new SottoError("permission_denied", "the access token does not grant publishing", { ref: "offer" });
    }
    const n = this.#limits.tracksPerParticipant;
    if (n > 0 && this.#pubs.length + adding > n) {
      throw new SottoError("too_many_tracks", `the server allows ${n} tracks per participant`, { ref: "offer" });
    }
  }

  /**
   * A client track id for source not used by another publication.
   * @param {string} source
   */
  #uniqueTrackId(source) {
    const base = source.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 48) || "track";
    let id = base;
    for (let n = 2; this.#pubs.some((p) => p.id === id); n++) id = `${base}-${n}`;
    return id;
  }

  /**
   * Adds pub's track to s's publisher connection.
   * @param {Session} s
   * @param {Publication} pub
   */
  #attach(s, pub) {
    const transceiver = s.pub.pc.addTransceiver(pub.track, { direction: "sendonly", streams: [this.#stream] });
    attachments.set(pub, { session: s, transceiver, negotiated: false });
    pub.track.enabled = !pub.muted;
    if (this.e2ee) this.e2ee.attachSender(transceiver.sender);
  }

  /**
   * Drops pub from the call and its transceiver from the publisher
   * connection; returns the attachment it had (its session then needs a
   * renegotiation), or null.
   * @param {Publication} pub
   * @returns {Attachment | null}
   */
  #removePublication(pub) {
    const i = this.#pubs.indexOf(pub);
    if (i < 0) return null;
    this.#pubs.splice(i, 1);
    pub.removed = true;
    pub.info = null;
    if (pub.ownsTrack) pub.track.stop();
    const att = attachments.get(pub) ?? null;
    attachments.delete(pub);
    if (att && !att.session.failed) {
      try { att.transceiver.stop(); } catch { /* the connection closed */ }
    }
    return att;
  }

  /**
   * Makes sure an offer goes out on s's publisher connection that carries
   * every change made so far, and resolves with its outcome. Changes made
   * while an offer is in flight go in the next one.
   * @param {Session} s
   * @returns {Promise<void>}
   */
  #negotiate(s) {
    if (s.failed) return Promise.reject(s.requestError());
    if (s.nextRound) return s.nextRound.promise;
    /** @type {Deferred<void>} */
    const round = deferred();
    s.nextRound = round;
    s.negotiations = s.negotiations.then(async () => {
      if (s.nextRound === round) s.nextRound = null;
      if (s.failed) {
        round.reject(s.requestError());
        return;
      }
      try {
        await this.#offerPublisher(s);
        round.resolve(undefined);
      } catch (err) {
        round.reject(err);
      }
    });
    return round.promise;
  }

  /**
   * One offer on the publisher connection, and its answer. A refusal rolls
   * the offer back and drops the publications it added.
   * @param {Session} s
   */
  async #offerPublisher(s) {
    const pc = s.pub.pc;
    const inOffer = this.#pubs.filter((p) => {
      const a = attachments.get(p);
      return a && a.session === s && !a.negotiated;
    });
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    /** @type {Map<string, string>} */
    const ids = new Map();
    for (const p of this.#pubs) {
      const a = attachments.get(p);
      if (a && a.session === s && a.transceiver.mid != null) ids.set(a.transceiver.mid, p.id);
    }
    const sdp = rewriteMsid(offer.sdp ?? "", ids);
    const deadline = Date.now() + NEGOTIATION_TIMEOUT_MS;
    for (;;) {
      let answer;
      try {
        const reply = s.request({ type: "offer", id: this.#nextId(), target: "publisher", sdp },
          Math.max(deadline - Date.now(), 1));
        s.pub.release();
        answer = await reply;
      } catch (err) {
        if (!(err instanceof SottoError)) throw err;
        if (err.code === "rate_limited" && Date.now() + RATE_LIMITED_RETRY_MS < deadline) {
          // Dropped unread: the same offer is still the one to send.
          await sleep(RATE_LIMITED_RETRY_MS);
          if (s.failed) throw s.requestError();
          continue;
        }
        if (err.code === "timeout") {
          s.fail(new SottoError("timeout", `no answer to the publisher offer within ${NEGOTIATION_TIMEOUT_MS / 1000} s`));
          throw s.requestError();
        }
        if (err.refId && !s.failed) {
          try { await pc.setLocalDescription({ type: "rollback" }); } catch { /* nothing to roll back */ }
          for (const p of inOffer) this.#removePublication(p);
        }
        throw err;
      }
      try {
        await s.pub.setRemote({ type: "answer", sdp: String(answer) });
      } catch (err) {
        s.fail(new SottoError("negotiation_failed", `the server's publisher answer: ${errorText(err)}`, { cause: err }));
        throw s.requestError();
      }
      for (const p of inOffer) {
        const a = attachments.get(p);
        if (a && a.session === s) a.negotiated = true;
      }
      return;
    }
  }

  /**
   * Answers the node's offer on the subscriber connection. A failure leaves
   * the connection in a state no later offer repairs: the session is
   * dropped and the call reconnects.
   * @param {Session} s
   * @param {any} m
   */
  async #answerSubscriber(s, m) {
    const sdp = String(m.sdp ?? "");
    for (const [mid, ids] of parseMsids(sdp)) s.midMap.set(mid, ids);
    try {
      await s.sub.setRemote({ type: "offer", sdp });
      const answer = await s.sub.pc.createAnswer();
      await s.sub.pc.setLocalDescription(answer);
      if (s.failed) return;
      s.request({ type: "answer", id: this.#nextId(), target: "subscriber", sdp: answer.sdp }).catch((err) => {
        if (err instanceof SottoError && err.code !== "disconnected") this.#emit("error", { error: err });
      });
      // Local candidates go out only after the answer they belong to.
      s.sub.release();
    } catch (err) {
      s.fail(new SottoError("negotiation_failed", `the server's subscriber offer: ${errorText(err)}`, { cause: err }));
    }
  }

  /**
   * A track starts arriving on the subscriber connection. Its sid and
   * owner come from the offer's msid of its m-section (browsers give
   * received tracks ids of their own).
   * @param {Session} s
   * @param {RTCTrackEvent} ev
   */
  #onTrack(s, ev) {
    if (s !== this.#session || s.failed) return;
    const mid = ev.transceiver?.mid;
    const ids = mid != null ? s.midMap.get(mid) : undefined;
    /** @type {Received} */
    const rec = {
      track: ev.track,
      receiver: ev.receiver,
      stream: ev.streams[0] ?? new MediaStream([ev.track]),
      trackSid: ids?.trackSid ?? ev.track.id,
      participantSid: ids?.participantSid ?? ev.streams[0]?.id ?? "",
      attached: false,
    };
    const owner = this.#participantBySid(rec.participantSid);
    const info = owner?.tracks.get(rec.trackSid);
    if (owner && info && this.#refuse(owner, info)) return;
    // An unknown owner's frames are dropped, the receiver not left bare:
    // Chromium ignores a first transform set once frames have flowed.
    if (owner) this.#attachReceiver(rec, owner);
    else this.e2ee?.holdReceiver(rec.receiver);
    if (!owner || !info) {
      this.#held.set(rec.trackSid, rec);
      return;
    }
    this.#deliver(rec, owner, info);
  }

  /**
   * Gives an encrypted participant's receiver to E2EE, once per track, as
   * early as its owner is known, to be decrypted under the owner's keys
   * (never under the identity the track names). Tracks of participants
   * who do not encrypt (announced without E2EE, and never with it in this
   * call) arrive in clear and pass as they are: E2EE is told so, since
   * the receiver may be a reused one it decrypts for an earlier owner, or
   * its frames may reach the decoder only through E2EE's streams.
   * @param {Received} rec
   * @param {Participant} owner
   */
  #attachReceiver(rec, owner) {
    if (rec.attached) return;
    rec.attached = true;
    if (!this.e2ee) return;
    if (owner.e2ee) this.e2ee.attachReceiver(rec.receiver, owner.identity, rec.trackSid);
    else this.e2ee.attachClearReceiver(rec.receiver);
  }

  /** @param {string} sid */
  #releaseHeld(sid) {
    const rec = this.#held.get(sid);
    if (!rec) return;
    const owner = this.#participantBySid(rec.participantSid);
    const info = owner?.tracks.get(sid);
    if (!owner || !info) return;
    this.#held.delete(sid);
    // Refused, a receiver given to E2EE early stays there: its frames
    // are decrypted under its owner's keys, or dropped, and nobody plays
    // them.
    if (this.#refuse(owner, info)) return;
    this.#attachReceiver(rec, owner);
    this.#deliver(rec, owner, info);
  }

  /**
   * Refuses a track whose identity is not its owner's (the participant
   * whose track list holds it): the node may have moved one participant's
   * media under another's name, which the application would show as the
   * other's. It is counted ({@link Call#refusedTracks}), logged, and never
   * delivered.
   * @param {Participant} owner
   * @param {TrackInfo} info
   * @returns {boolean} refused
   */
  #refuse(owner, info) {
    if (info.identity === owner.identity) return false;
    this.#refusedTracks++;
    console.warn(`sotto: track ${info.sid} refused: its identity ${JSON.stringify(info.identity)} is not its owner's, ` +
      `${JSON.stringify(owner.identity)} (${owner.sid}): the server may be presenting one participant's media as another's`);
    return true;
  }

  /**
   * @param {Received} rec
   * @param {Participant} owner
   * @param {TrackInfo} info
   */
  #deliver(rec, owner, info) {
    this.#receivers.set(rec.track.id, { identity: owner.identity, sid: info.sid });
    /** @type {TrackEventDetail} */
    const detail = { track: rec.track, stream: rec.stream, receiver: rec.receiver, info, participant: owner };
    this.#emit("track", detail);
  }

  /**
   * Reads audio levels (the publisher's media-source, the subscriber's
   * inbound-rtp) and reports who starts and stops speaking.
   */
  async #readLevels() {
    const s = this.#session;
    if (!s || s.failed || this.#levelsBusy) return;
    this.#levelsBusy = true;
    try {
      /** @type {Map<string, number>} */
      const levels = new Map();
      const micOn = this.#pubs.some((p) => p.kind === "audio" && !p.muted && attachments.get(p)?.session === s);
      if (micOn && this.self.identity) {
        const pubStats = await s.pub.pc.getStats();
        pubStats.forEach((r) => {
          if (r.type === "media-source" && r.kind === "audio" && typeof r.audioLevel === "number") {
            levels.set(this.self.identity, Math.max(levels.get(this.self.identity) ?? 0, r.audioLevel));
          }
        });
      }
      const subStats = await s.sub.pc.getStats();
      subStats.forEach((r) => {
        if (r.type !== "inbound-rtp" || r.kind !== "audio" || typeof r.audioLevel !== "number") return;
        const rcv = r.trackIdentifier ? this.#receivers.get(r.trackIdentifier) : undefined;
        const ids = r.mid != null ? s.midMap.get(String(r.mid)) : undefined;
        const identity = rcv?.identity ?? this.#participantBySid(ids?.participantSid ?? "")?.identity;
        if (identity) levels.set(identity, Math.max(levels.get(identity) ?? 0, r.audioLevel));
      });
      if (s !== this.#session) return;
      const now = Date.now();
      const everyone = [this.self.identity, ...this.participants.keys()];
      for (const identity of everyone) {
        const level = levels.get(identity) ?? 0;
        let st = this.#speaking.get(identity);
        if (!st) {
          st = { speaking: false, loudAt: 0 };
          this.#speaking.set(identity, st);
        }
        if (level >= SPEAKING_LEVEL) st.loudAt = now;
        const speaking = now - st.loudAt < SPEAKING_HOLD_MS;
        if (speaking !== st.speaking) {
          st.speaking = speaking;
          this.#emit("speaking", { identity, speaking, level });
        }
      }
    } catch {
      // A connection closing under getStats: the next round sees it.
    } finally {
      this.#levelsBusy = false;
    }
  }
}

/**
 * @typedef {object} SessionHooks
 * @property {(s: Session, m: any) => (Promise<void> | void)} message a room or media message, in order
 * @property {(s: Session, ev: RTCTrackEvent) => void} track a track on the subscriber connection
 * @property {() => string} nextId
 */

/**
 * @template T
 * @typedef {{promise: Promise<T>, resolve: (v: T) => void, reject: (e: unknown) => void}} Deferred
 */

/**
 * One connection to the node: the WebSocket, the two peer connections
 * built for it, and the requests waiting for a reply on it. A reconnect
 * builds a new session; nothing of the old one is reused but the
 * application's tracks.
 */
class Session {
  /** @type {boolean} */ failed = false;
  /** @type {SottoError | null} */ cause = null;
  /** The last fatal error message of the node's. @type {SottoError | null} */ fatal = null;
  /** The reason of a going_away. @type {string} */ goingAway = "";
  /** @type {Map<string, {resolve: (v: unknown) => void, reject: (e: unknown) => void, timer?: ReturnType<typeof setTimeout>}>} */
  pending = new Map();
  /** Subscriber m-sections: mid → the participant and track sids of their msid. @type {Map<string, {participantSid: string, trackSid: string}>} */
  midMap = new Map();
  /** Publisher negotiations run one after another on this chain. @type {Promise<void>} */
  negotiations = Promise.resolve();
  /** A negotiation round not started yet. @type {Deferred<void> | null} */
  nextRound = null;
  /** Resolves with the cause once the session has failed. @type {Promise<SottoError>} */
  ended;
  /** @type {(e: SottoError) => void} */ #end = () => {};
  /** Messages are handled one after another on this chain. */
  #inbox = Promise.resolve();
  /** @type {string[]} */ #queue = [];
  #tokens = 0;
  #rate = 0;
  #lastRefill = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */ #writeTimer;
  /** @type {ReturnType<typeof setInterval> | undefined} */ #keepalive;
  #awaitingPong = false;
  #maxMessage = 0;
  /** @type {(() => void)[]} */ #flushWaiters = [];

  /**
   * @param {WebSocket} ws
   * @param {any} limits the node's limits from joined
   * @param {RTCConfiguration} config
   * @param {SessionHooks} hooks
   */
  constructor(ws, limits, config, hooks) {
    this.ws = ws;
    this.hooks = hooks;
    this.#rate = limits.messages_per_second > 0 ? limits.messages_per_second : 0;
    this.#tokens = this.#rate;
    this.#lastRefill = performance.now();
    this.#maxMessage = limits.max_message_bytes > 0 ? limits.max_message_bytes : 0;
    this.ended = new Promise((resolve) => { this.#end = resolve; });
    this.pub = new Peer(this, "publisher", config);
    this.sub = new Peer(this, "subscriber", config);
    this.sub.pc.ontrack = (ev) => hooks.track(this, ev);
  }

  /**
   * Takes over the WebSocket and handles what arrived since joined.
   * @param {string[]} backlog
   */
  start(backlog) {
    const ws = this.ws;
    ws.onmessage = (ev) => this.#receive(String(ev.data));
    ws.onclose = (ev) => this.fail(closeError(ev));
    ws.onerror = () => {};
    for (const data of backlog) this.#receive(data);
    if (ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED) {
      this.fail(new SottoError("connection_lost", "the connection to the server closed"));
    }
    this.#keepalive = setInterval(() => {
      if (this.#awaitingPong) {
        this.fail(new SottoError("connection_lost", "the server stopped answering"));
        return;
      }
      this.#awaitingPong = true;
      this.send({ type: "ping", id: this.hooks.nextId() });
    }, KEEPALIVE_MS);
  }

  /** @param {string} data */
  #receive(data) {
    if (this.failed) return;
    const m = parseMessage(data);
    if (!m) return;
    this.#awaitingPong = false; // anything from the node shows it is there
    this.#inbox = this.#inbox.then(() => this.#handle(m)).catch((err) => {
      console.warn("sotto: message from the server not handled:", err);
    });
  }

  /**
   * @param {any} m
   * @returns {Promise<void> | void}
   */
  #handle(m) {
    if (this.failed) return;
    switch (m.type) {
      case "ping":
        this.send({ type: "pong", id: m.id });
        return;
      case "pong":
        return;
      case "ack":
        this.#resolve(m.id, undefined);
        return;
      case "answer":
        if (m.target !== "publisher" || !this.#resolve(m.id, String(m.sdp ?? ""))) {
          console.warn(`sotto: answer ${m.id} for ${m.target} matches no offer`);
        }
        return;
      case "candidate": {
        const peer = m.target === "publisher" ? this.pub : m.target === "subscriber" ? this.sub : null;
        if (peer && m.candidate) peer.addRemoteCandidate(m.candidate);
        return;
      }
      case "error": {
        const err = serverError(m);
        if (err.fatal) this.fatal = err;
        if (!this.#reject(err.refId, err) && !err.fatal) return this.hooks.message(this, m);
        return;
      }
      case "going_away":
        this.goingAway = String(m.reason ?? "");
        return;
      default:
        return this.hooks.message(this, m);
    }
  }

  /**
   * Queues a message for the node, keeping to its message rate.
   * @param {object} msg
   */
  send(msg) {
    if (this.failed) throw this.requestError();
    const text = JSON.stringify(msg);
    if (this.#maxMessage && new TextEncoder().encode(text).length > this.#maxMessage) {
      throw new SottoError("message_too_large",
        `a message of ${text.length} bytes; the server accepts at most ${this.#maxMessage}`);
    }
    this.#queue.push(text);
    this.#drain();
  }

  #drain() {
    if (this.#writeTimer !== undefined || this.failed) return;
    if (this.#rate) {
      const now = performance.now();
      this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#lastRefill) / 1000) * this.#rate);
      this.#lastRefill = now;
    }
    while (this.#queue.length && (!this.#rate || this.#tokens >= 1)) {
      const text = /** @type {string} */ (this.#queue.shift());
      if (this.#rate) this.#tokens -= 1;
      try {
        this.ws.send(text);
      } catch (err) {
        this.fail(new SottoError("connection_lost", `sending to the server: ${errorText(err)}`, { cause: err }));
        return;
      }
    }
    if (this.#queue.length) {
      const wait = Math.ceil(((1 - this.#tokens) / this.#rate) * 1000);
      this.#writeTimer = setTimeout(() => {
        this.#writeTimer = undefined;
        this.#drain();
      }, Math.max(wait, 1));
      return;
    }
    for (const f of this.#flushWaiters.splice(0)) f();
  }

  /**
   * Resolves once every queued message was handed to the WebSocket, or
   * after timeoutMs.
   * @param {number} timeoutMs
   * @returns {Promise<void>}
   */
  flushed(timeoutMs) {
    if (!this.#queue.length || this.failed) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.#flushWaiters.push(() => { clearTimeout(t); resolve(); });
    });
  }

  /**
   * Sends a request (msg carries its id) and resolves with its reply: an
   * ack (undefined) or, for an offer, the answer's SDP. Rejects with the
   * node's error, or on timeout, or when the session fails.
   * @param {{id: string, [k: string]: unknown}} msg
   * @param {number} [timeoutMs]
   * @returns {Promise<unknown>}
   */
  request(msg, timeoutMs) {
    if (this.failed) return Promise.reject(this.requestError());
    return new Promise((resolve, reject) => {
      /** @type {{resolve: (v: unknown) => void, reject: (e: unknown) => void, timer?: ReturnType<typeof setTimeout>}} */
      const entry = { resolve, reject };
      if (timeoutMs) {
        entry.timer = setTimeout(() => {
          this.pending.delete(msg.id);
          reject(new SottoError("timeout", `no reply to ${msg.type} within ${Math.round(timeoutMs / 1000)} s`));
        }, timeoutMs);
      }
      this.pending.set(msg.id, entry);
      try {
        this.send(msg);
      } catch (err) {
        this.pending.delete(msg.id);
        clearTimeout(entry.timer);
        reject(err);
      }
    });
  }

  /**
   * @param {string} id
   * @param {unknown} value
   */
  #resolve(id, value) {
    const e = id ? this.pending.get(id) : undefined;
    if (!e) return false;
    this.pending.delete(id);
    clearTimeout(e.timer);
    e.resolve(value);
    return true;
  }

  /**
   * @param {string} id
   * @param {unknown} err
   */
  #reject(id, err) {
    const e = id ? this.pending.get(id) : undefined;
    if (!e) return false;
    this.pending.delete(id);
    clearTimeout(e.timer);
    e.reject(err);
    return true;
  }

  /** What a request on this failed session rejects with. */
  requestError() {
    if (this.cause?.code === "closed") return this.cause;
    return new SottoError("disconnected", `disconnected from the server: ${this.cause?.message ?? "reconnecting"}`,
      { cause: this.cause });
  }

  /**
   * Why the session ended: a fatal error or going_away of the node's if it
   * sent one, the cause given to fail otherwise.
   * @returns {SottoError}
   */
  error() {
    if (this.goingAway === "replaced") {
      return new SottoError("replaced", "the same name joined this room from another tab or device", { fatal: true });
    }
    if (this.fatal) return this.fatal;
    if (this.goingAway) {
      return new SottoError(this.goingAway === "shutdown" ? "shutdown" : "connection_lost",
        `the server is going away (${this.goingAway})`, { cause: this.cause });
    }
    return this.cause ?? new SottoError("connection_lost", "the connection to the server was lost");
  }

  /**
   * Ends the session: its requests fail, its timers stop. Only the first
   * call does anything; teardown closes the connections.
   * @param {SottoError} cause
   */
  fail(cause) {
    if (this.failed) return;
    this.failed = true;
    this.cause = cause;
    clearInterval(this.#keepalive);
    clearTimeout(this.#writeTimer);
    this.#queue = [];
    const err = this.requestError();
    for (const e of this.pending.values()) {
      clearTimeout(e.timer);
      e.reject(err);
    }
    this.pending.clear();
    if (this.nextRound) {
      this.nextRound.reject(err);
      this.nextRound = null;
    }
    for (const f of this.#flushWaiters.splice(0)) f();
    this.#end(cause);
  }

  /** Closes the WebSocket (gracefully) and both peer connections. */
  teardown() {
    this.fail(new SottoError("closed", "the session was closed"));
    const ws = this.ws;
    ws.onmessage = ws.onclose = ws.onerror = null;
    try { ws.close(1000); } catch { /* already closed */ }
    this.pub.close();
    this.sub.close();
  }

  /**
   * A peer connection changed state: "failed", or "disconnected" for too
   * long, ends the session (v1 has no ICE restart: the call reconnects).
   * @param {Peer} peer
   */
  peerState(peer) {
    const st = peer.pc.connectionState;
    clearTimeout(peer.disconnectedTimer);
    if (st === "failed") {
      this.fail(new SottoError("ice_failed", `the ${peer.target} media connection failed`));
    } else if (st === "disconnected") {
      peer.disconnectedTimer = setTimeout(() => {
        if (peer.pc.connectionState === "disconnected") {
          this.fail(new SottoError("ice_failed", `the ${peer.target} media connection was lost`));
        }
      }, ICE_DISCONNECTED_GRACE_MS);
    }
  }
}

/**
 * One of the session's two peer connections, with the remote candidates
 * that arrived before its remote description and the local ones held back
 * until the description they belong to has been sent.
 */
class Peer {
  /** @type {boolean} */ remoteSet = false;
  /** @type {RTCIceCandidateInit[]} */ early = [];
  /** @type {boolean} */ gateOpen = false;
  /** @type {(RTCIceCandidateInit | null)[]} */ held = [];
  /** @type {ReturnType<typeof setTimeout> | undefined} */ disconnectedTimer;

  /**
   * @param {Session} session
   * @param {'publisher' | 'subscriber'} target
   * @param {RTCConfiguration} config
   */
  constructor(session, target, config) {
    this.session = session;
    this.target = target;
    this.pc = new RTCPeerConnection(config);
    this.pc.onicecandidate = (ev) => {
      // An empty candidate string is the old end-of-candidates marker;
      // null is the one the protocol uses.
      if (ev.candidate && !ev.candidate.candidate) return;
      this.#local(ev.candidate ? ev.candidate.toJSON() : null);
    };
    this.pc.onconnectionstatechange = () => session.peerState(this);
  }

  /** @param {RTCIceCandidateInit | null} c */
  #local(c) {
    if (!this.gateOpen) {
      this.held.push(c);
      return;
    }
    if (this.session.failed) return;
    try {
      this.session.send({ type: "candidate", target: this.target, candidate: c });
    } catch { /* the session failed: the reconnect gathers anew */ }
  }

  /** The description went out: send the candidates held for it. */
  release() {
    if (this.gateOpen) return;
    this.gateOpen = true;
    for (const c of this.held.splice(0)) this.#local(c);
  }

  /**
   * Applies a remote description and the candidates that waited for it.
   * @param {RTCSessionDescriptionInit} desc
   */
  async setRemote(desc) {
    await this.pc.setRemoteDescription(desc);
    this.remoteSet = true;
    for (const c of this.early.splice(0)) {
      this.pc.addIceCandidate(c).catch((err) => console.debug(`sotto: early ${this.target} candidate refused:`, err));
    }
  }

  /** @param {RTCIceCandidateInit} c */
  addRemoteCandidate(c) {
    if (!this.remoteSet) {
      if (this.early.length < MAX_EARLY_CANDIDATES) this.early.push(c);
      return;
    }
    this.pc.addIceCandidate(c).catch((err) => console.debug(`sotto: ${this.target} candidate refused:`, err));
  }

  close() {
    clearTimeout(this.disconnectedTimer);
    this.pc.onicecandidate = null;
    this.pc.onconnectionstatechange = null;
    this.pc.ontrack = null;
    this.pc.close();
  }
}

// ---- wire helpers ----------------------------------------------------------

/**
 * @param {unknown} data
 * @returns {any} a message object, or null for anything else
 */
function parseMessage(data) {
  if (typeof data !== "string") return null;
  try {
    const m = JSON.parse(data);
    return m && typeof m === "object" && typeof m.type === "string" ? m : null;
  } catch {
    return null;
  }
}

/**
 * @param {any} m an error message
 * @returns {SottoError}
 */
function serverError(m) {
  return new SottoError(String(m.code ?? "internal"), String(m.message || `server error ${m.code}`), {
    fatal: !!m.fatal, ref: m.ref ?? "", refId: m.ref_id ?? "",
  });
}

/**
 * @param {any} m a going_away message
 * @returns {SottoError}
 */
function goingAwayError(m) {
  if (m.reason === "replaced") {
    return new SottoError("replaced", "the same name joined this room from another tab or device", { fatal: true });
  }
  return new SottoError("shutdown", String(m.message || "the server is shutting down"));
}

/**
 * @param {CloseEvent} ev
 * @returns {SottoError}
 */
function closeError(ev) {
  const why = ev.reason ? `: ${ev.reason}` : "";
  return new SottoError("connection_lost", `the connection to the server closed (code ${ev.code}${why})`);
}

/** @returns {Participant} */
function emptyParticipant() {
  return { sid: "", identity: "", publicKey: "", e2ee: false, canPublish: false, canSubscribe: false, tracks: new Map() };
}

/**
 * @param {any} w a ParticipantInfo of the wire
 * @returns {Participant}
 */
function participantFromWire(w) {
  /** @type {Map<string, TrackInfo>} */
  const tracks = new Map();
  for (const t of Array.isArray(w.tracks) ? w.tracks : []) {
    const info = trackFromWire(t);
    if (info.sid) tracks.set(info.sid, info);
  }
  return {
    sid: String(w.sid ?? ""),
    identity: String(w.identity ?? ""),
    publicKey: String(w.public_key ?? ""),
    e2ee: !!w.e2ee,
    canPublish: !!w.can_publish,
    canSubscribe: !!w.can_subscribe,
    tracks,
  };
}

/**
 * @param {any} t a TrackInfo of the wire
 * @returns {TrackInfo}
 */
function trackFromWire(t) {
  return {
    sid: String(t.sid ?? ""),
    participantSid: String(t.participant_sid ?? ""),
    identity: String(t.identity ?? ""),
    clientTrackId: String(t.client_track_id ?? ""),
    kind: t.kind === "audio" ? "audio" : "video",
    codec: String(t.codec ?? ""),
    muted: !!t.muted,
    e2ee: !!t.e2ee,
  };
}

/**
 * Splits an SDP into its session part and its m-sections.
 * @param {string} sdp
 * @returns {string[][]} lines per part, the session part first
 */
function sdpSections(sdp) {
  /** @type {string[][]} */
  const parts = [[]];
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith("m=")) parts.push([]);
    parts[parts.length - 1].push(line);
  }
  return parts;
}

/**
 * The subscriber offer's m-sections: mid → the msid's stream id (the
 * owner's participant sid) and track id (the track sid).
 * @param {string} sdp
 * @returns {Map<string, {participantSid: string, trackSid: string}>}
 */
export function parseMsids(sdp) {
  /** @type {Map<string, {participantSid: string, trackSid: string}>} */
  const out = new Map();
  for (const lines of sdpSections(sdp).slice(1)) {
    let mid = "";
    let msid = null;
    for (const line of lines) {
      if (line.startsWith("a=mid:")) mid = line.slice(6).trim();
      else if (line.startsWith("a=msid:")) msid = line.slice(7).trim().split(/\s+/);
    }
    if (mid && msid && msid.length >= 2) out.set(mid, { participantSid: msid[0], trackSid: msid[1] });
  }
  return out;
}

/**
 * Puts the publication's client track id in the msid of its m-section
 * (browsers put the MediaStreamTrack's random id there), so that the node
 * and the others see "camera", "microphone", … as client_track_id. Only
 * the copy sent to the node is rewritten; the browser keeps its own.
 * @param {string} sdp
 * @param {Map<string, string>} ids mid → client track id
 * @returns {string}
 */
export function rewriteMsid(sdp, ids) {
  const eol = sdp.includes("\r\n") ? "\r\n" : "\n";
  const parts = sdpSections(sdp);
  for (const lines of parts.slice(1)) {
    const midLine = lines.find((l) => l.startsWith("a=mid:"));
    const id = midLine ? ids.get(midLine.slice(6).trim()) : undefined;
    if (!id) continue;
    for (let i = 0; i < lines.length; i++) {
      lines[i] = lines[i]
        .replace(/^(a=msid:\S+) \S+$/, `$1 ${id}`)
        .replace(/^(a=ssrc:\d+ msid:\S+) \S+$/, `$1 ${id}`);
    }
  }
  return parts.map((l) => l.join(eol)).join(eol);
}

// ---- small helpers ------------------------------------------------------------

/**
 * @template T
 * @returns {Deferred<T>}
 */
function deferred() {
  /** @type {(v: T) => void} */
  let resolve = () => {};
  /** @type {(e: unknown) => void} */
  let reject = () => {};
  /** @type {Promise<T>} */
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  // Nobody may be waiting on a round that fails.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** @param {number} ms */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * @template T
 * @param {Promise<T>} p
 * @param {number} ms
 * @param {() => unknown} onTimeout makes the rejection
 * @returns {Promise<T>}
 */
function withTimeout(p, ms, onTimeout) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let t;
  const timeout = new Promise((_, reject) => { t = setTimeout(() => reject(onTimeout()), ms); });
  return /** @type {Promise<T>} */ (Promise.race([p, timeout])).finally(() => clearTimeout(t));
}

/** @param {unknown} err */
function errorText(err) {
  return err instanceof Error ? err.message : String(err);
}
