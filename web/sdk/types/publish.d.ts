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
 * Per-publication state of the session it is attached to.
 * @typedef {object} Attachment
 * @property {Session} session
 * @property {RTCRtpTransceiver} transceiver
 * @property {boolean} negotiated an offer carrying it was answered
 */
/** @type {WeakMap<Publication, Attachment>} */
export const attachments: WeakMap<Publication, Attachment>;
/**
 * What LocalTracks needs of its call.
 * @typedef {object} LocalHost
 * @property {() => Session | null} session the current session
 * @property {() => Session} liveSession the current session, or throws while there is none
 * @property {() => string} nextId
 * @property {() => Participant} self
 * @property {() => {tracksPerParticipant: number}} limits
 * @property {() => E2EE | null} e2ee
 */
/** This client's publications and their negotiation on the publisher connection. */
export class LocalTracks {
    /** @param {LocalHost} host */
    constructor(host: LocalHost);
    /** @type {Publication[]} */ pubs: Publication[];
    /** One MediaStream names every published track's stream in the msid. */
    stream: MediaStream;
    host: LocalHost;
    /**
     * See Call#publish.
     * @param {MediaStreamTrack} track
     * @param {PublishOptions} opts
     * @returns {Promise<Publication>}
     */
    publish(track: MediaStreamTrack, opts: PublishOptions): Promise<Publication>;
    /**
     * See Call#unpublish.
     * @param {Publication} pub
     * @returns {Promise<void>}
     */
    unpublish(pub: Publication): Promise<void>;
    /**
     * See Call#setMuted.
     * @param {Publication} pub
     * @param {boolean} muted
     * @returns {Promise<void>}
     */
    setMuted(pub: Publication, muted: boolean): Promise<void>;
    /**
     * @param {number} adding
     */
    checkCanPublish(adding: number): void;
    /**
     * A client track id for source not used by another publication.
     * @param {string} source
     */
    uniqueTrackId(source: string): string;
    /**
     * Adds pub's track to s's publisher connection.
     * @param {Session} s
     * @param {Publication} pub
     */
    attach(s: Session, pub: Publication): void;
    /**
     * Drops pub from the call and its transceiver from the publisher
     * connection; returns the attachment it had (its session then needs a
     * renegotiation), or null.
     * @param {Publication} pub
     * @returns {Attachment | null}
     */
    removePublication(pub: Publication): Attachment | null;
    /**
     * Makes sure an offer goes out on s's publisher connection that carries
     * every change made so far, and resolves with its outcome. Changes made
     * while an offer is in flight go in the next one.
     * @param {Session} s
     * @returns {Promise<void>}
     */
    negotiate(s: Session): Promise<void>;
    /**
     * One offer on the publisher connection, and its answer. A refusal rolls
     * the offer back and drops the publications it added.
     * @param {Session} s
     */
    offerPublisher(s: Session): Promise<void>;
}
export type TrackInfo = import("./types.js").TrackInfo;
export type Participant = import("./types.js").Participant;
export type PublishOptions = import("./types.js").PublishOptions;
export type Session = import("./signal.js").Session;
export type E2EE = import("./e2ee/index.js").E2EE;
export type Deferred<T> = import("./wire.js").Deferred<T>;
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
 * What LocalTracks needs of its call.
 */
export type LocalHost = {
    /**
     * the current session
     */
    session: () => Session | null;
    /**
     * the current session, or throws while there is none
     */
    liveSession: () => Session;
    nextId: () => string;
    self: () => Participant;
    limits: () => {
        tracksPerParticipant: number;
    };
    e2ee: () => E2EE | null;
};
