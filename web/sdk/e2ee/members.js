// @ts-check
/** @file Key management: admission by members and roster views (Go's members.go). */

import { equalBytes, parseAnnouncement } from "./identity.js";
import { admit, checkAdmission, compareBytes, parseAdmission } from "./admission.js";
import { diffRosters, parseRoster, signRoster } from "./roster.js";
import { KeyReceiver } from "./keyrecv.js";
import { MAX_SENDER_RECORDS, utf8, KEY_MESSAGE_VERSION, MAX_PENDING_ADMISSIONS, MAX_VIEW_SLACK, MAX_VIEW_ENTRIES, NotAdmittedError, NotWaitingError, compareNames, pairKey, admittedOf, sameEntries, sameMismatches, hex } from "./keymsg.js";

/**
 * @typedef {import("./keymsg.js").Peer} Peer
 * @typedef {import("./keymsg.js").KeyMessage} KeyMessage
 * @typedef {import("./keymsg.js").RosterMismatch} RosterMismatch
 * @typedef {import("./keymsg.js").ParticipantStatus} ParticipantStatus
 * @typedef {import("./keymsg.js").RosterStatus} RosterStatus
 * @typedef {import("./keymsg.js").DecodedMessage} DecodedMessage
 * @typedef {import("./keymsg.js").Candidate} Candidate
 * @typedef {import("./keymsg.js").AdmissionData} AdmissionData
 */

/**
 * One participant's key management in a call: its own sending key (with
 * the next one while recipients acknowledge it) and the keys of every
 * other participant, as Go's e2ee.Session.
 */
export class KeySession extends KeyReceiver {
  // ---- Admission by members and roster views (Go's members.go) ----------

  /**
   * Tells a session with admission that this participant joined the call
   * again (after a reconnect): it is waiting again, and the next
   * setMembers lists its roots: those of them that were members here
   * before, or, if none of them is listed, all (Go's Rejoin). What it
   * remembers (who was admitted, the highest sequence numbers seen)
   * stays. Without admission, it does nothing.
   * @returns {Promise<void>}
   */
  rejoin() {
    return this.run(async () => {
      const a = this.adm;
      if (!a || this.closed) {
        return;
      }
      a.joined = false;
      a.admitted = false;
      a.refused = "";
      a.rejoined = true;
      // Views are awaited afresh: the timer starts again once admitted,
      // and a raised alert ends (it rises again if views still disagree
      // a roster timeout after the new admission).
      a.since = null;
      this.stopRosterTimer();
      if (a.alert) {
        a.alert = false;
        a.alerted = null;
        this.emit("rosteragreed");
      }
      a.cands.clear();
      a.pending = [];
      a.lastView = null;
      a.viewMsg = null;
      await this.sync();
    });
  }

  /**
   * Takes the node's list of participants in admission mode (Go's
   * listLocked): candidates, the first list's roots, newcomers waiting.
   * @param {Peer[]} peers
   * @returns {Promise<boolean>} whether the members changed
   * @protected
   * @override
   */
  async list(peers) {
    const a = /** @type {AdmissionData} */ (this.adm);
    /** @type {Map<string, Peer>} */
    const want = new Map();
    for (const m of peers) {
      if (m.identity !== this.self) {
        want.set(m.identity, m);
      }
    }
    const first = !a.joined;
    a.joined = true;
    if (first) {
      a.joinedAt = a.now();
    }
    for (const [id, c] of [...a.cands]) {
      const m = want.get(id);
      if (!m || m.publicKey !== c.peer.publicKey) {
        a.cands.delete(id);
      } else {
        c.peer.held = m.held === true;
      }
    }
    /** @type {string[]} */
    const newcomers = [];
    for (const [id, m] of want) {
      if (a.cands.has(id)) {
        continue;
      }
      let ann;
      try {
        ann = await parseAnnouncement(m.publicKey);
      } catch (err) {
        this.log.warn("e2ee: participant without a usable public key is left out", id, String(err));
        continue;
      }
      // After a rejoin only those who were members before are roots: a
      // node that makes everyone reconnect cannot slip in a root of its
      // own.
      const root = first && (!a.rejoined || a.met.has(pairKey(id, ann.identity)));
      a.cands.set(id, { peer: m, ann, state: "waiting", by: "", root, view: null });
      newcomers.push(id);
    }
    if (first && a.rejoined && !newcomers.some((id) => a.cands.get(id)?.root)) {
      // Nobody met before is here: roots as on a first join, the same
      // trust as then.
      for (const id of newcomers) {
        /** @type {Candidate} */ (a.cands.get(id)).root = true;
      }
    }
    newcomers.sort(compareNames);
    if (first && a.cands.size === 0) {
      // Alone in the call: nobody can admit this participant, and nobody
      // else is there to admit.
      this.selfAdmitted("");
    }
    for (const id of newcomers) {
      const c = /** @type {Candidate} */ (a.cands.get(id));
      if (a.admitted && a.remembered.has(pairKey(id, c.ann.identity))) {
        // Admitted before in this session: admitted again.
        try {
          this.sendMessage(null, await this.admitCandidate(c));
          continue;
        } catch (err) {
          this.log.error("e2ee: cannot admit a participant again", id, String(err));
        }
      }
      if (c.root) {
        // Present already: a member once its view arrives, or shown as
        // waiting when this participant is admitted.
        continue;
      }
      this.emit("waiting", { identity: id, identityKey: c.ann.identity });
      if (a.admitted && a.viewMsg !== null) {
        // A newcomer learns who this member counts as admitted.
        this.sendMessage([id], a.viewMsg);
      }
    }
    if (!a.admitted && a.cands.size === 0 && !first) {
      // Everyone who could have admitted this participant left.
      this.selfAdmitted("");
    }
    const changed = await this.sync();
    await this.drainEarly();
    return changed;
  }

