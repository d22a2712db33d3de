// @ts-check
/** @file A call's remote tracks: answering the subscriber offers, matching tracks with their owners, stats and speaking. */

import { SottoError, errorText, parseMsids } from "./wire.js";

/**
 * @typedef {import("./types.js").TrackInfo} TrackInfo
 * @typedef {import("./types.js").Participant} Participant
 * @typedef {import("./types.js").InboundTrackStats} InboundTrackStats
 * @typedef {import("./types.js").TrackEventDetail} TrackEventDetail
 * @typedef {import("./signal.js").Session} Session
 * @typedef {import("./e2ee/index.js").E2EE} E2EE
 */

/** An audio level (0..1) at or above this counts as speech. */
const SPEAKING_LEVEL = 0.02;
/** Speaking ends this long after the last loud sample. */
const SPEAKING_HOLD_MS = 800;

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
  /** Remote tracks whose description has not arrived, by sid. @type {Map<string, Received>} */ held = new Map();
  /** Remote receivers by their MediaStreamTrack id, for stats. @type {Map<string, {identity: string, sid: string}>} */
  receivers = new Map();
  refusedTracks = 0;
  levelsBusy = false;
  /** @type {Map<string, {speaking: boolean, loudAt: number}>} */ speaking = new Map();

  /** @param {RemoteHost} host */
  constructor(host) {
    this.host = host;
  }

  /**
   * See Call#inboundStats.
   * @returns {Promise<InboundTrackStats[]>}
   */
  async inboundStats() {
    const s = this.host.session();
    if (!s || s.failed) return [];
    const e2ee = this.host.e2ee();
    const report = await s.sub.pc.getStats();
    /** @type {InboundTrackStats[]} */
    const out = [];
    report.forEach((r) => {
      if (r.type !== "inbound-rtp") return;
      const byMid = r.mid != null ? s.midMap.get(String(r.mid)) : undefined;
      const byTrack = r.trackIdentifier ? this.receivers.get(r.trackIdentifier) : undefined;
      const trackSid = byMid?.trackSid ?? byTrack?.sid;
      if (!trackSid) return;
      const owner = this.host.participantBySid(byMid?.participantSid ?? "") ??
        (byTrack ? this.host.participants.get(byTrack.identity) : undefined);
      if (!owner || !owner.tracks.has(trackSid)) return;
      out.push({
        identity: owner.identity,
        trackSid,
        kind: r.kind,
        packetsReceived: r.packetsReceived ?? 0,
        bytesReceived: r.bytesReceived ?? 0,
        framesReceived: r.framesReceived ?? 0,
        framesDecoded: r.framesDecoded ?? 0,
        frameWidth: r.frameWidth ?? 0,
        frameHeight: r.frameHeight ?? 0,
        audioLevel: r.audioLevel ?? 0,
        totalAudioEnergy: r.totalAudioEnergy ?? 0,
        e2ee: e2ee && owner.e2ee ? e2ee.trackStats(trackSid) : null,
      });
    });
    return out;
  }

  /**
   * Answers the node's offer on the subscriber connection. A failure leaves
   * the connection in a state no later offer repairs: the session is
   * dropped and the call reconnects.
   * @param {Session} s
   * @param {any} m
   */
  async answerSubscriber(s, m) {
    const sdp = String(m.sdp ?? "");
    for (const [mid, ids] of parseMsids(sdp)) s.midMap.set(mid, ids);
    try {
      await s.sub.setRemote({ type: "offer", sdp });
      const answer = await s.sub.pc.createAnswer();
      await s.sub.pc.setLocalDescription(answer);
      if (s.failed) return;
      s.request({ type: "answer", id: this.host.nextId(), target: "subscriber", sdp: answer.sdp }).catch((err) => {
        if (err instanceof SottoError && err.code !== "disconnected") this.host.emit("error", { error: err });
      });
      // Local candidates go out only after the answer they belong to.
      s.sub.release();
    } catch (err) {
      s.fail(new SottoError("negotiation_failed", `the server's subscriber offer: ${errorText(err)}`, { cause: err }));
    }
  }

  /**
   * A track starts arriving on the subscriber connection. Its sid and
   * owner come from the offer's msid of its m-section (browsers give
   * received tracks ids of their own).
   * @param {Session} s
   * @param {RTCTrackEvent} ev
   */
  onTrack(s, ev) {
    if (s !== this.host.session() || s.failed) return;
    const mid = ev.transceiver?.mid;
    const ids = mid != null ? s.midMap.get(mid) : undefined;
    /** @type {Received} */
    const rec = {
      track: ev.track,
      receiver: ev.receiver,
      stream: ev.streams[0] ?? new MediaStream([ev.track]),
      trackSid: ids?.trackSid ?? ev.track.id,
      participantSid: ids?.participantSid ?? ev.streams[0]?.id ?? "",
      attached: false,
    };
    const owner = this.host.participantBySid(rec.participantSid);
    const info = owner?.tracks.get(rec.trackSid);
    if (owner && info && this.refuse(owner, info)) return;
    // An unknown owner's frames are dropped, the receiver not left bare:
    // Chromium ignores a first transform set once frames have flowed.
    if (owner) this.attachReceiver(rec, owner);
    else this.host.e2ee()?.holdReceiver(rec.receiver);
    if (!owner || !info) {
      this.held.set(rec.trackSid, rec);
      return;
    }
    this.deliver(rec, owner, info);
  }

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
  attachReceiver(rec, owner) {
    if (rec.attached) return;
    rec.attached = true;
    const e2ee = this.host.e2ee();
    if (!e2ee) return;
    if (owner.e2ee) e2ee.attachReceiver(rec.receiver, owner.identity, rec.trackSid);
    else e2ee.attachClearReceiver(rec.receiver);
  }

  /** @param {string} sid */
  releaseHeld(sid) {
    const rec = this.held.get(sid);
    if (!rec) return;
    const owner = this.host.participantBySid(rec.participantSid);
    const info = owner?.tracks.get(sid);
    if (!owner || !info) return;
    this.held.delete(sid);
    // Refused, a receiver given to E2EE early stays there: its frames
    // are decrypted under its owner's keys, or dropped, and nobody plays
    // them.
    if (this.refuse(owner, info)) return;
    this.attachReceiver(rec, owner);
    this.deliver(rec, owner, info);
  }

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
  refuse(owner, info) {
    if (info.identity === owner.identity) return false;
    this.refusedTracks++;
    console.warn(`sotto: track ${info.sid} refused: its identity ${JSON.stringify(info.identity)} is not its owner's, ` +
      `${JSON.stringify(owner.identity)} (${owner.sid}): the server may be presenting one participant's media as another's`);
    return true;
  }

  /**
   * @param {Received} rec
   * @param {Participant} owner
   * @param {TrackInfo} info
   */
  deliver(rec, owner, info) {
    this.receivers.set(rec.track.id, { identity: owner.identity, sid: info.sid });
    /** @type {TrackEventDetail} */
    const detail = { track: rec.track, stream: rec.stream, receiver: rec.receiver, info, participant: owner };
    this.host.emit("track", detail);
  }

  /**
   * Reads audio levels (the publisher's media-source, the subscriber's
   * inbound-rtp) and reports who starts and stops speaking.
   */
  async readLevels() {
    const s = this.host.session();
    if (!s || s.failed || this.levelsBusy) return;
    this.levelsBusy = true;
    try {
      /** @type {Map<string, number>} */
      const levels = new Map();
      const micOn = this.host.micOn(s);
      if (micOn && this.host.self().identity) {
        const pubStats = await s.pub.pc.getStats();
        pubStats.forEach((r) => {
          if (r.type === "media-source" && r.kind === "audio" && typeof r.audioLevel === "number") {
            levels.set(this.host.self().identity, Math.max(levels.get(this.host.self().identity) ?? 0, r.audioLevel));
          }
        });
      }
      const subStats = await s.sub.pc.getStats();
      subStats.forEach((r) => {
        if (r.type !== "inbound-rtp" || r.kind !== "audio" || typeof r.audioLevel !== "number") return;
        const rcv = r.trackIdentifier ? this.receivers.get(r.trackIdentifier) : undefined;
        const ids = r.mid != null ? s.midMap.get(String(r.mid)) : undefined;
        const identity = rcv?.identity ?? this.host.participantBySid(ids?.participantSid ?? "")?.identity;
        if (identity) levels.set(identity, Math.max(levels.get(identity) ?? 0, r.audioLevel));
      });
      if (s !== this.host.session()) return;
      const now = Date.now();
      const everyone = [this.host.self().identity, ...this.host.participants.keys()];
      for (const identity of everyone) {
        const level = levels.get(identity) ?? 0;
        let st = this.speaking.get(identity);
        if (!st) {
          st = { speaking: false, loudAt: 0 };
          this.speaking.set(identity, st);
        }
        if (level >= SPEAKING_LEVEL) st.loudAt = now;
        const speaking = now - st.loudAt < SPEAKING_HOLD_MS;
        if (speaking !== st.speaking) {
          st.speaking = speaking;
          this.host.emit("speaking", { identity, speaking, level });
        }
      }
    } catch {
      // A connection closing under getStats: the next round sees it.
    } finally {
      this.levelsBusy = false;
    }
  }
}
