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
 * management (keys.js) decides which; FrameCrypto only uses them. It
 * derives no key of its own: a frame under a KID it has no key for waits
 * for that key's message and counts as without a key (docs/E2EE.md,
 * "Receivers do not guess keys"). The worker runs one; tests run one in
 * the page.
 */

import { Receiver, SFrameError, Sender, suiteParams, toUint64 } from "./sframe.js";
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

/**
 * Encrypts this participant's frames and decrypts everyone else's.
 * Frames are encrypted under one Sender whose counter runs across all
 * tracks; each other participant has a Receiver with a replay window per
 * KID.
 */
export class FrameCrypto {
  /**
   * @param {number} suite the room's SFrame cipher suite
   * @param {{onInUse?: (from: string, kid: number) => void, audioBucket?: number}} [opts]
   *   onInUse hears the KID a participant's frames decrypt under whenever
   *   it changes (key management retires older keys after a grace
   *   period); audioBucket is the bucket audio frames are padded to (Go's
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
    }
    await r.setKey(toUint64(kid, "KID"), baseKey);
  }

  /**
   * Forgets one of participant from's keys (key management retired it).
   * @param {string} from
   * @param {number|bigint} kid
   */
  removeReceiveKey(from, kid) {
    this.receivers.get(from)?.removeKey(toUint64(kid, "KID"));
  }

  /**
   * Forgets every key of participant from (it left).
   * @param {string} from
   */
  removeParticipant(from) {
    this.receivers.delete(from);
    this.lastKID.delete(from);
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
    // A KID without a key here throws an "unknown-kid" SFrameError
    // (isNoKey): nothing is derived from a frame, the key message is
    // awaited.
    const res = await r.decrypt(prefix, body);
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
}