  /**
   * Makes c a member on this session's own authority and returns the
   * signed admission to send to everyone (Go's admitLocked).
   * @param {Candidate} c
   * @returns {Promise<KeyMessage>}
   * @protected
   */
  async admitCandidate(c) {
    const a = /** @type {AdmissionData} */ (this.adm);
    const admission = await admit(this.identity, {
      room: this.room,
      admitter: this.self,
      admitterKey: this.selfPub,
      admitted: c.peer.identity,
      admittedKey: c.ann.identity,
      time: Math.floor(a.now()),
    });
    this.makeMember(c, this.self);
    return { sotto_e2ee: KEY_MESSAGE_VERSION, type: "admit", kid: 0, admission };
  }

  /**
   * Makes this participant a member (by: who admitted it, "" if nobody
   * could) and shows it everyone still waiting, whom it may now admit
   * (Go's selfAdmittedLocked).
   * @param {string} by
   * @protected
   */
  selfAdmitted(by) {
    const a = /** @type {AdmissionData} */ (this.adm);
    a.admitted = true;
    a.refused = "";
    this.emit("selfadmitted", { by });
    const ids = [...a.cands].filter(([, c]) => c.state !== "member").map(([id]) => id);
    ids.sort(compareNames);
    for (const id of ids) {
      this.emit("waiting", { identity: id, identityKey: /** @type {Candidate} */ (a.cands.get(id)).ann.identity });
    }
  }

  /**
   * Whether the member named identity is remembered: this session admitted
   * it, or took its admission from a remembered member (Go's chained).
   * @param {string} identity
   * @returns {boolean}
   * @protected
   */
  chained(identity) {
    const a = /** @type {AdmissionData} */ (this.adm);
    const c = a.cands.get(identity);
    return c !== undefined && a.remembered.has(pairKey(identity, c.ann.identity));
  }

  /**
   * @param {Candidate} c
   * @param {string} by
   * @protected
   */
  makeMember(c, by) {
    const a = /** @type {AdmissionData} */ (this.adm);
    c.state = "member";
    c.by = by;
    const pk = pairKey(c.peer.identity, c.ann.identity);
    // Re-admitted on return only if this session admitted it, or took the
    // admission of one it admitted on that same footing: never one whose
    // trust comes from a root (the node chose the roots).
    if ((by === this.self || (by !== "" && this.chained(by))) && a.remembered.size < MAX_SENDER_RECORDS) {
      a.remembered.add(pk);
    }
    if (a.met.size < MAX_SENDER_RECORDS) {
      a.met.add(pk);
    }
    this.emit("admitted", { identity: c.peer.identity, identityKey: c.ann.identity, by });
  }

