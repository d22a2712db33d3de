/**
 * Reports whether a call that ended with err cannot be joined again by
 * simply retrying (a bad or expired token, a full room, another tab took
 * over, …).
 * @param {unknown} err
 * @returns {boolean}
 */
export function isPermanent(err: unknown): boolean;
/**
 * Connects to the node at url and joins the room of options.token. It
 * resolves once the node has answered the join: the call is then
 * 'connected', `call.self` and `call.participants` are filled, and events
 * start. A refused join rejects with a {@link SottoError}.
 * @param {string | URL} url "https://host", "http://host:7780", "wss://host/v1/signal", or a path on this page's origin
 * @param {ConnectOptions} options
 * @returns {Promise<Call>}
 */
export function connect(url: string | URL, options: ConnectOptions): Promise<Call>;
/**
 * The WebSocket URL to dial for what a caller was given.
 * @param {string | URL} raw
 * @returns {string}
 */
export function signalURL(raw: string | URL): string;
/**
 * The subscriber offer's m-sections: mid → the msid's stream id (the
 * owner's participant sid) and track id (the track sid).
 * @param {string} sdp
 * @returns {Map<string, {participantSid: string, trackSid: string}>}
 */
export function parseMsids(sdp: string): Map<string, {
    participantSid: string;
    trackSid: string;
}>;
/**
 * Puts the publication's client track id in the msid of its m-section
 * (browsers put the MediaStreamTrack's random id there), so that the node
 * and the others see "camera", "microphone", … as client_track_id. Only
 * the copy sent to the node is rewritten; the browser keeps its own.
 * @param {string} sdp
 * @param {Map<string, string>} ids mid → client track id
 * @returns {string}
 */
