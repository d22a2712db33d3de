// @ts-check
/** @file Key management: taking key messages and acks (Go's receive.go). */

import { base64urlDecode, equalBytes } from "./identity.js";
import { openKeyBox } from "./seal.js";
import { KeyCore } from "./keycore.js";
import { MAX_KEYS_PER_SENDER, MAX_EARLY_SENDERS, MAX_EARLY_PER_SENDER, KEY_MESSAGE_VERSION, NotKeyMessageError, KeyMessageError, decodeKeyMessage, tagOf } from "./keymsg.js";

/**
 * @typedef {import("./keymsg.js").DecodedMessage} DecodedMessage
 * @typedef {import("./keymsg.js").RemoteKey} RemoteKey
 * @typedef {import("./keymsg.js").Remote} Remote
 */

/**
 * Receiving key messages: keys, acks, and the dispatch of admission and
 * roster messages to members.js (Go's receive.go).
 */
export class KeyReceiver extends KeyCore {
  /**
   * Takes a key-management message that participant from sent through
   * signaling's relay (parsed JSON, or its text). Resolves when it is
   * handled (a key installed and acknowledged, an ack counted); rejects
   * with NotKeyMessageError for anything else, and with KeyMessageError
   * (counted in badKeyMessages, and in replayedKeyMessages when it is
   * old) for a message that is refused; nothing else in the session
   * changes then.
   * @param {string} from
   * @param {unknown} data
   * @returns {Promise<void>}
   */
  handleMessage(from, data) {
    const m = decodeKeyMessage(data);
    return this.run(async () => {
      if (!m || m.version === 0) {
        throw new NotKeyMessageError();
      }
      if (m.version !== KEY_MESSAGE_VERSION) {
        throw this.bad(from, `version ${m.version}, this client speaks ${KEY_MESSAGE_VERSION}`);
      }
      switch (m.type) {
        case "key":
          return this.handleKey(from, m.kid, m.boxes);
        case "key_ack":
          if (!this.next || this.next.kid !== m.kid || !this.pending?.has(from)) {
            return; // a late or duplicate ack
          }
          this.counters.acksReceived++;
          this.pending.delete(from);
          if (this.pending.size === 0) {
            this.counters.switchesOnAck++;
            await this.switchNow();
          }
          return;
        case "admit":
        case "refuse":
        case "roster":
          if (!this.adm) {
            return; // admission is off here
          }
          if (m.type === "admit") {
            return this.handleAdmission(from, m);
          }
          if (m.type === "refuse") {
            return this.handleRefusal(from, m);
          }
          return this.handleRoster(from, m);
        default:
          throw this.bad(from, `unknown type ${JSON.stringify(m.type)}`);
      }
    });
  }

  /**
   * Counts and logs a refused message and returns the error to throw.
   * @param {string} from
   * @param {string} why
   * @param {boolean} [replayed] refused as old (rules 4 and 5)
   * @returns {KeyMessageError}
   * @protected
   */
  bad(from, why, replayed = false) {
    this.counters.badKeyMessages++;
    if (replayed) {
      this.counters.replayedKeyMessages++;
    }
    const err = new KeyMessageError(`from ${JSON.stringify(from)}: ${replayed ? "replayed: " : ""}${why}`, replayed);
    this.log.warn("e2ee: key message refused", err.message);
    return err;
  }

  /**
   * What is wrong with a body for a message of kid from member r, or
   * null: every rule 3 of docs/E2EE.md ("Key messages").
   * @param {string} from
   * @param {Remote} r
   * @param {number} kid
   * @param {import("./seal.js").OpenedKeyBody} b
   * @returns {string|null}
   * @protected
   */
  checkBody(from, r, kid, b) {
    if (b.suite !== this.suite) {
      return `cipher suite 0x${b.suite.toString(16).padStart(4, "0")}, this client uses 0x${this.suite.toString(16).padStart(4, "0")}`;
    }
    if (!Number.isSafeInteger(kid) || b.kid !== BigInt(kid)) {
      return "sealed KID differs from the message's";
    }
    if (b.room !== this.room) {
      return "sealed for another room";
    }
    if (b.sender !== from) {
      return `sealed as from ${JSON.stringify(b.sender)}`;
    }
    if (!equalBytes(b.senderKey, r.ann.identity) || !equalBytes(b.senderSession, r.ann.sessionId)) {
      return "sealed by another key or session of the sender than it announced";
    }
    if (b.recipient !== this.self) {
      return `sealed for ${JSON.stringify(b.recipient)}`;
    }
    if (!equalBytes(b.recipientKey, this.selfPub) || !equalBytes(b.recipientSession, this.sessionId)) {
      return "sealed for another key or session of this participant";
    }
    if (b.baseKey.length !== this.hashSize) {
      return `base key of ${b.baseKey.length} bytes, the suite wants ${this.hashSize}`;
    }
    return null;
  }

