// @ts-check
/** @file A call's own tracks: publications, the publisher connection's transceivers and its offers. */

import { SottoError, deferred, errorText, rewriteMsid, sleep } from "./wire.js";

/**
 * @typedef {import("./types.js").TrackInfo} TrackInfo
 * @typedef {import("./types.js").Participant} Participant
 * @typedef {import("./types.js").PublishOptions} PublishOptions
 * @typedef {import("./signal.js").Session} Session
 * @typedef {import("./e2ee/index.js").E2EE} E2EE
 */

/** @template T @typedef {import("./wire.js").Deferred<T>} Deferred */

/** Bounds the wait for the answer to a publisher offer. */
const NEGOTIATION_TIMEOUT_MS = 20000;
const RATE_LIMITED_RETRY_MS = 250;

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
  constructor(track, id, source, ownsTrack) {
    /** The track sent. @type {MediaStreamTrack} */
    this.track = track;
    /** The client track id the others see (TrackInfo.clientTrackId). @type {string} */
    this.id = id;
    /** What the track is: "camera", "microphone", "screen", or the application's word. @type {string} */
    this.source = source;
    /** The node's description, null until it announced the track (again, after a reconnect). @type {TrackInfo | null} */
    this.info = null;
    /** The mute state this client asked for. @type {boolean} */
    this.muted = false;
    /** Unpublished, or the call ended. @type {boolean} */
    this.removed = false;
    /** @type {boolean} */
    this.ownsTrack = ownsTrack;
  }

  /** The node's track id, "" until it announced the track. @returns {string} */
  get sid() { return this.info?.sid ?? ""; }

  /** @returns {string} "audio" or "video" */
  get kind() { return this.track.kind; }
}

/**
 * Per-publication state of the session it is attached to.
 * @typedef {object} Attachment
 * @property {Session} session
 * @property {RTCRtpTransceiver} transceiver
 * @property {boolean} negotiated an offer carrying it was answered
 */