  /**
   * The candidate identity names if admit or refuse may act on it, or
   * throws what they reject with.
   * @param {string} identity
   * @returns {Candidate}
   * @protected
   */
  waitingCandidate(identity) {
    const a = this.adm;
    if (!a) {
      throw new Error("e2ee: admission is off (the admission option)");
    }
    if (!a.admitted) {
      throw new NotAdmittedError();
    }
    const c = a.cands.get(identity);
    if (!c || c.state === "member") {
      throw new NotWaitingError(identity);
    }
    return c;
  }

  /**
   * Admits a waiting (or refused) participant (Go's Admit): it becomes a
   * member here, and a signed admission goes to everyone, which makes it a
   * member for every member that counts this participant as one. Rejects
   * with NotAdmittedError while this participant is not a member itself,
   * and NotWaitingError for an identity not waiting (unknown, gone, or a
   * member already).
   * @param {string} identity
   * @returns {Promise<void>}
   */
  admit(identity) {
    const id = String(identity);
    return this.run(async () => {
      const c = this.waitingCandidate(id);
      this.sendMessage(null, await this.admitCandidate(c));
      await this.sync();
      await this.drainEarly();
    });
  }

  /**
   * Refuses a waiting participant (Go's Refuse): it stays out here, and
   * everyone is told this member refused it (unsigned: a node could forge
   * or drop that, which shows a participant as refused or waiting, never
   * admits one). Rejects as admit does.
   * @param {string} identity
   * @returns {Promise<void>}
   */
  refuse(identity) {
    const id = String(identity);
    return this.run(() => {
      const c = this.waitingCandidate(id);
      c.state = "refused";
      c.by = this.self;
      this.emit("refused", { identity: id, identityKey: c.ann.identity, by: this.self });
      this.sendMessage(null, { sotto_e2ee: KEY_MESSAGE_VERSION, type: "refuse", kid: 0, identity: id });
    });
  }

  /**
   * The participants the node lists, as this session sees them, sorted by
   * identity (Go's Participants); empty without admission.
   * @returns {ParticipantStatus[]}
   */
  participants() {
    if (!this.adm) {
      return [];
    }
    const ps = [...this.adm.cands.values()].map((c) => ({
      identity: c.peer.identity,
      identityKey: c.ann.identity.slice(),
      state: c.state,
      by: c.by,
      root: c.root,
    }));
    return ps.sort((x, y) => compareNames(x.identity, y.identity));
  }

  /**
   * This session's standing (Go's RosterStatus). Without admission,
   * admitted and agreed.
   * @returns {RosterStatus}
   */
  rosterStatus() {
    const a = this.adm;
    if (!a) {
      return { admitted: true, refused: false, agreed: true, alert: false, mismatches: [] };
    }
    return {
      admitted: a.admitted,
      refused: !a.admitted && a.refused !== "",
      agreed: a.admitted && !a.hold,
      alert: a.alert,
      mismatches: this.mismatches(),
    };
  }

  /**
   * Takes an "admit" message (Go's handleAdmission).
   * @param {string} from
   * @param {DecodedMessage} m
   * @protected
   * @override
   */
  async handleAdmission(from, m) {
    const a = /** @type {AdmissionData} */ (this.adm);
    if (this.alreadyAdmitted(m.admission)) {
      // Every member admits a newcomer it sees waiting, so most
      // admissions come after one already counted: skip their signature
      // checks (Go's alreadyAdmitted).
      return;
    }
    let adm;
    try {
      adm = await parseAdmission(m.admission);
      checkAdmission(adm, this.room, a.now(), a.maxAgeMs);
    } catch (err) {
      throw this.bad(from, String(err));
    }
    if (this.closed) {
      return;
    }
    if (a.pending.length >= MAX_PENDING_ADMISSIONS) {
      a.pending.shift();
    }
    a.pending.push(adm);
    await this.sync();
    await this.drainEarly();
  }

  /**
   * Whether an admission, read without checking it, names someone this
   * session counts as a member already, with the key named: taking it
   * could change nothing (Go's alreadyAdmitted).
   * @param {string} s
   * @returns {boolean}
   * @protected
   */
  alreadyAdmitted(s) {
    const a = /** @type {AdmissionData} */ (this.adm);
    const adm = admittedOf(s);
    if (!adm) {
      return false;
    }
    if (adm.name === this.self) {
      return a.admitted && equalBytes(adm.key, this.selfPub);
    }
    const c = a.cands.get(adm.name);
    return !!c && c.state === "member" && equalBytes(c.ann.identity, adm.key);
  }

