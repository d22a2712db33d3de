// @ts-check
/** @file The signaling connection: the WebSocket, the message rate, keepalives, and requests matched with their replies. */

import { Peer } from "./peer.js";
import { SottoError, closeError, errorText, goingAwayError, parseMessage, serverError } from "./wire.js";

/** @template T @typedef {import("./wire.js").Deferred<T>} Deferred */

/** Bounds one connection attempt: dial, join, and restoring what we had. */
export const JOIN_TIMEOUT_MS = 15000;
/** How often an application ping checks that the node still answers. */
const KEEPALIVE_MS = 15000;
/**
 * How long a peer connection may stay "disconnected" before the session is
 * given up and rebuilt: v1 has no ICE restart, and browsers take about half
 * a minute to declare "failed" on their own.
 */
const ICE_DISCONNECTED_GRACE_MS = 10000;

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
 * Opens the WebSocket, sends join, and resolves with the joined message
 * and whatever the node sent after it before a session took over.
 * @param {string} url
 * @param {Record<string, unknown>} join
 * @returns {Promise<{ws: WebSocket, joined: any, backlog: string[]}>}
 */
export function dial(url, join) {
  const ws = new WebSocket(url);
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