export function rewriteMsid(sdp: string, ids: Map<string, string>): string;
/** The signaling protocol version this SDK speaks. */
export const PROTOCOL_VERSION: 1;
/** The HTTP path of the node's WebSocket signaling endpoint. */
export const SIGNAL_PATH: "/v1/signal";
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
    constructor(code: string, message: string, opts?: {
        fatal?: boolean;
        ref?: string;
        refId?: string;
        cause?: unknown;
    });
    /** @type {string} */
    code: string;
    /** The node closes the connection after this error. @type {boolean} */
    fatal: boolean;
    /** The type of the message that caused it, when known. @type {string} */
    ref: string;
    /** The id of the request that caused it, when it had one. @type {string} */
    refId: string;
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
    constructor(track: MediaStreamTrack, id: string, source: string, ownsTrack: boolean);
    /** The track sent. @type {MediaStreamTrack} */
    track: MediaStreamTrack;
    /** The client track id the others see (TrackInfo.clientTrackId). @type {string} */
    id: string;
    /** What the track is: "camera", "microphone", "screen", or the application's word. @type {string} */
    source: string;
    /** The node's description, null until it announced the track (again, after a reconnect). @type {TrackInfo | null} */
    info: TrackInfo | null;
    /** The mute state this client asked for. @type {boolean} */
    muted: boolean;
    /** Unpublished, or the call ended. @type {boolean} */
    removed: boolean;
    /** @type {boolean} */
    ownsTrack: boolean;
    /** The node's track id, "" until it announced the track. @returns {string} */
    get sid(): string;
    /** @returns {string} "audio" or "video" */
    get kind(): string;
}
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
    /**
     * Same as {@link connect}.
     * @param {string | URL} url
     * @param {ConnectOptions} options
     * @returns {Promise<Call>}
     */
    static connect(url: string | URL, options: ConnectOptions): Promise<Call>;
    /**
     * Use {@link connect}.
     * @param {string} url
     * @param {ConnectOptions} opts
     */
    constructor(url: string, opts: ConnectOptions);
    /** @type {string} */ url: string;
    /** The room, as the node named it in joined. @type {string} */ room: string;
    /** This client's participant; its tracks are those the node announced. @type {Participant} */
    self: Participant;
    /** The other participants, by identity. The same Map for the whole call. @type {Map<string, Participant>} */
    participants: Map<string, Participant>;
    /** @type {ConnectionState} */ state: ConnectionState;
    /** Why the call ended; null while it runs and after close or leave. @type {SottoError | null} */ error: SottoError | null;
    /** End-to-end encryption, null when it is off. @type {E2EE | null} */ e2ee: E2EE | null;
    /** This client's publications. @returns {Publication[]} */
    get publications(): Publication[];
    /** Resolves when the call has ended, for whatever reason. @returns {Promise<void>} */
    get done(): Promise<void>;
    /**
     * How many remote tracks this call refused to give the application
     * because the track's `identity` is not that of the participant whose
     * track list holds it. An honest node never does that; one that does is
     * presenting one participant's media as another's (docs/E2EE.md). Each
     * refusal is also logged as a warning.
     * @returns {number}
     */
    get refusedTracks(): number;
    /**
     * Captures a camera and publishes it.
     * @param {CameraOptions} [opts]
     * @returns {Promise<Publication>}
     */
    publishCamera(opts?: CameraOptions): Promise<Publication>;
    /**
     * Captures a microphone and publishes it.
     * @param {MicrophoneOptions} [opts]
     * @returns {Promise<Publication>}
     */
    publishMicrophone(opts?: MicrophoneOptions): Promise<Publication>;
    /**
     * Asks the person for a screen, window or tab and publishes it. When they
     * stop sharing (the browser's own button), it is unpublished.
     * @returns {Promise<Publication>}
     */
    publishScreen(): Promise<Publication>;
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
    publish(track: MediaStreamTrack, opts?: PublishOptions): Promise<Publication>;
    /**
     * Stops publishing: tells the node (waiting for its ack), removes the
     * track from the publisher connection and renegotiates. While the call
     * reconnects it is only dropped locally. Unpublishing twice does nothing.
     * @param {Publication} pub
     * @returns {Promise<void>}
     */
    unpublish(pub: Publication): Promise<void>;
    /**
     * Mutes or unmutes a publication: the track is disabled (silence or
     * black frames are sent, so nothing renegotiates) and the node tells
     * everyone ('trackmuted'). Before the node announced the track, or while
     * reconnecting, the state is kept and told once it is announced.
     * @param {Publication} pub
     * @param {boolean} muted
     * @returns {Promise<void>}
     */
    setMuted(pub: Publication, muted: boolean): Promise<void>;
    /**
     * Asks the node to forward these tracks (with autoSubscribe off, or
     * after unsubscribe). Made again after a reconnect.
     * @param {string[]} trackSids
     * @returns {Promise<void>}
     */
    subscribe(trackSids: string[]): Promise<void>;
    /**
     * Asks the node to stop forwarding these tracks. With autoSubscribe
     * this is made again after a reconnect (the node would otherwise
     * forward them again).
     * @param {string[]} trackSids
     * @returns {Promise<void>}
     */
    unsubscribe(trackSids: string[]): Promise<void>;
    /**
     * Sends a relay message: data, any JSON value, to the participants with
     * these identities (null or empty: everyone else), and resolves on the
     * node's ack. The node passes it on as it is and never stores it. One
     * identity not in the room and nobody gets it ('unknown_participant').
     * @param {string[] | null} to
     * @param {unknown} data
     * @returns {Promise<void>}
     */
    sendRelay(to: string[] | null, data: unknown): Promise<void>;
    /**
     * Leaves the call: the others see this participant leave (reason
     * "left"), the connection closes and nothing reconnects. Resolves when
     * the call has ended.
     * @returns {Promise<void>}
     */
    leave(): Promise<void>;
    /**
     * Ends the call without telling the node why (the others see reason
     * "disconnected") and does not reconnect. Resolves when it has ended.
     * @returns {Promise<void>}
     */
    close(): Promise<void>;
    /**
     * The call's safety number: six groups of five digits, the same on every
     * participant's screen if and only if nobody's identity key was swapped
     * on the way. People read it aloud or compare it over a channel they
     * trust; it changes when someone joins or leaves. "" when E2EE is off.
     * @returns {Promise<string>}
     */
    safetyNumber(): Promise<string>;
    /**
     * Exactly the people the safety number covers, this client included,
     * sorted by identity, each with whether this client marked their key
     * verified. Someone whose changed key was not accepted is not in it.
     * Empty when E2EE is off.
     * @returns {Promise<Covered[]>}
     */
    safetyNumberCovers(): Promise<Covered[]>;
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
    verificationCode(identity: string): Promise<string>;
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
    markVerified(identity: string, key: Uint8Array<ArrayBuffer>, verified: boolean): Promise<void>;
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
    acceptKeyChange(change: Pick<KeyChange, "identity" | "current">): Promise<void>;
    /**
     * The changed identity keys not accepted yet.
     * @returns {KeyChange[]}
     */
    pendingKeyChanges(): KeyChange[];
    /**
     * The participants whose identity key this browser's store could not
     * check (it failed to read or write): held out of the call's keys (they
     * get none from this client, and none of theirs is taken) until a later
     * check succeeds; a `keycheckfailed` event announced each.
     * @returns {KeyCheckFailure[]}
     */
    keyCheckFailures(): KeyCheckFailure[];
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
    admit(identity: string): Promise<void>;
    /**
     * Refuses a participant waiting to be admitted: they stay out here, and
     * everyone is told (another member may still admit them). Rejects as
     * {@link Call#admit} does.
     * @param {string} identity
     * @returns {Promise<void>}
     */
    refuse(identity: string): Promise<void>;
    /**
     * The participants with end-to-end encryption, as this client sees them:
     * waiting, refused or member, sorted by identity. Someone whose changed
     * key was not accepted is listed (the node shows them) but gets no key,
     * whatever their state, until {@link Call#acceptKeyChange}. Empty when
     * E2EE is off.
     * @returns {ParticipantAdmission[]}
     */
    admissions(): ParticipantAdmission[];
    /**
     * Whether this client is admitted (`admitted`; `refused` when a member
     * said no and none admitted it), whether every member's view of the call
     * agrees with its own (`agreed`: only then do its keys go out), whether
     * the roster alert is up (`alert`) and what differs (`mismatches`). With
     * E2EE off nothing waits: admitted and agreed.
     * @returns {RosterStatus}
     */
    rosterStatus(): RosterStatus;
    /**
     * What this client can say about a participant's media (this client's
     * own identity included), or null for an identity not in the call.
     * @param {string} identity
     * @returns {E2EEState | null}
     */
    e2eeState(identity: string): E2EEState | null;
    /**
     * Receive statistics of every remote track on the subscriber connection.
     * @returns {Promise<InboundTrackStats[]>}
     */
    inboundStats(): Promise<InboundTrackStats[]>;
    #private;
}
/**
 * The state of the call's connection to the node.
 */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "disconnected";
