// @ts-check
/**
 * @file The E2EE side of the frames: the worker that transforms them, the
 * senders and receivers given to it, and its counters (index.js builds on it).
 */

/**
 * @typedef {import("./common.js").TransformMode} TransformMode
 * @typedef {import("./common.js").TrackStats} TrackStats
 * @typedef {import("./common.js").ParticipantState} ParticipantState
 * @typedef {import("./keys.js").KeySession} KeySession
 */

/**
 * The transform mode this browser supports, or null.
 * @returns {TransformMode|null}
 */
export function detectMode() {
  const g = /** @type {any} */ (globalThis);
  if (typeof g.RTCRtpScriptTransform === "function") {
    return "script";
  }
  if (typeof g.RTCRtpSender === "function" && "createEncodedStreams" in g.RTCRtpSender.prototype) {
    return "streams";
  }
  return null;
}

/**
 * Whether mode works in this browser.
 * @param {TransformMode} mode
 * @returns {boolean}
 */
export function supports(mode) {
  const g = /** @type {any} */ (globalThis);
  if (mode === "script") {
    return typeof g.RTCRtpScriptTransform === "function";
  }
  return typeof g.RTCRtpSender === "function" && "createEncodedStreams" in g.RTCRtpSender.prototype;
}

/**
 * The worker and the transforms of an E2EE: what E2EE (index.js) extends.
 */
export class FrameChannel extends EventTarget {
  /**
   * @param {Worker} worker
   * @param {TransformMode} mode
   */
  constructor(worker, mode) {
    super();
    /** @protected */
    this.worker = worker;
    /**
     * How frames reach the worker in this browser.
     * @readonly
     * @type {TransformMode}
     */
    this.transformMode = mode;
    /** @protected @type {KeySession|null} */
    this.session = null;
    /** @protected */
    this.closed = false;
    /** @protected a sender is attached: this participant publishes */
    this.publishing = false;
    /** @protected @type {Map<number, {resolve: () => void, reject: (e: Error) => void}>} */
    this.calls = new Map();
    /** @protected */
    this.nextCall = 1;
    /** @protected @type {Map<string, TrackStats>} */
    this.tracks = new Map();
    /** @protected */
    this.sent = { encrypted: 0, dropped: 0 };
    /** @protected @type {Map<string, ParticipantState>} */
    this.states = new Map();
    /** @protected @type {WeakSet<RTCRtpSender>} */
    this.senders = new WeakSet();
    /** @protected @type {WeakMap<RTCRtpReceiver, object>} the options object of a fallback receiver's streams */
    this.receivers = new WeakMap();
    /** @protected */
    this.nextTransform = 1;

    this.worker.onmessage = (e) => this.onWorkerMessage(e.data);
    this.worker.onerror = (e) => {
      e.preventDefault();
      this.failCalls(new Error(`e2ee: worker failed: ${e.message || "could not load"}`));
    };
  }

  /**
   * Extra RTCPeerConnection configuration fields this E2EE needs:
   * {encodedInsertableStreams: true} with the createEncodedStreams()
   * fallback, nothing with RTCRtpScriptTransform.
   * @returns {object}
   */
  rtcConfiguration() {
    return this.transformMode === "streams" ? { encodedInsertableStreams: true } : {};
  }

  /**
   * Encrypts every frame sender sends, under this participant's current
   * key; frames that cannot be encrypted (no key yet, a codec other than
   * Opus, VP8 and H.264) are dropped, never sent in clear. Attaching a
   * sender twice does nothing. The first attached sender makes this
   * participant a publisher: until then it sends no key (as Go's
   * StartPublishing, which the Go SDK's PublishSample calls); now its key
   * goes to every member, and every later change of membership rekeys.
   * @param {RTCRtpSender} sender
   */
  attachSender(sender) {
    if (!this.publishing) {
      this.publishing = true;
      this.session?.startPublishing().catch(() => {});
    }
    if (this.senders.has(sender)) {
      return;
    }
    this.senders.add(sender);
    this.attach(sender, { side: "send", kind: sender.track?.kind });
  }

  /**
   * Decrypts every frame receiver receives as participant from's (its
   * identity) and counts them under trackSid. Frames that fail are
   * dropped. Attaching a receiver again (a reused transceiver) moves it to
   * the new participant and track.
   * @param {RTCRtpReceiver} receiver
   * @param {string} from
   * @param {string} trackSid
   */
  attachReceiver(receiver, from, trackSid) {
    this.receive(receiver, { side: "receive", kind: receiver.track?.kind, from, trackSid, clear: false, hold: false });
  }

