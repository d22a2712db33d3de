// @ts-check
/**
 * @file The dedicated worker that encrypts and decrypts frames for one
 * E2EE (index.js). It runs a FrameCrypto (transform.js) and sits on every
 * attached sender and receiver:
 *
 *   - with RTCRtpScriptTransform, the browser hands each transform to the
 *     worker as an "rtctransform" event whose options say which side it is;
 *   - with the createEncodedStreams() fallback, the page transfers the
 *     streams here in a "streams" message.
 *
 * Keys arrive by postMessage from the page's key management. A frame that
 * fails is never passed on: it is dropped and counted per track
 * (decrypted, rejected, noKey), and the page hears the counters, each
 * participant's state and the KID its frames decrypt under.
 */

import { FrameCrypto, isNoKey } from "./transform.js";
import { Codec, FrameError, codecFromMime } from "./prefix.js";
import { SFrameError } from "./sframe.js";

/** Failing frames for this long with no success make a participant 'cannot-decrypt'. */
const CANNOT_DECRYPT_MS = 2000;
/** Counters go to the page at most this often. */
const STATS_INTERVAL_MS = 100;
/** A receiver asks the sender for a key frame at most this often. */
const KEY_FRAME_REQUEST_INTERVAL_MS = 1000;

/**
 * What this file uses of the worker's global scope.
 * @typedef {object} WorkerScope
 * @property {(msg: unknown) => void} postMessage
 * @property {((e: MessageEvent) => void)|null} onmessage
 * @property {((e: {transformer: Transformer}) => void)|null} [onrtctransform]
 */

/**
 * An encoded audio or video frame (RTCEncodedAudioFrame, RTCEncodedVideoFrame).
 * @typedef {object} EncodedFrame
 * @property {ArrayBuffer} data
 * @property {string} [type] video only: "key", "delta" or "empty"
 * @property {() => {mimeType?: string}} [getMetadata]
 */

/**
 * Where a transform sits, as the page describes it.
 * @typedef {object} TransformOptions
 * @property {"send"|"receive"} side
 * @property {string} [kind] "audio" or "video", when the page knows
 * @property {string} [from] receive side: the sending participant's identity
 * @property {string} [trackSid] receive side: the track, for its counters
 * @property {number} [tid] receive side: the page's number for the transform
 * @property {boolean} [clear] receive side: the track's owner does not encrypt; frames pass as they are
 * @property {boolean} [hold] receive side: the track's owner is not known yet; every frame is dropped
 */

/**
 * An RTCRtpScriptTransformer, or the streams of the fallback.
 * @typedef {object} Transformer
 * @property {ReadableStream<EncodedFrame>} readable
 * @property {WritableStream<EncodedFrame>} writable
 * @property {TransformOptions} options
 * @property {() => Promise<void>} [sendKeyFrameRequest]
 */

/** @typedef {{decrypted: number, rejected: number, noKey: number, replayed: number}} TrackCounters */

/**
 * @typedef {object} TrackState
 * @property {TrackCounters} counters
 * @property {boolean} needKeyFrame a video frame failed since the last key frame passed
 * @property {number} lastRequest when a key frame was last requested
 * @property {Set<string>} reported failure kinds already logged
 */

/** The worker's state and message handling. */
class TransformWorker {
  /** @param {WorkerScope} scope */
  constructor(scope) {
    this.scope = scope;
    /** @type {FrameCrypto|null} */
    this.fc = null;
    /** @type {Map<string, TrackState>} */
    this.tracks = new Map();
    /** @type {Set<string>} */
    this.dirty = new Set();
    /** @type {ReturnType<typeof setTimeout>|null} */
    this.flushTimer = null;
    /** @type {Map<string, {state: string, failingSince: number|null}>} */
    this.people = new Map();
    this.sent = { encrypted: 0, dropped: 0 };
    /** @type {Map<number, TransformOptions>} receive transforms' options, which "retarget" changes */
    this.targets = new Map();
    /** @type {Set<string>} */
    this.sendReported = new Set();
    scope.onmessage = (e) => this.onMessage(e.data);
    scope.onrtctransform = (e) => this.attach(e.transformer);
  }

