// @ts-check
/**
 * @file The frame format on RTP, as media/e2ee/transform.go: an encrypted
 * frame is its clear codec prefix followed by the SFrame header and
 * ciphertext, the prefix authenticated as SFrame metadata; Opus has no
 * prefix and its plaintext is padded (padAudio); for H.264 the frame is
 * normalized first and the SFrame part escaped.
 *
 * FrameCrypto holds the keys frames need: this participant's current
 * sending key and every other participant's receiving keys. Key
 * management (keys.js) decides which; FrameCrypto only uses them, with
 * one exception Go's Session makes too: a frame under the epoch after a
 * key it holds is tried under that key's ratchet (a sender that ratcheted
 * for a joiner), and key management hears of the derived key once a frame
 * authenticates under it. A KID key management retired (removeReceiveKey,
 * removeParticipant) is never derived again. The worker runs one; tests
 * run one in the page.
 */

import { Receiver, SFrameError, Sender, ratchet, suiteParams, toUint64 } from "./sframe.js";
import { Codec, DEFAULT_AUDIO_BUCKET, MAX_AUDIO_BUCKET, escapeH264, normalizeAnnexB, padAudio, prefixLen, unescapeH264, unpadAudio } from "./prefix.js";

/**
 * No key for a frame: this participant has no sending key yet, or the
 * frame's sender or KID has no key here (Go's ErrNoKey).
 */
export class NoKeyError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(`e2ee: no key for this frame: ${message}`);
    this.name = "NoKeyError";
  }
}

/**
 * Reports whether a frame failed for lack of a key (counted as noKey)
 * rather than being refused (counted as rejected).
 * @param {unknown} err
 * @returns {boolean}
 */
export function isNoKey(err) {
  return err instanceof NoKeyError || (err instanceof SFrameError && err.code === "unknown-kid");
}

/**
 * @param {Uint8Array<ArrayBuffer>} a
 * @param {Uint8Array<ArrayBuffer>} b
 * @returns {Uint8Array<ArrayBuffer>}
 */
function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

// How many retired KIDs are remembered per participant (Go's maxRetired):
// enough for every key of many rekeys; older ones have long been refused
// by key management's sequence numbers.
const MAX_RETIRED = 256;

/**
 * Encrypts this participant's frames and decrypts everyone else's.
 * Frames are encrypted under one Sender whose counter runs across all
 * tracks; each other participant has a Receiver with a replay window per
 * KID.
 */
export class FrameCrypto {
  /**
   * @param {number} suite the room's SFrame cipher suite
   * @param {{onInUse?: (from: string, kid: number) => void, onDerived?: (from: string, kid: number) => void, audioBucket?: number}} [opts]
   *   onInUse hears the KID a participant's frames decrypt under whenever
   *   it changes (key management retires older keys after a grace
   *   period); onDerived hears of a key derived by the ratchet, which
   *   key management then keeps and retires like the keys it installed;
   *   audioBucket is the bucket audio frames are padded to (Go's
   *   Options.AudioBucket): 0 or absent DEFAULT_AUDIO_BUCKET, 1 no
   *   padding beyond the trailer, at most MAX_AUDIO_BUCKET
   */
  constructor(suite, opts = {}) {
    suiteParams(suite);
    const bucket = opts.audioBucket || DEFAULT_AUDIO_BUCKET;
    if (!Number.isInteger(bucket) || bucket < 1 || bucket > MAX_AUDIO_BUCKET) {
      throw new RangeError(`e2ee: audioBucket must be 0 (the default) or 1 to ${MAX_AUDIO_BUCKET}`);
    }
    /** @readonly */
    this.audioBucket = bucket;
    /** @readonly */
    this.suite = suite;
    /** @private */
    this.onInUse = opts.onInUse;
    /** @private */
    this.onDerived = opts.onDerived;
    /** @private @type {Map<string, Map<bigint, Uint8Array<ArrayBuffer>>>} each participant's base keys, to ratchet */
    this.bases = new Map();
    /** @private @type {Map<string, Promise<Uint8Array<ArrayBuffer>|null>>} ratchets being derived, by participant and KID */
    this.deriving = new Map();
    /**
     * @private @type {Map<string, bigint[]>} each participant's KIDs key
     * management removed, oldest first: never derived again. Kept across
     * the participant leaving: a superset of what key management retired
     * for each of its sessions, which only ever forgoes a guess.
     */
    this.retired = new Map();
    /** @private @type {Map<string, bigint>} the tag of each participant's latest installed key */
    this.tags = new Map();
    /** @private @type {Sender|null} */
    this.sender = null;
    /** @private */
    this.sendSeq = 0;
    /** @private @type {Map<string, Receiver>} */
    this.receivers = new Map();
    /** @private @type {Map<string, bigint>} the KID each participant's last good frame had */
    this.lastKID = new Map();
  }