/**
 * What this client can say about a participant's media: `encrypted` (frames
 * decrypt with keys it received), `not-encrypted` (the participant does not
 * encrypt end to end: the node could read its media; never said of an identity
 * once announced with E2EE in this call), `cannot-decrypt`
 * (frames arrive but no key opens them), `waiting` (no frame or key yet).
 */
export type E2EEState = "encrypted" | "not-encrypted" | "cannot-decrypt" | "waiting";
/**
 * A published track, as the node describes it.
 */
export type TrackInfo = {
    /**
     * the node's track id (`TR_…`); the track id of the subscriber connection's msid
     */
    sid: string;
    /**
     * the owner's participant sid
     */
    participantSid: string;
    /**
     * the owner's identity, as the node says; a track whose identity is not that of the
     * participant listing it is refused (never given to the application: {@link Call#refusedTracks})
     */
    identity: string;
    /**
     * the id the owner gave the track ("camera", "microphone", "screen", …)
     */
    clientTrackId: string;
    kind: "audio" | "video";
    /**
     * MIME type, e.g. "video/VP8"
     */
    codec: string;
    /**
     * the owner's mute flag
     */
    muted: boolean;
    /**
     * the node's word that the track's frames are end-to-end encrypted; the SDK does not act on
     * it (whether frames are decrypted is its owner's {@link Participant}.e2ee)
     */
    e2ee: boolean;
};
/**
 * A participant in the room, as the node describes it.
 */
export type Participant = {
    /**
     * participant session id (`PA_…`), new on every join
     */
    sid: string;
    /**
     * from the access token; unique in the room
     */
    identity: string;
    /**
     * the identity key it announced ("" if none)
     */
    publicKey: string;
    /**
     * it encrypts its media end to end: it said so when it joined, in this announcement or an
     * earlier one of the same identity in this call. Once true for an identity, it stays true for the call's life,
     * whatever the node announces later (after a reconnect, or a leave and a rejoin): its tracks are decrypted
     * under its keys, and frames that do not decrypt are dropped, never played as they came (docs/E2EE.md)
     */
    e2ee: boolean;
    canPublish: boolean;
    canSubscribe: boolean;
    /**
     * its published tracks, by sid
     */
    tracks: Map<string, TrackInfo>;
};
/**
 * Tuning of reconnects. Reconnecting waits 250 ms before the first attempt
 * and doubles the wait up to 5 s, each wait jittered.
 */
