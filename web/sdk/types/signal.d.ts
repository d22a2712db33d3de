/**
 * Opens the WebSocket, sends join, and resolves with the joined message
 * and whatever the node sent after it before a session took over.
 * @param {string} url
 * @param {Record<string, unknown>} join
 * @returns {Promise<{ws: WebSocket, joined: any, backlog: string[]}>}
 */
export function dial(url: string, join: Record<string, unknown>): Promise<{
    ws: WebSocket;
    joined: any;
    backlog: string[];
}>;
/** @template T @typedef {import("./wire.js").Deferred<T>} Deferred */
/** Bounds one connection attempt: dial, join, and restoring what we had. */
export const JOIN_TIMEOUT_MS: 15000;
/**
 * @typedef {object} SessionHooks
 * @property {(s: Session, m: any) => (Promise<void> | void)} message a room or media message, in order
 * @property {(s: Session, ev: RTCTrackEvent) => void} track a track on the subscriber connection
 * @property {() => string} nextId
 */
/**
 * One connection to the node: the WebSocket, the two peer connections
 * built for it, and the requests waiting for a reply on it. A reconnect
 * builds a new session; nothing of the old one is reused but the
 * application's tracks.
 */
export class Session {
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
export type Deferred<T> = import("./wire.js").Deferred<T>;
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
import { SottoError } from "./wire.js";
import { Peer } from "./peer.js";