  /**
   * Encrypts frames under kid from now on (once the key is derived; frames
   * meanwhile use the previous key). Setting the key already in use keeps
   * its counter: a counter is never used twice with one key.
   * @param {number|bigint} kid
   * @param {Uint8Array<ArrayBuffer>} baseKey
   * @returns {Promise<void>}
   */
  async setSendKey(kid, baseKey) {
    const seq = ++this.sendSeq;
    const s = await Sender.create(this.suite, kid, baseKey);
    if (seq !== this.sendSeq) {
      return; // a later key was set meanwhile
    }
    if (this.sender && this.sender.key.sameAs(s.key)) {
      return;
    }
    this.sender = s;
  }

  /**
   * The KID frames are encrypted under now, or null before the first key.
   * @returns {bigint|null}
   */
  get sendKID() {
    return this.sender ? this.sender.kid : null;
  }

  /**
   * Installs one of participant from's keys (see Receiver.setKey).
   * @param {string} from
   * @param {number|bigint} kid
   * @param {Uint8Array<ArrayBuffer>} baseKey
   * @returns {Promise<void>}
   */
  async setReceiveKey(from, kid, baseKey) {
    let r = this.receivers.get(from);
    if (!r) {
      r = new Receiver(this.suite);
      this.receivers.set(from, r);
      this.bases.set(from, new Map());
    }
    const k = toUint64(kid, "KID");
    // Key management accepted it: not retired for the sender's session.
    const retired = this.retired.get(from);
    if (retired?.includes(k)) {
      this.retired.set(from, retired.filter((x) => x !== k));
    }
    this.tags.set(from, k >> 8n);
    this.bases.get(from)?.set(k, baseKey.slice());
    await r.setKey(k, baseKey);
  }

  /**
   * Forgets one of participant from's keys, which key management retired:
   * it is never derived again.
   * @param {string} from
   * @param {number|bigint} kid
   */
  removeReceiveKey(from, kid) {
    const k = toUint64(kid, "KID");
    this.retire(from, k);
    this.dropKey(from, k);
  }

  /**
   * @param {string} from
   * @param {bigint} kid
   * @private
   */
  dropKey(from, kid) {
    this.receivers.get(from)?.removeKey(kid);
    this.bases.get(from)?.delete(kid);
  }

  /**
   * @param {string} from
   * @param {bigint} kid
   * @private
   */
  retire(from, kid) {
    const list = this.retired.get(from) ?? [];
    if (!list.includes(kid)) {
      list.push(kid);
      if (list.length > MAX_RETIRED) {
        list.shift();
      }
    }
    this.retired.set(from, list);
  }

  /**
   * Forgets every key of participant from (it left); they are retired.
   * @param {string} from
   */
  removeParticipant(from) {
    for (const kid of this.bases.get(from)?.keys() ?? []) {
      this.retire(from, kid);
    }
    this.receivers.delete(from);
    this.bases.delete(from);
    this.lastKID.delete(from);
    this.tags.delete(from);
  }

  /**
   * Encrypts one encoded frame under the current key and returns it as it
   * goes on the wire (Go's Session.EncryptFrame). Throws a FrameError for
   * a frame that cannot be split, a NoKeyError before the first key.
   * @param {import("./prefix.js").CodecId} codec
   * @param {Uint8Array<ArrayBuffer>} frame
   * @returns {Promise<Uint8Array<ArrayBuffer>>} a new array, its buffer exactly its size
   */
  async encryptFrame(codec, frame) {
    if (codec === Codec.H264) {
      frame = normalizeAnnexB(frame);
    }
    const n = prefixLen(codec, frame);
    const sender = this.sender;
    if (!sender) {
      throw new NoKeyError("no sending key yet");
    }
    const prefix = frame.subarray(0, n);
    let plain = frame.subarray(n);
    if (codec === Codec.OPUS) {
      plain = padAudio(plain, this.audioBucket);
    }
    const ct = await sender.encrypt(prefix, plain);
    return concat(prefix, codec === Codec.H264 ? escapeH264(ct) : ct);
  }