export type ReconnectOptions = {
    /**
     * consecutive failed attempts before giving up; 0 or absent: no limit
     */
    maxAttempts?: number | undefined;
    /**
     * default 250
     */
    initialBackoffMs?: number | undefined;
    /**
     * default 5000
     */
    maxBackoffMs?: number | undefined;
};
/**
 * Options of {@link connect}.
 */
export type ConnectOptions = {
    /**
     * the access token, or a function returning a
     * fresh one, called on every connect and reconnect (tokens are checked at join only)
     */
    token: string | (() => string | Promise<string>);
    /**
     * when set, must equal the token's room (the node refuses the join otherwise)
     */
    room?: string | undefined;
    /**
     * end-to-end encryption: true (default) makes an E2EE instance, false
     * turns it off (everyone sees this participant marked "not encrypted"), an instance from `E2EE.create()`
     * is used as it is (to choose its options or set test hooks before joining)
     */
    e2ee?: boolean | E2EE | undefined;
    /**
     * "relay": only TURN-relayed candidates
     */
    iceTransportPolicy?: RTCIceTransportPolicy | undefined;
    /**
     * receive every track in the room, present and future (default true)
     */
    autoSubscribe?: boolean | undefined;
    /**
     * false: a dropped connection ends the call
     */
    reconnect?: false | ReconnectOptions | undefined;
    /**
     * decides about each participant waiting to be admitted (the `waiting`
     * event's detail, a {@link Newcomer}): "admit", "refuse", or "ask" to leave them waiting for
     * {@link Call#admit} / {@link Call#refuse} (the default, without this option). It is asked again for everyone
     * still waiting once this client is admitted itself. `() => "admit"` admits everyone: for bots and tests, never
     * for people. With an E2EE instance of the application's, this option (when given) replaces its own.
     */
    admission?: import("./e2ee/index.js").AdmissionPolicy | undefined;
    /**
     * how long the members' views of the call may disagree before
     * `rostermismatch` (default 5000)
     */
    rosterTimeoutMs?: number | undefined;
};
/**
 * Options of {@link Call#publishCamera}.
 */
export type CameraOptions = {
    /**
     * a camera from `navigator.mediaDevices.enumerateDevices()`
     */
    deviceId?: string | undefined;
    /**
     * ideal width in pixels
     */
    width?: number | undefined;
    /**
     * ideal height in pixels
     */
    height?: number | undefined;
    /**
     * ideal frames per second
     */
    frameRate?: number | undefined;
};
/**
 * Options of {@link Call#publishMicrophone}.
 */
export type MicrophoneOptions = {
    /**
     * a microphone from `navigator.mediaDevices.enumerateDevices()`
     */
    deviceId?: string | undefined;
    /**
     * default true
     */
    echoCancellation?: boolean | undefined;
    /**
     * default true
     */
    noiseSuppression?: boolean | undefined;
    /**
     * default true
     */
    autoGainControl?: boolean | undefined;
};
/**
 * Options of {@link Call#publish}.
 */
export type PublishOptions = {
    /**
     * what the track is ("camera", "microphone", "screen", or the application's
     * word); it becomes the track's client id, which the others see as `TrackInfo.clientTrackId`
     */
    source?: string | undefined;
    /**
     * stop the track when it is unpublished or the call ends (default false:
     * the application owns the track)
     */
    stopOnUnpublish?: boolean | undefined;
};
/**
 * A remote track's receive statistics (from the subscriber connection's
 * `inbound-rtp` stats) and, for an end-to-end encrypted track, its frame
 * counters.
 */
export type InboundTrackStats = {
    /**
     * the owner
     */
    identity: string;
    trackSid: string;
    kind: "audio" | "video";
    packetsReceived: number;
    bytesReceived: number;
    /**
     * video
     */
    framesReceived: number;
    /**
     * video
     */
    framesDecoded: number;
    /**
     * video, 0 until a frame decoded
     */
    frameWidth: number;
    /**
     * video
     */
    frameHeight: number;
    /**
     * audio, 0..1
     */
    audioLevel: number;
    /**
     * audio
     */
    totalAudioEnergy: number;
    /**
     * null: not decrypted here
     */
    e2ee: {
        decrypted: number;
        rejected: number;
        noKey: number;
    } | null;
};
/**
 * Detail of the 'track' event: the media of a subscribed track. After a
 * reconnect it fires again for the same sid with a new MediaStreamTrack.
 */