  /** @param {any} m */
  async onMessage(m) {
    let error;
    try {
      switch (m.op) {
        case "init":
          this.fc = new FrameCrypto(m.suite, {
            onInUse: (from, kid) => this.scope.postMessage({ op: "inUse", from, kid }),
          });
          break;
        case "setSendKey":
          await this.crypto().setSendKey(m.kid, m.base);
          break;
        case "setReceiveKey":
          await this.crypto().setReceiveKey(m.from, m.kid, m.base);
          break;
        case "removeReceiveKey":
          this.crypto().removeReceiveKey(m.from, m.kid);
          break;
        case "removeParticipant":
          this.crypto().removeParticipant(m.from);
          if (this.people.delete(m.from)) {
            this.scope.postMessage({ op: "state", identity: m.from, state: "waiting" });
          }
          break;
        case "streams":
          this.attach({ readable: m.readable, writable: m.writable, options: m.options });
          break;
        case "retarget": {
          // A fallback receiver moved to another participant or track.
          const o = this.targets.get(m.options.tid);
          if (o) {
            Object.assign(o, m.options);
          }
          break;
        }
        default:
          throw new Error(`unknown operation ${JSON.stringify(m.op)}`);
      }
    } catch (err) {
      error = String(err);
    }
    if (m.id !== undefined) {
      this.scope.postMessage({ op: "reply", id: m.id, error });
    }
  }

  /** @returns {FrameCrypto} */
  crypto() {
    if (!this.fc) {
      throw new Error("e2ee worker: not initialised");
    }
    return this.fc;
  }

  /**
   * Puts the worker between an encoder and its packetizer (send) or a
   * depacketizer and its decoder (receive).
   * @param {Transformer} t
   */
  attach(t) {
    const o = t.options ?? { side: "send" };
    if (o.tid !== undefined) {
      this.targets.set(o.tid, o);
    }
    const transform = new TransformStream({
      transform: o.side === "receive" ? (frame, ctl) => this.decrypt(frame, ctl, o, t) : (frame, ctl) => this.encrypt(frame, ctl, o),
    });
    t.readable
      .pipeThrough(/** @type {TransformStream<EncodedFrame, EncodedFrame>} */ (/** @type {unknown} */ (transform)))
      .pipeTo(t.writable)
      .catch(() => {}) // the track ended
      .finally(() => {
        if (o.tid !== undefined) {
          this.targets.delete(o.tid);
        }
      });
  }

  /**
   * The codec of a frame: its MIME type where the browser gives it,
   * otherwise Opus for audio.
   * @param {EncodedFrame} frame
   * @param {TransformOptions} o
   * @returns {import("./prefix.js").CodecId}
   */
  codecOf(frame, o) {
    const mime = frame.getMetadata?.().mimeType;
    if (mime) {
      return codecFromMime(mime);
    }
    const kind = o.kind ?? ("type" in frame ? "video" : "audio");
    if (kind === "audio") {
      return Codec.OPUS;
    }
    throw new FrameError("unsupported-codec", "unsupported codec: a video frame without a MIME type");
  }

  /**
   * @param {EncodedFrame} frame
   * @param {TransformStreamDefaultController<EncodedFrame>} ctl
   * @param {TransformOptions} o
   */
  async encrypt(frame, ctl, o) {
    try {
      const out = await this.crypto().encryptFrame(this.codecOf(frame, o), new Uint8Array(frame.data));
      frame.data = /** @type {ArrayBuffer} */ (out.buffer);
      ctl.enqueue(frame);
      this.sent.encrypted++;
    } catch (err) {
      // Never sent in clear: dropped.
      this.sent.dropped++;
      const why = err instanceof Error ? err.name + ":" + (/** @type {any} */ (err).code ?? "") : "unknown";
      if (!this.sendReported.has(why)) {
        this.sendReported.add(why);
        this.scope.postMessage({ op: "log", level: "warn", msg: `e2ee: frame dropped on send: ${String(err)}` });
      }
    }
    this.markDirty("");
  }