/** @type {WeakMap<Publication, Attachment>} */
export const attachments = new WeakMap();


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
  /** @type {Publication[]} */ pubs = [];
  /** One MediaStream names every published track's stream in the msid. */
  stream = new MediaStream();

  /** @param {LocalHost} host */
  constructor(host) {
    this.host = host;
  }

  /**
   * See Call#publish.
   * @param {MediaStreamTrack} track
   * @param {PublishOptions} opts
   * @returns {Promise<Publication>}
   */
  async publish(track, opts) {
    if (!(track instanceof MediaStreamTrack)) throw new TypeError("sotto: publish needs a MediaStreamTrack");
    if (track.readyState === "ended") throw new TypeError("sotto: publish: the track has ended");
    const s = this.host.liveSession();
    this.checkCanPublish(1);
    const source = opts.source || (track.kind === "audio" ? "microphone" : "camera");
    const pub = new Publication(track, this.uniqueTrackId(source), source, !!opts.stopOnUnpublish);
    this.pubs.push(pub);
    this.attach(s, pub);
    try {
      await this.negotiate(s);
    } catch (err) {
      if (this.removePublication(pub) && !s.failed) void this.negotiate(s).catch(() => {});
      throw err;
    }
    return pub;
  }

  /**
   * See Call#unpublish.
   * @param {Publication} pub
   * @returns {Promise<void>}
   */
  async unpublish(pub) {
    if (!(pub instanceof Publication) || !this.pubs.includes(pub)) return;
    const cur = this.host.session();
    const s = cur && !cur.failed ? cur : null;
    /** @type {unknown} */
    let failure = null;
    if (s && pub.sid) {
      try {
        await s.request({ type: "unpublish", id: this.host.nextId(), track_sid: pub.sid });
      } catch (err) {
        if (!(err instanceof SottoError && (err.code === "unknown_track" || err.code === "disconnected"))) failure = err;
      }
    }
    const att = this.removePublication(pub);
    if (att && !att.session.failed) {
      try {
        await this.negotiate(att.session);
      } catch (err) {
        if (!(err instanceof SottoError && err.code === "disconnected")) failure ??= err;
      }
    }
    if (failure) throw failure;
  }

  /**
   * See Call#setMuted.
   * @param {Publication} pub
   * @param {boolean} muted
   * @returns {Promise<void>}
   */
  async setMuted(pub, muted) {
    if (!(pub instanceof Publication)) throw new TypeError("sotto: setMuted needs a Publication");
    pub.muted = !!muted;
    pub.track.enabled = !muted;
    const s = this.host.session();
    if (!s || s.failed || !pub.sid || pub.removed) return;
    await s.request({ type: "mute", id: this.host.nextId(), track_sid: pub.sid, muted: !!muted });
  }

  /**
   * @param {number} adding
   */
  checkCanPublish(adding) {
    if (!this.host.self().canPublish) {
      throw new SottoError("permission_denied", "the access token does not grant publishing", { ref: "offer" });
    }
    const n = this.host.limits().tracksPerParticipant;
    if (n > 0 && this.pubs.length + adding > n) {
      throw new SottoError("too_many_tracks", `the server allows ${n} tracks per participant`, { ref: "offer" });
    }
  }

  /**
   * A client track id for source not used by another publication.
   * @param {string} source
   */
  uniqueTrackId(source) {
    const base = source.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 48) || "track";
    let id = base;
    for (let n = 2; this.pubs.some((p) => p.id === id); n++) id = `${base}-${n}`;
    return id;
  }

  /**
   * Adds pub's track to s's publisher connection.
   * @param {Session} s
   * @param {Publication} pub
   */
  attach(s, pub) {
    const transceiver = s.pub.pc.addTransceiver(pub.track, { direction: "sendonly", streams: [this.stream] });
    attachments.set(pub, { session: s, transceiver, negotiated: false });
    pub.track.enabled = !pub.muted;
    const e2ee = this.host.e2ee();
    if (e2ee) e2ee.attachSender(transceiver.sender);
  }

  /**
   * Drops pub from the call and its transceiver from the publisher
   * connection; returns the attachment it had (its session then needs a
   * renegotiation), or null.
   * @param {Publication} pub
   * @returns {Attachment | null}
   */
  removePublication(pub) {
    const i = this.pubs.indexOf(pub);
    if (i < 0) return null;
    this.pubs.splice(i, 1);
    pub.removed = true;
    pub.info = null;
    if (pub.ownsTrack) pub.track.stop();
    const att = attachments.get(pub) ?? null;
    attachments.delete(pub);
    if (att && !att.session.failed) {
      try { att.transceiver.stop(); } catch { /* the connection closed */ }
    }
    return att;
  }

  /**
   * Makes sure an offer goes out on s's publisher connection that carries
   * every change made so far, and resolves with its outcome. Changes made
   * while an offer is in flight go in the next one.
   * @param {Session} s
   * @returns {Promise<void>}
   */
  negotiate(s) {
    if (s.failed) return Promise.reject(s.requestError());
    if (s.nextRound) return s.nextRound.promise;
    /** @type {Deferred<void>} */
    const round = deferred();
    s.nextRound = round;
    s.negotiations = s.negotiations.then(async () => {
      if (s.nextRound === round) s.nextRound = null;
      if (s.failed) {
        round.reject(s.requestError());
        return;
      }
      try {
        await this.offerPublisher(s);
        round.resolve(undefined);
      } catch (err) {
        round.reject(err);
      }
    });
    return round.promise;
  }

  /**
   * One offer on the publisher connection, and its answer. A refusal rolls
   * the offer back and drops the publications it added.
   * @param {Session} s
   */
  async offerPublisher(s) {
    const pc = s.pub.pc;
    const inOffer = this.pubs.filter((p) => {
      const a = attachments.get(p);
      return a && a.session === s && !a.negotiated;
    });
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    /** @type {Map<string, string>} */
    const ids = new Map();
    for (const p of this.pubs) {
      const a = attachments.get(p);
      if (a && a.session === s && a.transceiver.mid != null) ids.set(a.transceiver.mid, p.id);
    }
    const sdp = rewriteMsid(offer.sdp ?? "", ids);
    const deadline = Date.now() + NEGOTIATION_TIMEOUT_MS;
    for (;;) {
      let answer;
      try {
        const reply = s.request({ type: "offer", id: this.host.nextId(), target: "publisher", sdp },
          Math.max(deadline - Date.now(), 1));
        s.pub.release();
        answer = await reply;
      } catch (err) {
        if (!(err instanceof SottoError)) throw err;
        if (err.code === "rate_limited" && Date.now() + RATE_LIMITED_RETRY_MS < deadline) {
          // Dropped unread: the same offer is still the one to send.
          await sleep(RATE_LIMITED_RETRY_MS);
          if (s.failed) throw s.requestError();
          continue;
        }
        if (err.code === "timeout") {
          s.fail(new SottoError("timeout", `no answer to the publisher offer within ${NEGOTIATION_TIMEOUT_MS / 1000} s`));
          throw s.requestError();
        }
        if (err.refId && !s.failed) {
          try { await pc.setLocalDescription({ type: "rollback" }); } catch { /* nothing to roll back */ }
          for (const p of inOffer) this.removePublication(p);
        }
        throw err;
      }
      try {
        await s.pub.setRemote({ type: "answer", sdp: String(answer) });
      } catch (err) {
        s.fail(new SottoError("negotiation_failed", `the server's publisher answer: ${errorText(err)}`, { cause: err }));
        throw s.requestError();
      }
      for (const p of inOffer) {
        const a = attachments.get(p);
        if (a && a.session === s) a.negotiated = true;
      }
      return;
    }
  }
}