export type TrackEventDetail = {
    track: MediaStreamTrack;
    /**
     * the owner's stream (its id is the owner's participant sid)
     */
    stream: MediaStream;
    receiver: RTCRtpReceiver;
    info: TrackInfo;
    participant: Participant;
};
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
 */
export type CallEventName = "participantjoined" | "participantleft" | "trackpublished" | "trackunpublished" | "trackmuted" | "track" | "speaking" | "connectionstate" | "e2eestate" | "safetynumber" | "keychanged" | "keycheckfailed" | "waiting" | "admitted" | "refused" | "selfadmitted" | "selfrefused" | "rostermismatch" | "rosteragreed" | "relay" | "error";
/**
 * A participant waiting to be admitted: the `waiting` event's detail and
 * what the `admission` option is asked about: `identity`, `identityKey`
 * (the Ed25519 identity key it announced), `known` (this browser met this
 * identity with this key before this call) and `verified` (the user
 * marked that key verified, {@link Call#markVerified}).
 */
export type Newcomer = import("./e2ee/index.js").Newcomer;
/**
 * What the `admission` option decides: "admit", "refuse" or "ask".
 */
export type AdmissionDecision = import("./e2ee/index.js").AdmissionDecision;
/**
 * The `admission` option of {@link connect}: `(newcomer) => "admit" | "refuse" | "ask"`, or a promise of it.
 */
export type AdmissionPolicy = import("./e2ee/index.js").AdmissionPolicy;
/**
 * One participant with end-to-end encryption, as this client sees it:
 * what {@link Call#admissions} lists (`identity`, `identityKey`, `state`
 * "waiting", "member" or "refused", `by` who admitted or refused it, `root`
 * already in the call when this client joined).
 */
export type ParticipantAdmission = import("./e2ee/index.js").ParticipantAdmission;
/**
 * This client's standing in the call: {@link Call#rosterStatus}.
 */
export type RosterStatus = import("./e2ee/index.js").RosterStatus;
/**
 * One member whose view of the call differs from this client's: `member`,
 * `missing` (its view never came), else `onlyTheirs` (names only its view
 * lists) and `onlyMine` (names only this client's lists).
 */
export type RosterMismatch = import("./e2ee/index.js").RosterMismatch;
/**
 * The `rostermismatch` event's detail: `message` ("The server is showing
 * different people to different participants") and `mismatches`.
 */
export type RosterMismatchDetail = import("./e2ee/index.js").RosterMismatchDetail;
/**
 * A known person's new identity key, or someone new whose name looks like
 * a known person's: the `keychanged` event's detail.
 */
export type KeyChange = import("./e2ee/index.js").KeyChange;
/**
 * A participant whose identity key this browser's store could not check:
 * the `keycheckfailed` event's detail.
 */
export type KeyCheckFailure = import("./e2ee/index.js").KeyCheckFailure;
/**
 * One person the safety number covers, with whether this client marked
 * their key verified.
 */
export type Covered = import("./e2ee/index.js").Covered;
/**
 * Per-publication state of the session it is attached to.
 */
export type Attachment = {
    session: Session;
    transceiver: RTCRtpTransceiver;
    /**
     * an offer carrying it was answered
     */
    negotiated: boolean;
};
/**
 * A remote track as received on the subscriber connection, before and
 * after it is matched with its description.
 */
