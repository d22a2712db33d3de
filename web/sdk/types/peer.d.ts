/**
 * One of the session's two peer connections, with the remote candidates
 * that arrived before its remote description and the local ones held back
 * until the description they belong to has been sent.
 */
export class Peer {
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
    session: import("./signal.js").Session;
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
export type Session = import("./signal.js").Session;
