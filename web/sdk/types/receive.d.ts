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
 * What RemoteTracks needs of its call.
 * @typedef {object} RemoteHost
 * @property {() => Session | null} session the current session
 * @property {() => string} nextId
 * @property {() => Participant} self
 * @property {Map<string, Participant>} participants
 * @property {(sid: string) => Participant | undefined} participantBySid
 * @property {() => E2EE | null} e2ee
 * @property {(type: string, detail: unknown) => void} emit
 * @property {(s: Session) => boolean} micOn an unmuted microphone is published on s
 */
/** The tracks this client receives, and what it reports about them. */
export class RemoteTracks {
    /** @param {RemoteHost} host */
    constructor(host: RemoteHost);
    /** Remote tracks whose description has not arrived, by sid. @type {Map<string, Received>} */ held: Map<string, Received>;
    /** Remote receivers by their MediaStreamTrack id, for stats. @type {Map<string, {identity: string, sid: string}>} */
    receivers: Map<string, {
        identity: string;
        sid: string;
    }>;
    refusedTracks: number;
    levelsBusy: boolean;
    /** @type {Map<string, {speaking: boolean, loudAt: number}>} */ speaking: Map<string, {
        speaking: boolean;
        loudAt: number;
    }>;
    host: RemoteHost;
    /**
     * See Call#inboundStats.
     * @returns {Promise<InboundTrackStats[]>}
     */
    inboundStats(): Promise<InboundTrackStats[]>;
    /**
     * Answers the node's offer on the subscriber connection. A failure leaves
     * the connection in a state no later offer repairs: the session is
     * dropped and the call reconnects.
     * @param {Session} s
     * @param {any} m
     */
    answerSubscriber(s: Session, m: any): Promise<void>;
    /**
     * A track starts arriving on the subscriber connection. Its sid and
     * owner come from the offer's msid of its m-section (browsers give
     * received tracks ids of their own).
     * @param {Session} s
     * @param {RTCTrackEvent} ev
     */
    onTrack(s: Session, ev: RTCTrackEvent): void;
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
    attachReceiver(rec: Received, owner: Participant): void;
    /** @param {string} sid */
    releaseHeld(sid: string): void;
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
    refuse(owner: Participant, info: TrackInfo): boolean;
    /**
     * @param {Received} rec
     * @param {Participant} owner
     * @param {TrackInfo} info
     */
    deliver(rec: Received, owner: Participant, info: TrackInfo): void;
    /**
     * Reads audio levels (the publisher's media-source, the subscriber's
     * inbound-rtp) and reports who starts and stops speaking.
     */
    readLevels(): Promise<void>;
}
export type TrackInfo = import("./types.js").TrackInfo;
export type Participant = import("./types.js").Participant;
export type InboundTrackStats = import("./types.js").InboundTrackStats;
export type TrackEventDetail = import("./types.js").TrackEventDetail;
export type Session = import("./signal.js").Session;
export type E2EE = import("./e2ee/index.js").E2EE;
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
/**
 * What RemoteTracks needs of its call.
 */
export type RemoteHost = {
    /**
     * the current session
     */
    session: () => Session | null;
    nextId: () => string;
    self: () => Participant;
    participants: Map<string, Participant>;
    participantBySid: (sid: string) => Participant | undefined;
    e2ee: () => E2EE | null;
    emit: (type: string, detail: unknown) => void;
    /**
     * an unmuted microphone is published on s
     */
    micOn: (s: Session) => boolean;
};