  /**
   * Lets every frame receiver receives through as it is: its track's owner
   * does not encrypt. A receiver left without a transform would not do:
   * with the createEncodedStreams() fallback its frames reach the decoder
   * only through streams someone reads, and when the node reuses its
   * transceiver for an encrypting owner's track, Chromium ignores a
   * transform set on a receiver that has received without one (the
   * ciphertext would go to the decoder), while it honours one replacing
   * another. A receiver reused from an encrypting owner stops decrypting.
   * @param {RTCRtpReceiver} receiver
   */
  attachClearReceiver(receiver) {
    this.receive(receiver, { side: "receive", kind: receiver.track?.kind, from: "", trackSid: "", clear: true, hold: false });
  }

  /**
   * Drops every frame receiver receives, until attachReceiver or
   * attachClearReceiver says whose they are: for a track whose owner is
   * not known yet. Set at once, before frames flow, it can be replaced
   * later (Chromium ignores a first transform set after frames flowed).
   * @param {RTCRtpReceiver} receiver
   */
  holdReceiver(receiver) {
    this.receive(receiver, { side: "receive", kind: receiver.track?.kind, from: "", trackSid: "", clear: false, hold: true });
  }

  /**
   * @param {RTCRtpReceiver} receiver
   * @param {object} options
   * @protected
   */
  receive(receiver, options) {
    const known = this.receivers.get(receiver);
    if (known && this.transformMode === "streams") {
      // The streams can be taken once; the worker's options follow.
      this.post({ op: "retarget", options: { ...known, ...options } });
      return;
    }
    const tid = this.nextTransform++;
    this.receivers.set(receiver, { tid });
    this.attach(receiver, { ...options, tid });
  }

  /**
   * @param {RTCRtpSender|RTCRtpReceiver} target
   * @param {object} options
   * @protected
   */
  attach(target, options) {
    const t = /** @type {any} */ (target);
    if (this.transformMode === "script") {
      const Transform = /** @type {any} */ (globalThis).RTCRtpScriptTransform;
      t.transform = new Transform(this.worker, options);
      return;
    }
    const { readable, writable } = t.createEncodedStreams();
    this.worker.postMessage({ op: "streams", readable, writable, options }, [readable, writable]);
  }

  /**
   * A remote track's frame counters (updated within about 100 ms).
   * @param {string} trackSid
   * @returns {TrackStats}
   */
  trackStats(trackSid) {
    const t = this.tracks.get(trackSid);
    return t ? { ...t } : { decrypted: 0, rejected: 0, noKey: 0, replayed: 0 };
  }

  /**
   * Frames this participant encrypted and sent, and dropped because they
   * could not be encrypted (an addition to the SDK's API, for diagnosis).
   * @returns {{encrypted: number, dropped: number}}
   */
  sendStats() {
    return { ...this.sent };
  }

  /**
   * Whether participant identity's frames decrypt here.
   * @param {string} identity
   * @returns {ParticipantState}
   */
  participantState(identity) {
    return this.states.get(identity) ?? "waiting";
  }

  /**
   * Sends an operation to the worker and resolves when it is done.
   * @param {Record<string, unknown>} msg
   * @returns {Promise<void>}
   * @protected
   */
  call(msg) {
    if (this.closed) {
      return Promise.reject(new Error("e2ee: closed"));
    }
    const id = this.nextCall++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      this.worker.postMessage({ ...msg, id });
    });
  }

  /**
   * Sends an operation to the worker, not waiting for it.
   * @param {Record<string, unknown>} msg
   * @protected
   */
  post(msg) {
    if (!this.closed) {
      this.worker.postMessage(msg);
    }
  }

  /**
   * @param {Error} err
   * @protected
   */
  failCalls(err) {
    for (const c of this.calls.values()) {
      c.reject(err);
    }
    this.calls.clear();
  }

  /**
   * @param {any} m
   * @protected
   */
  onWorkerMessage(m) {
    switch (m.op) {
      case "reply": {
        const c = this.calls.get(m.id);
        this.calls.delete(m.id);
        if (m.error === undefined) {
          c?.resolve();
        } else {
          c?.reject(new Error(m.error));
        }
        break;
      }
      case "inUse":
        this.session?.noteInUse(m.from, m.kid).catch(() => {});
        break;
      case "stats":
        for (const [sid, t] of Object.entries(m.tracks)) {
          this.tracks.set(sid, /** @type {TrackStats} */ (t));
        }
        this.sent = m.sent;
        break;
      case "state":
        if (this.participantState(m.identity) !== m.state) {
          this.states.set(m.identity, m.state);
          this.dispatchEvent(new CustomEvent("statechange", { detail: { identity: m.identity, state: m.state } }));
        }
        break;
      case "log":
        (m.level === "warn" ? console.warn : console.info)(m.msg);
        break;
    }
  }
}
