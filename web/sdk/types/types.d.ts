export type E2EE = import("./e2ee/index.js").E2EE;
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
    e2ee?: boolean | import("./index.js").E2EE | undefined;
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
    admission?: import("./e2ee/common.js").AdmissionPolicy | undefined;
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