  /**
   * @param {string} from
   * @param {number} kid
   * @param {Record<string, string>} boxes
   * @protected
   * @override
   */
  async handleKey(from, kid, boxes) {
    if (!Object.hasOwn(boxes, this.self)) {
      return; // a key for others only (we joined after it was sent)
    }
    if (kid >= 2 ** 32 || kid < 2 ** 8) {
      // Every KID is a 24-bit tag, never 0, and an 8-bit epoch.
      throw this.bad(from, `KID ${kid} is not a 24-bit tag and an 8-bit epoch`);
    }
    let sealed;
    try {
      sealed = base64urlDecode(boxes[this.self]);
    } catch (err) {
      throw this.bad(from, `box: ${String(err)}`);
    }
    const r = this.members.get(from);
    if (!r) {
      // Perhaps its announcement is still on its way (or the application
      // has not accepted its changed key yet): keep this participant's
      // box for setMembers.
      this.queueEarly(from, kid, boxes[this.self]);
      return;
    }
    let b;
    try {
      b = await openKeyBox(this.sessionKey, r.ann.identity, sealed);
    } catch (err) {
      throw this.bad(from, String(err));
    }
    const base = b.baseKey;
    const why = this.checkBody(from, r, kid, b);
    if (why !== null) {
      base.fill(0);
      throw this.bad(from, why);
    }
    if (this.members.get(from) !== r) {
      base.fill(0);
      return; // left meanwhile
    }
    if (b.seq <= r.rec.highest) {
      base.fill(0);
      throw this.bad(from, `sequence number ${b.seq}, already accepted ${r.rec.highest}`, true);
    }
    if (this.isRetired(r, kid)) {
      base.fill(0);
      throw this.bad(from, `KID 0x${kid.toString(16)} was retired`, true);
    }
    if (r.tag !== 0 && tagOf(kid) !== r.tag && (kid & 0xff) !== 0) {
      base.fill(0);
      throw this.bad(from, `KID 0x${kid.toString(16)} neither carries the sender's tag 0x${r.tag.toString(16)} nor starts a new one`);
    }
    if (r.keys.some((k) => k.kid === kid && !equalBytes(k.base, base))) {
      base.fill(0);
      throw this.bad(from, `KID 0x${kid.toString(16)} sent again with another key`);
    }
    try {
      await this.sink.setReceiveKey(from, kid, base);
    } catch (err) {
      base.fill(0);
      throw this.bad(from, String(err));
    }
    r.rec.highest = b.seq;
    r.tag = tagOf(kid);
    this.keep(r, kid, base);
    this.counters.keysReceived++;
    this.logKey(from, { kid, base });
    this.sendMessage([from], { sotto_e2ee: KEY_MESSAGE_VERSION, type: "key_ack", kid });
  }

  /**
   * Keeps the box of a key message from a sender that is not a member,
   * bounded: the newest MAX_EARLY_PER_SENDER messages of the
   * MAX_EARLY_SENDERS senders first heard from last (Go's
   * queueEarlyLocked). Nothing in it is authenticated yet, so it evicts
   * rather than refuses: a node that floods it with messages of senders
   * who never come displaces them, but cannot fill it for good.
   * @param {string} from
   * @param {number} kid
   * @param {string} box
   * @protected
   */
  queueEarly(from, kid, box) {
    let q = this.early.get(from);
    if (!q) {
      while (this.early.size >= MAX_EARLY_SENDERS) {
        this.early.delete(/** @type {string} */ (this.early.keys().next().value));
      }
      q = [];
      this.early.set(from, q);
    }
    if (q.length >= MAX_EARLY_PER_SENDER) {
      q.shift();
    }
    /** @type {Record<string, string>} */
    const boxes = Object.create(null);
    boxes[this.self] = box;
    q.push({ kid, boxes });
  }

  /**
   * Adds a key the sink holds to r's keys, evicting (and retiring) the
   * oldest beyond MAX_KEYS_PER_SENDER (Go's keepKeyLocked).
   * @param {Remote} r
   * @param {number} kid
   * @param {Uint8Array<ArrayBuffer>} base
   * @protected
   */
  keep(r, kid, base) {
    r.keys = r.keys.filter((k) => k.kid !== kid);
    r.order++;
    r.keys.push({ kid, order: r.order, base });
    while (r.keys.length > MAX_KEYS_PER_SENDER) {
      const old = /** @type {RemoteKey} */ (r.keys.shift());
      this.retire(r, old.kid);
      old.base.fill(0);
      this.sink.removeReceiveKey(r.identity, old.kid);
    }
  }

  /**
   * Records that a frame from participant from decrypted under kid; the
   * first time a newer key is seen in use, the older keys are dropped
   * (and retired) after the grace period (Go's noteInUseLocked).
   * @param {string} from
   * @param {number} kid
   * @returns {Promise<void>}
   */
  noteInUse(from, kid) {
    return this.run(() => {
      const r = this.members.get(from);
      if (!r || r.inUse === kid) {
        return;
      }
      const order = r.keys.find((k) => k.kid === kid)?.order ?? 0;
      const oldOrder = r.keys.find((k) => k.kid === r.inUse)?.order ?? 0;
      if (r.inUse !== 0 && order < oldOrder) {
        return; // a late frame under an older key
      }
      r.inUse = kid;
      if (r.expiry !== null) {
        clearTimeout(r.expiry);
      }
      r.expiry = setTimeout(() => {
        this.background(() => {
          if (this.members.get(r.identity) !== r || r.inUse !== kid) {
            return;
          }
          r.keys = r.keys.filter((k) => {
            if (k.order < order) {
              this.retire(r, k.kid);
              k.base.fill(0);
              this.sink.removeReceiveKey(r.identity, k.kid);
              return false;
            }
            return true;
          });
        });
      }, this.grace);
    });
  }

  // Provided by KeySession (members.js).

  /**
   * @param {string} from
   * @param {DecodedMessage} m
   * @returns {Promise<void>}
   * @protected
   */
  async handleAdmission(from, m) {
    throw new Error("e2ee: KeyReceiver.handleAdmission is KeySession's");
  }

  /**
   * @param {string} from
   * @param {DecodedMessage} m
   * @returns {void}
   * @protected
   */
  handleRefusal(from, m) {
    throw new Error("e2ee: KeyReceiver.handleRefusal is KeySession's");
  }

  /**
   * @param {string} from
   * @param {DecodedMessage} m
   * @returns {Promise<void>}
   * @protected
   */
  async handleRoster(from, m) {
    throw new Error("e2ee: KeyReceiver.handleRoster is KeySession's");
  }
}