  /**
   * Decrypts one frame that participant from sent and returns it as the
   * sender's encoder made it (H.264 with four-byte start codes, audio
   * without its padding) with the SFrame header it carried (Go's
   * Session.DecryptFrame). Throws a NoKeyError or an "unknown-kid"
   * SFrameError when the key is missing (isNoKey), another SFrameError or
   * a FrameError (a "bad-padding" one for audio whose padding unpadAudio
   * refuses) when the frame is refused.
   * @param {string} from
   * @param {import("./prefix.js").CodecId} codec
   * @param {Uint8Array<ArrayBuffer>} frame
   * @returns {Promise<{data: Uint8Array<ArrayBuffer>, header: import("./sframe.js").Header}>}
   */
  async decryptFrame(from, codec, frame) {
    const n = prefixLen(codec, frame);
    const prefix = frame.subarray(0, n);
    let body = frame.subarray(n);
    if (codec === Codec.H264) {
      body = unescapeH264(body);
    }
    const r = this.receivers.get(from);
    if (!r) {
      throw new NoKeyError(`${JSON.stringify(from)} has sent no key`);
    }
    let res;
    try {
      res = await r.decrypt(prefix, body);
    } catch (err) {
      if (!(err instanceof SFrameError && err.code === "unknown-kid" && err.header)) {
        throw err;
      }
      res = await this.decryptRatcheted(from, r, err.header.kid, prefix, body, err);
    }
    const { header } = res;
    let { plaintext } = res;
    if (codec === Codec.OPUS) {
      plaintext = unpadAudio(plaintext);
    }
    if (this.receivers.get(from) === r && this.lastKID.get(from) !== header.kid) {
      this.lastKID.set(from, header.kid);
      this.onInUse?.(from, Number(header.kid));
    }
    return { data: concat(prefix, plaintext), header };
  }

  /**
   * Decrypts a frame under an unknown KID with the ratchet of the key of
   * the epoch before, if this participant's key for it is here: a sender
   * that ratcheted for a joiner is heard before its key message arrives
   * (Go's ratchetedKeyLocked). As in Go, only a KID with the tag of the
   * sender's latest key, not starting a new tag (epoch byte 0) and never
   * retired is guessed. A guess that does not authenticate (the sender
   * drew a fresh key: someone left) is taken back, evicting nothing, and
   * the frame counted as without a key; one that does is kept, and key
   * management hears of it (onDerived).
   * @param {string} from
   * @param {Receiver} r
   * @param {bigint} kid
   * @param {Uint8Array<ArrayBuffer>} prefix
   * @param {Uint8Array<ArrayBuffer>} body
   * @param {SFrameError} unknown the error to throw when there is nothing to try
   * @returns {Promise<{plaintext: Uint8Array<ArrayBuffer>, header: import("./sframe.js").Header}>}
   * @private
   */
  async decryptRatcheted(from, r, kid, prefix, body, unknown) {
    const id = `${kid}\u0000${from}`;
    let derive = this.deriving.get(id);
    if (!derive) {
      derive = (async () => {
        if ((kid & 0xffn) === 0n || this.tags.get(from) !== kid >> 8n || this.retired.get(from)?.includes(kid)) {
          return null;
        }
        const base = this.bases.get(from)?.get(kid - 1n);
        if (!base || this.receivers.get(from) !== r) {
          return null;
        }
        const next = await ratchet(this.suite, base);
        if (this.receivers.get(from) !== r || r.hasKey(kid) || this.retired.get(from)?.includes(kid)) {
          return null;
        }
        await r.setKey(kid, next);
        if (!r.hasKey(kid)) {
          return null; // removed meanwhile
        }
        this.bases.get(from)?.set(kid, next);
        return next;
      })();
      this.deriving.set(id, derive);
      derive.finally(() => this.deriving.delete(id)).catch(() => {});
    }
    const guessed = await derive;
    if (!guessed) {
      if (!r.hasKey(kid)) {
        throw unknown;
      }
      return r.decrypt(prefix, body); // its key arrived meanwhile
    }
    try {
      const res = await r.decrypt(prefix, body);
      this.onDerived?.(from, Number(kid));
      return res;
    } catch (err) {
      if (err instanceof SFrameError && err.code !== "auth" && err.code !== "unknown-kid") {
        throw err; // the replay window's verdict: the key is not in question
      }
      if (this.bases.get(from)?.get(kid) === guessed) {
        this.dropKey(from, kid); // a wrong guess; a key message may have set the real key meanwhile
      }
      throw new NoKeyError(`KID ${kid}: not the ratchet of the key before it (${String(err)})`);
    }
  }
}