  /**
   * Applies every pending admission whose admitter is a member here and
   * whose admitted participant is listed with the key named (or is this
   * participant, with its key). Admissions of members already, or of this
   * participant once admitted, are dropped; the others wait, within the
   * bound (Go's applyAdmissionsLocked).
   * @protected
   */
  applyAdmissions() {
    const a = /** @type {AdmissionData} */ (this.adm);
    for (let progress = true; progress; ) {
      progress = false;
      // Each was checked for its time when it came: it may wait for its
      // admitter (a key change the user has yet to accept) as long as it
      // takes, within the bound.
      /** @type {import("./admission.js").Admission[]} */
      const keep = [];
      for (const adm of a.pending) {
        const admitter = a.cands.get(adm.admitter);
        if (adm.admitter === this.self || !admitter || admitter.state !== "member" || admitter.peer.held || !equalBytes(admitter.ann.identity, adm.admitterKey)) {
          keep.push(adm); // not (yet) someone whose admissions count
          continue;
        }
        if (adm.admitted === this.self) {
          if (equalBytes(adm.admittedKey, this.selfPub) && !a.admitted) {
            this.selfAdmitted(adm.admitter);
            progress = true;
          }
          continue;
        }
        const c = a.cands.get(adm.admitted);
        if (!c || !equalBytes(c.ann.identity, adm.admittedKey)) {
          keep.push(adm); // the admitted one is not listed (yet) with that key
          continue;
        }
        if (c.state !== "member") {
          this.makeMember(c, adm.admitter);
          progress = true;
        }
      }
      a.pending = keep;
    }
  }

  /**
   * Takes a "roster" message (Go's handleRoster).
   * @param {string} from
   * @param {DecodedMessage} m
   * @protected
   * @override
   */
  async handleRoster(from, m) {
    const a = /** @type {AdmissionData} */ (this.adm);
    let v;
    try {
      v = await parseRoster(m.roster);
    } catch (err) {
      throw this.bad(from, String(err));
    }
    if (this.closed) {
      return;
    }
    const c = a.cands.get(v.member);
    const k = pairKey(v.member, v.memberKey);
    const last = a.viewSeqs.get(k) ?? 0n;
    if (v.entries.length > a.cands.size + 1 + MAX_VIEW_SLACK || !this.roomForView(c, v.entries.length)) {
      // It lists far more people than are here: it cannot agree with this
      // session's, and is not worth keeping.
      throw this.bad(from, `roster view of ${v.entries.length} participants, ${a.cands.size + 1} listed here`);
    }
    if (v.room !== this.room) {
      throw this.bad(from, `roster view for room ${JSON.stringify(v.room)}`);
    }
    if (v.member !== from) {
      throw this.bad(from, `roster view of ${JSON.stringify(v.member)}`);
    }
    if (!c || !equalBytes(c.ann.identity, v.memberKey)) {
      throw this.bad(from, "roster view of someone not listed with that key");
    }
    if (v.viewSeq <= last) {
      throw this.bad(from, `roster view ${v.viewSeq}, not above ${last}`, true);
    }
    if (!a.viewSeqs.has(k) && a.viewSeqs.size >= MAX_SENDER_RECORDS) {
      // Full: forget those not listed now (one coming back needs a new
      // admission anyway); if all are, refuse rather than forget a
      // present member's highest view.
      for (const pk of [...a.viewSeqs.keys()]) {
        // The key is hex, so the last NUL ends the name.
        const i = pk.lastIndexOf("\u0000");
        const o = a.cands.get(pk.slice(0, i));
        if (!o || hex(o.ann.identity) !== pk.slice(i + 1)) {
          a.viewSeqs.delete(pk);
        }
      }
      if (a.viewSeqs.size >= MAX_SENDER_RECORDS) {
        throw this.bad(from, "too many roster views to remember");
      }
    }
    a.viewSeqs.set(k, v.viewSeq);
    c.view = v;
    if (c.root && c.state !== "member") {
      // Listed when this session joined and signing views: a member
      // before this session came. If it is not one in the others' eyes,
      // their views differ from this one's and the alert says so.
      this.makeMember(c, "");
    }
    await this.sync();
    await this.drainEarly();
  }

