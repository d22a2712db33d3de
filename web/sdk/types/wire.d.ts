/**
 * Reports whether a call that ended with err cannot be joined again by
 * simply retrying (a bad or expired token, a full room, another tab took
 * over, …).
 * @param {unknown} err
 * @returns {boolean}
 */
export function isPermanent(err: unknown): boolean;
/**
 * The WebSocket URL to dial for what a caller was given.
 * @param {string | URL} raw
 * @returns {string}
 */
export function signalURL(raw: string | URL): string;
/**
 * @template T
 * @typedef {{promise: Promise<T>, resolve: (v: T) => void, reject: (e: unknown) => void}} Deferred
 */
/**
 * @param {unknown} data
 * @returns {any} a message object, or null for anything else
 */
export function parseMessage(data: unknown): any;
/**
 * @param {any} m an error message
 * @returns {SottoError}
 */
export function serverError(m: any): SottoError;
/**
 * @param {any} m a going_away message
 * @returns {SottoError}
 */
export function goingAwayError(m: any): SottoError;
/**
 * @param {CloseEvent} ev
 * @returns {SottoError}
 */
export function closeError(ev: CloseEvent): SottoError;
/** @returns {Participant} */
export function emptyParticipant(): Participant;
/**
 * @param {any} w a ParticipantInfo of the wire
 * @returns {Participant}
 */
export function participantFromWire(w: any): Participant;
/**
 * @param {any} t a TrackInfo of the wire
 * @returns {TrackInfo}
 */
export function trackFromWire(t: any): TrackInfo;
/**
 * Splits an SDP into its session part and its m-sections.
 * @param {string} sdp
 * @returns {string[][]} lines per part, the session part first
 */
export function sdpSections(sdp: string): string[][];
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
/**
 * @template T
 * @returns {Deferred<T>}
 */
export function deferred<T>(): Deferred<T>;
/** @param {number} ms */
export function sleep(ms: number): Promise<any>;
/**
 * @template T
 * @param {Promise<T>} p
 * @param {number} ms
 * @param {() => unknown} onTimeout makes the rejection
 * @returns {Promise<T>}
 */
export function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => unknown): Promise<T>;
/** @param {unknown} err */
export function errorText(err: unknown): string;
/** @file The protocol's constants, its errors, and helpers for its messages and SDPs. */
/**
 * @typedef {import("./types.js").Participant} Participant
 * @typedef {import("./types.js").TrackInfo} TrackInfo
 */
/** The signaling protocol version this SDK speaks. */
export const PROTOCOL_VERSION: 1;
/** The HTTP path of the node's WebSocket signaling endpoint. */
export const SIGNAL_PATH: "/v1/signal";
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
export type Deferred<T> = {
    promise: Promise<T>;
    resolve: (v: T) => void;
    reject: (e: unknown) => void;
};
export type Participant = import("./types.js").Participant;
export type TrackInfo = import("./types.js").TrackInfo;
