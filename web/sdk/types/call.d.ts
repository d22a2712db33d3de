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
export type ConnectionState = import("./types.js").ConnectionState;
export type E2EEState = import("./types.js").E2EEState;
export type TrackInfo = import("./types.js").TrackInfo;
export type Participant = import("./types.js").Participant;
export type ConnectOptions = import("./types.js").ConnectOptions;
export type CameraOptions = import("./types.js").CameraOptions;
export type MicrophoneOptions = import("./types.js").MicrophoneOptions;
export type PublishOptions = import("./types.js").PublishOptions;
export type InboundTrackStats = import("./types.js").InboundTrackStats;
export type ParticipantAdmission = import("./types.js").ParticipantAdmission;
export type RosterStatus = import("./types.js").RosterStatus;
export type KeyChange = import("./types.js").KeyChange;
export type KeyCheckFailure = import("./types.js").KeyCheckFailure;
export type Covered = import("./types.js").Covered;
import { SottoError } from "./wire.js";
import { E2EE } from "./e2ee/index.js";
import { Publication } from "./publish.js";