export type Received = {
    track: MediaStreamTrack;
    receiver: RTCRtpReceiver;
    stream: MediaStream;
    trackSid: string;
    participantSid: string;
    /**
     * given to E2EE under its owner (or decided not to be); until then, in an
     * encrypted call, E2EE drops its frames
     */
    attached: boolean;
};
export type SessionHooks = {
    /**
     * a room or media message, in order
     */
    message: (s: Session, m: any) => (Promise<void> | void);
    /**
     * a track on the subscriber connection
     */
    track: (s: Session, ev: RTCTrackEvent) => void;
    nextId: () => string;
};
export type Deferred<T> = {
    promise: Promise<T>;
    resolve: (v: T) => void;
    reject: (e: unknown) => void;
};
import { E2EE } from "./e2ee/index.js";
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
declare class Session {
    /**
     * @param {WebSocket} ws
     * @param {any} limits the node's limits from joined
     * @param {RTCConfiguration} config
     * @param {SessionHooks} hooks
     */
    constructor(ws: WebSocket, limits: any, config: RTCConfiguration, hooks: SessionHooks);
    /** @type {boolean} */ failed: boolean;
    /** @type {SottoError | null} */ cause: SottoError | null;
    /** The last fatal error message of the node's. @type {SottoError | null} */ fatal: SottoError | null;
    /** The reason of a going_away. @type {string} */ goingAway: string;
    /** @type {Map<string, {resolve: (v: unknown) => void, reject: (e: unknown) => void, timer?: ReturnType<typeof setTimeout>}>} */
    pending: Map<string, {
        resolve: (v: unknown) => void;
        reject: (e: unknown) => void;
        timer?: ReturnType<typeof setTimeout>;
    }>;
    /** Subscriber m-sections: mid → the participant and track sids of their msid. @type {Map<string, {participantSid: string, trackSid: string}>} */
    midMap: Map<string, {
        participantSid: string;
        trackSid: string;
    }>;
    /** Publisher negotiations run one after another on this chain. @type {Promise<void>} */
    negotiations: Promise<void>;
    /** A negotiation round not started yet. @type {Deferred<void> | null} */
    nextRound: Deferred<void> | null;
    /** Resolves with the cause once the session has failed. @type {Promise<SottoError>} */
    ended: Promise<SottoError>;
    ws: WebSocket;
    hooks: SessionHooks;
    pub: Peer;
    sub: Peer;
    /**
     * Takes over the WebSocket and handles what arrived since joined.
     * @param {string[]} backlog
     */
    start(backlog: string[]): void;
    /**
     * Queues a message for the node, keeping to its message rate.
     * @param {object} msg
     */
    send(msg: object): void;
    /**
     * Resolves once every queued message was handed to the WebSocket, or
     * after timeoutMs.
     * @param {number} timeoutMs
     * @returns {Promise<void>}
     */
    flushed(timeoutMs: number): Promise<void>;
    /**
     * Sends a request (msg carries its id) and resolves with its reply: an
     * ack (undefined) or, for an offer, the answer's SDP. Rejects with the
     * node's error, or on timeout, or when the session fails.
     * @param {{id: string, [k: string]: unknown}} msg
     * @param {number} [timeoutMs]
     * @returns {Promise<unknown>}
     */
    request(msg: {
        id: string;
        [k: string]: unknown;
    }, timeoutMs?: number): Promise<unknown>;
    /** What a request on this failed session rejects with. */
    requestError(): SottoError;
    /**
     * Why the session ended: a fatal error or going_away of the node's if it
     * sent one, the cause given to fail otherwise.
     * @returns {SottoError}
     */
    error(): SottoError;
    /**
     * Ends the session: its requests fail, its timers stop. Only the first
     * call does anything; teardown closes the connections.
     * @param {SottoError} cause
     */
    fail(cause: SottoError): void;
    /** Closes the WebSocket (gracefully) and both peer connections. */
    teardown(): void;
    /**
     * A peer connection changed state: "failed", or "disconnected" for too
     * long, ends the session (v1 has no ICE restart: the call reconnects).
     * @param {Peer} peer
     */
    peerState(peer: Peer): void;
    #private;
}
/**
 * One of the session's two peer connections, with the remote candidates
 * that arrived before its remote description and the local ones held back
 * until the description they belong to has been sent.
 */
declare class Peer {
    /**
     * @param {Session} session
     * @param {'publisher' | 'subscriber'} target
     * @param {RTCConfiguration} config
     */
    constructor(session: Session, target: "publisher" | "subscriber", config: RTCConfiguration);
    /** @type {boolean} */ remoteSet: boolean;
    /** @type {RTCIceCandidateInit[]} */ early: RTCIceCandidateInit[];
    /** @type {boolean} */ gateOpen: boolean;
    /** @type {(RTCIceCandidateInit | null)[]} */ held: (RTCIceCandidateInit | null)[];
    /** @type {ReturnType<typeof setTimeout> | undefined} */ disconnectedTimer: ReturnType<typeof setTimeout> | undefined;
    session: Session;
    target: "publisher" | "subscriber";
    pc: RTCPeerConnection;
    /** The description went out: send the candidates held for it. */
    release(): void;
    /**
     * Applies a remote description and the candidates that waited for it.
     * @param {RTCSessionDescriptionInit} desc
     */
    setRemote(desc: RTCSessionDescriptionInit): Promise<void>;
    /** @param {RTCIceCandidateInit} c */
    addRemoteCandidate(c: RTCIceCandidateInit): void;
    close(): void;
    #private;
}
export {};