  /**
   * @param {EncodedFrame} frame
   * @param {TransformStreamDefaultController<EncodedFrame>} ctl
   * @param {TransformOptions} o
   * @param {Transformer} t
   */
  async decrypt(frame, ctl, o, t) {
    if (o.hold) {
      return;
    }
    if (o.clear) {
      ctl.enqueue(frame);
      return;
    }
    const from = o.from ?? "";
    const sid = o.trackSid ?? "";
    const track = this.track(sid);
    try {
      const { data } = await this.crypto().decryptFrame(from, this.codecOf(frame, o), new Uint8Array(frame.data));
      frame.data = /** @type {ArrayBuffer} */ (data.buffer);
      ctl.enqueue(frame);
      track.counters.decrypted++;
      this.succeeded(from);
      this.maybeRequestKeyFrame(frame, track, t);
    } catch (err) {
      const noKey = isNoKey(err);
      const replay = err instanceof SFrameError && err.code === "replay";
      if (noKey) {
        track.counters.noKey++;
      } else {
        track.counters.rejected++;
      }
      if (replay) {
        // A copy of a frame that decrypted already: nothing was lost.
        track.counters.replayed++;
      } else {
        if (frame.type !== undefined) {
          track.needKeyFrame = true;
        }
        this.failed(from);
      }
      const why = noKey ? "noKey" : String(/** @type {any} */ (err)?.code ?? err);
      if (!track.reported.has(why)) {
        track.reported.add(why);
        this.scope.postMessage({ op: "log", level: "info", msg: `e2ee: track ${sid} of ${from}: frame dropped: ${String(err)}` });
      }
    }
    this.markDirty(sid);
  }

  /**
   * After frames were lost to decryption failures a decoder waits for a
   * key frame; ask the sender for one (where the browser allows).
   * @param {EncodedFrame} frame
   * @param {TrackState} track
   * @param {Transformer} t
   */
  maybeRequestKeyFrame(frame, track, t) {
    if (frame.type === "key") {
      track.needKeyFrame = false;
      return;
    }
    const now = performance.now();
    if (!track.needKeyFrame || !t.sendKeyFrameRequest || now - track.lastRequest < KEY_FRAME_REQUEST_INTERVAL_MS) {
      return;
    }
    track.lastRequest = now;
    t.sendKeyFrameRequest().catch(() => {});
  }

  /**
   * @param {string} sid
   * @returns {TrackState}
   */
  track(sid) {
    let t = this.tracks.get(sid);
    if (!t) {
      t = { counters: { decrypted: 0, rejected: 0, noKey: 0, replayed: 0 }, needKeyFrame: false, lastRequest: -Infinity, reported: new Set() };
      this.tracks.set(sid, t);
    }
    return t;
  }

  /** @param {string} identity */
  person(identity) {
    let p = this.people.get(identity);
    if (!p) {
      p = { state: "waiting", failingSince: null };
      this.people.set(identity, p);
    }
    return p;
  }

  /**
   * @param {string} identity
   * @param {string} state
   */
  setState(identity, state) {
    const p = this.person(identity);
    if (p.state !== state) {
      p.state = state;
      this.scope.postMessage({ op: "state", identity, state });
    }
  }

  /** @param {string} identity */
  succeeded(identity) {
    this.person(identity).failingSince = null;
    this.setState(identity, "encrypted");
  }

  /** @param {string} identity */
  failed(identity) {
    const p = this.person(identity);
    const now = performance.now();
    p.failingSince ??= now;
    if (now - p.failingSince >= CANNOT_DECRYPT_MS) {
      this.setState(identity, "cannot-decrypt");
    }
  }

  /** @param {string} sid */
  markDirty(sid) {
    this.dirty.add(sid);
    this.flushTimer ??= setTimeout(() => this.flush(), STATS_INTERVAL_MS);
  }

  flush() {
    this.flushTimer = null;
    /** @type {Record<string, TrackCounters>} */
    const tracks = {};
    for (const sid of this.dirty) {
      const t = this.tracks.get(sid);
      if (t) {
        tracks[sid] = { ...t.counters };
      }
    }
    this.dirty.clear();
    this.scope.postMessage({ op: "stats", tracks, sent: { ...this.sent } });
  }
}

new TransformWorker(/** @type {WorkerScope} */ (/** @type {unknown} */ (globalThis)));
