// @ts-check
/** @file The protocol's constants, its errors, and helpers for its messages and SDPs. */

/**
 * @typedef {import("./types.js").Participant} Participant
 * @typedef {import("./types.js").TrackInfo} TrackInfo
 */

/** The signaling protocol version this SDK speaks. */
export const PROTOCOL_VERSION = 1;

/** The HTTP path of the node's WebSocket signaling endpoint. */
export const SIGNAL_PATH = "/v1/signal";

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
 * @template T
 * @typedef {{promise: Promise<T>, resolve: (v: T) => void, reject: (e: unknown) => void}} Deferred
 */

/**
 * @param {unknown} data
 * @returns {any} a message object, or null for anything else
 */
export function parseMessage(data) {
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
export function serverError(m) {
  return new SottoError(String(m.code ?? "internal"), String(m.message || `server error ${m.code}`), {
    fatal: !!m.fatal, ref: m.ref ?? "", refId: m.ref_id ?? "",
  });
}

/**
 * @param {any} m a going_away message
 * @returns {SottoError}
 */
export function goingAwayError(m) {
  if (m.reason === "replaced") {
    return new SottoError("replaced", "the same name joined this room from another tab or device", { fatal: true });
  }
  return new SottoError("shutdown", String(m.message || "the server is shutting down"));
}

/**
 * @param {CloseEvent} ev
 * @returns {SottoError}
 */
export function closeError(ev) {
  const why = ev.reason ? `: ${ev.reason}` : "";
  return new SottoError("connection_lost", `the connection to the server closed (code ${ev.code}${why})`);
}

/** @returns {Participant} */
export function emptyParticipant() {
  return { sid: "", identity: "", publicKey: "", e2ee: false, canPublish: false, canSubscribe: false, tracks: new Map() };
}

/**
 * @param {any} w a ParticipantInfo of the wire
 * @returns {Participant}
 */
export function participantFromWire(w) {
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
export function trackFromWire(t) {
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
export function sdpSections(sdp) {
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
export function deferred() {
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
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * @template T
 * @param {Promise<T>} p
 * @param {number} ms
 * @param {() => unknown} onTimeout makes the rejection
 * @returns {Promise<T>}
 */
export function withTimeout(p, ms, onTimeout) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let t;
  const timeout = new Promise((_, reject) => { t = setTimeout(() => reject(onTimeout()), ms); });
  return /** @type {Promise<T>} */ (Promise.race([p, timeout])).finally(() => clearTimeout(t));
}

/** @param {unknown} err */
export function errorText(err) {
  return err instanceof Error ? err.message : String(err);
}
