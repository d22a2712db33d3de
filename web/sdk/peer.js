// @ts-check
/** @file One of a session's two peer connections, with its candidate gates. */

/** @typedef {import("./signal.js").Session} Session */

/** Remote candidates kept until the description they belong to is set. */
const MAX_EARLY_CANDIDATES = 64;

/**
 * One of the session's two peer connections, with the remote candidates
 * that arrived before its remote description and the local ones held back
 * until the description they belong to has been sent.
 */
export class Peer {
  /** @type {boolean} */ remoteSet = false;
  /** @type {RTCIceCandidateInit[]} */ early = [];
  /** @type {boolean} */ gateOpen = false;
  /** @type {(RTCIceCandidateInit | null)[]} */ held = [];
  /** @type {ReturnType<typeof setTimeout> | undefined} */ disconnectedTimer;

  /**
   * @param {Session} session
   * @param {'publisher' | 'subscriber'} target
   * @param {RTCConfiguration} config
   */
  constructor(session, target, config) {
    this.session = session;
    this.target = target;
    this.pc = new RTCPeerConnection(config);
    this.pc.onicecandidate = (ev) => {
      // An empty candidate string is the old end-of-candidates marker;
      // null is the one the protocol uses.
      if (ev.candidate && !ev.candidate.candidate) return;
      this.#local(ev.candidate ? ev.candidate.toJSON() : null);
    };
    this.pc.onconnectionstatechange = () => session.peerState(this);
  }

  /** @param {RTCIceCandidateInit | null} c */
  #local(c) {
    if (!this.gateOpen) {
      this.held.push(c);
      return;
    }
    if (this.session.failed) return;
    try {
      this.session.send({ type: "candidate", target: this.target, candidate: c });
    } catch { /* the session failed: the reconnect gathers anew */ }
  }

  /** The description went out: send the candidates held for it. */
  release() {
    if (this.gateOpen) return;
    this.gateOpen = true;
    for (const c of this.held.splice(0)) this.#local(c);
  }

  /**
   * Applies a remote description and the candidates that waited for it.
   * @param {RTCSessionDescriptionInit} desc
   */
  async setRemote(desc) {
    await this.pc.setRemoteDescription(desc);
    this.remoteSet = true;
    for (const c of this.early.splice(0)) {
      this.pc.addIceCandidate(c).catch((err) => console.debug(`sotto: early ${this.target} candidate refused:`, err));
    }
  }

  /** @param {RTCIceCandidateInit} c */
  addRemoteCandidate(c) {
    if (!this.remoteSet) {
      if (this.early.length < MAX_EARLY_CANDIDATES) this.early.push(c);
      return;
    }
    this.pc.addIceCandidate(c).catch((err) => console.debug(`sotto: ${this.target} candidate refused:`, err));
  }

  close() {
    clearTimeout(this.disconnectedTimer);
    this.pc.onicecandidate = null;
    this.pc.onconnectionstatechange = null;
    this.pc.ontrack = null;
    this.pc.close();
  }
}