  /**
   * Takes a "refuse" message (Go's handleRefusal): shown only when a
   * member sent it.
   * @param {string} from
   * @param {DecodedMessage} m
   * @protected
   * @override
   */
  handleRefusal(from, m) {
    const a = /** @type {AdmissionData} */ (this.adm);
    const by = a.cands.get(from);
    if (this.closed || !by || by.state !== "member") {
      return;
    }
    if (m.identity === this.self) {
      if (!a.admitted && a.refused === "") {
        a.refused = from;
        this.emit("selfrefused", { by: from });
      }
      return;
    }
    const c = a.cands.get(m.identity);
    if (c && c.state === "waiting") {
      c.state = "refused";
      c.by = from;
      this.emit("refused", { identity: c.peer.identity, identityKey: c.ann.identity, by: from });
    }
  }

  /**
   * Brings everything in line with the candidates' states (Go's
   * syncLocked): pending admissions, the key members, this session's
   * signed view, the hold on keys and the alert. Resolves to whether the
   * key members changed.
   * @returns {Promise<boolean>}
   * @protected
   */
  async sync() {
    const a = /** @type {AdmissionData} */ (this.adm);
    this.applyAdmissions();
    /** @type {Map<string, Peer & {ann: import("./identity.js").Announcement}>} */
    const want = new Map();
    if (a.admitted) {
      for (const [id, c] of a.cands) {
        if (c.state === "member" && !c.peer.held) {
          want.set(id, { identity: c.peer.identity, publicKey: c.peer.publicKey, ann: c.ann });
        }
      }
    }
    const { removed, added } = await this.applyMembers(want);
    if (removed || added) {
      a.rekeyDue = true;
      a.rekeyFresh = a.rekeyFresh || removed;
    }
    if (a.admitted) {
      const entries = this.entries();
      if (!sameEntries(entries, a.lastView)) {
        const micros = BigInt(Math.floor(a.now() * 1000));
        a.viewSeq = a.viewSeq + 1n > micros ? a.viewSeq + 1n : micros;
        try {
          const roster = await signRoster(this.identity, { room: this.room, member: this.self, memberKey: this.selfPub, viewSeq: a.viewSeq, entries });
          /** @type {KeyMessage} */
          const msg = { sotto_e2ee: KEY_MESSAGE_VERSION, type: "roster", kid: 0, roster };
          a.lastView = entries;
          a.viewMsg = msg;
          this.sendMessage(null, msg);
        } catch (err) {
          this.log.error("e2ee: cannot sign this participant's roster view", String(err));
        }
      }
    }
    // Keys flow only while every member's latest view lists the same
    // people as this one.
    const now = a.now();
    const agreed = a.admitted && this.mismatches().length === 0 && !this.rootsPending(now);
    a.hold = !agreed;
    if (agreed) {
      a.since = null;
      this.stopRosterTimer();
      if (a.alert) {
        a.alert = false;
        a.alerted = null;
        this.emit("rosteragreed");
      }
      if (this.publishing && a.rekeyDue) {
        await this.rekey(false);
      }
    } else if (a.admitted) {
      if (this.publishing && a.rekeyFresh) {
        // A leaver must not read on while views disagree.
        await this.rekey(true);
      }
      if (a.since === null) {
        a.since = now;
      }
      if (a.alert) {
        this.reportMismatch();
      } else if (now - a.since >= a.rosterTimeoutMs) {
        // Still apart after the timeout: roots that sent no view by now
        // count as waiting, and any other difference raises the alert.
        if (this.mismatches().length > 0) {
          a.alert = true;
          this.reportMismatch();
        }
      } else if (a.timer === null) {
        const timer = setTimeout(() => this.background(() => this.rosterTimeout(timer)), Math.max(0, a.rosterTimeoutMs - (now - a.since)));
        a.timer = timer;
      }
    }
    return removed || added;
  }

  /** @protected */
  stopRosterTimer() {
    const a = this.adm;
    if (a && a.timer !== null) {
      clearTimeout(a.timer);
      a.timer = null;
    }
  }

  /**
   * Looks again once views have disagreed (or roots have been silent) for
   * rosterTimeoutMs: sync then raises the alert, or lets keys flow if only
   * silent roots held them (Go's rosterTimeout).
   * @param {ReturnType<typeof setTimeout>} timer the timer that fired
   * @returns {Promise<void>}
   * @protected
   */
  async rosterTimeout(timer) {
    const a = /** @type {AdmissionData} */ (this.adm);
    if (this.closed || a.timer !== timer) {
      return;
    }
    a.timer = null;
    await this.sync();
  }

  /**
   * Whether a view of n entries from c may be kept: the views kept (c's
   * replaced) stay within MAX_VIEW_ENTRIES (Go's roomForViewLocked).
   * @param {Candidate|undefined} c
   * @param {number} n
   * @returns {boolean}
   * @protected
   */
  roomForView(c, n) {
    const a = /** @type {AdmissionData} */ (this.adm);
    let total = n;
    for (const o of a.cands.values()) {
      if (o !== c && o.view !== null) {
        total += o.view.entries.length;
      }
    }
    return total <= MAX_VIEW_ENTRIES;
  }

  /**
   * Whether a participant listed when this session joined has neither
   * become a member nor had rosterTimeoutMs to send its view: until then
   * this session sends no key, so that a node that delays the real
   * members' views cannot have it agree with a ghost's first (Go's
   * rootsPendingLocked).
   * @param {number} now
   * @returns {boolean}
   * @protected
   */
  rootsPending(now) {
    const a = /** @type {AdmissionData} */ (this.adm);
    if (now - a.joinedAt >= a.rosterTimeoutMs) {
      return false;
    }
    for (const c of a.cands.values()) {
      if (c.root && c.state !== "member") {
        return true;
      }
    }
    return false;
  }

  /**
   * Emits the mismatches if they differ from the last reported (Go's
   * reportMismatchLocked).
   * @protected
   */
  reportMismatch() {
    const a = /** @type {AdmissionData} */ (this.adm);
    const ms = this.mismatches();
    if (ms.length === 0 || sameMismatches(ms, a.alerted)) {
      return;
    }
    a.alerted = ms;
    this.emit("rostermismatch", { mismatches: ms });
  }

  /**
   * This session's view: itself and its members, each with the latest
   * key sequence number accepted from it, its own that of the last key
   * message it sent; sorted by name, then key (Go's entriesLocked).
   * @returns {import("./roster.js").RosterEntry[]}
   * @protected
   */
  entries() {
    const a = /** @type {AdmissionData} */ (this.adm);
    const own = this.counters.keysSent > 0 ? this.seq - 1n : 0n;
    /** @type {{name: string, key: Uint8Array<ArrayBuffer>, keySeq: bigint, utf8: Uint8Array}[]} */
    const es = [{ name: this.self, key: this.selfPub, keySeq: own, utf8: utf8.encode(this.self) }];
    for (const c of a.cands.values()) {
      if (c.state !== "member") {
        continue;
      }
      const id = c.peer.identity;
      es.push({ name: id, key: c.ann.identity, keySeq: this.members.get(id)?.rec.highest ?? 0n, utf8: utf8.encode(id) });
    }
    es.sort((x, y) => compareBytes(x.utf8, y.utf8) || compareBytes(x.key, y.key));
    return es.map((e) => ({ name: e.name, key: e.key, keySeq: e.keySeq }));
  }

  /**
   * The members whose latest view is missing or lists other people than
   * this session's, sorted by member (Go's mismatchesLocked).
   * @returns {RosterMismatch[]}
   * @protected
   */
  mismatches() {
    const a = /** @type {AdmissionData} */ (this.adm);
    if (!a.admitted) {
      return [];
    }
    const mine = { entries: this.entries() };
    /** @type {RosterMismatch[]} */
    const ms = [];
    for (const c of a.cands.values()) {
      if (c.state !== "member") {
        continue;
      }
      if (c.view === null) {
        ms.push({ member: c.peer.identity, missing: true, onlyTheirs: [], onlyMine: [] });
        continue;
      }
      const { onlyA, onlyB } = diffRosters(c.view, mine);
      if (onlyA.length > 0 || onlyB.length > 0) {
        ms.push({ member: c.peer.identity, missing: false, onlyTheirs: onlyA, onlyMine: onlyB });
      }
    }
    return ms.sort((x, y) => compareNames(x.member, y.member));
  }

  /** Stops the session's timers and forgets every member's keys. */
  close() {
    this.closed = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.stopRosterTimer();
    for (const r of [...this.members.values()]) {
      this.dropMember(r);
    }
  }
}
