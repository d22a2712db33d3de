// @ts-check
/**
 * @file The clear codec prefix of a frame and the H.264 framing rules of
 * Sotto's end-to-end encryption, exactly as media/e2ee/prefix.go (whose
 * comments explain what pion's and browsers' packetizers do and why each
 * rule exists; docs/E2EE.md has the summary).
 *
 * The prefix is what packetizers, depacketizers and the SFU still read
 * after encryption: the VP8 payload header, and for H.264 the parameter
 * sets and the start of the first slice header; Opus has none, the whole
 * frame is encrypted. It is authenticated as SFrame metadata. For H.264 the sender first normalizes
 * the frame (normalizeAnnexB) and escapes the SFrame part (escapeH264) so
 * that it contains no start code; the receiver undoes the escaping
 * (unescapeH264) and never normalizes.
 */

/**
 * A codec Sotto encrypts: one of the values of Codec (the numbers of Go's
 * e2ee.Codec).
 * @typedef {1|2|3} CodecId
 */

/** The codecs Sotto encrypts. */
export const Codec = Object.freeze({
  /** @type {CodecId} */
  OPUS: 1,
  /** @type {CodecId} */
  VP8: 2,
  /** @type {CodecId} */
  H264: 3,
});

/**
 * Why a frame could not be split: "malformed" (ErrMalformedFrame: too
 * short, not Annex B, a bad NAL unit before the slice, or escaped data
 * escapeH264 cannot have produced), "bad-padding" (ErrBadPadding, which
 * Go counts as ErrMalformedFrame too: a decrypted audio frame whose
 * padding unpadAudio refuses), "no-slice" (ErrNoSlice: an H.264 frame
 * without a coded slice, which would go out entirely in clear) or
 * "unsupported-codec" (ErrUnsupportedCodec).
 * @typedef {"malformed"|"bad-padding"|"no-slice"|"unsupported-codec"} FrameErrorCode
 */

/** A frame that cannot be split into its clear prefix and the rest. */
export class FrameError extends Error {
  /**
   * @param {FrameErrorCode} code
   * @param {string} message
   */
  constructor(code, message) {
    super(`e2ee: ${message}`);
    this.name = "FrameError";
    /** @type {FrameErrorCode} */
    this.code = code;
  }
}

/** @type {ReadonlyArray<[CodecId, string]>} */
const MIME_TYPES = [
  [Codec.OPUS, "audio/opus"],
  [Codec.VP8, "video/VP8"],
  [Codec.H264, "video/H264"],
];

/**
 * Returns the MIME type of a codec ("audio/opus", "video/VP8", "video/H264").
 * @param {CodecId} codec
 * @returns {string}
 */
export function codecMimeType(codec) {
  for (const [c, mime] of MIME_TYPES) {
    if (c === codec) {
      return mime;
    }
  }
  return `Codec(${codec})`;
}

/**
 * Returns the Codec of a MIME type, compared without regard to case;
 * other types, and types with parameters, throw an "unsupported-codec"
 * FrameError.
 * @param {string} mime
 * @returns {CodecId}
 */
export function codecFromMime(mime) {
  const m = String(mime).toLowerCase();
  for (const [c, name] of MIME_TYPES) {
    if (m === name.toLowerCase()) {
      return c;
    }
  }
  throw new FrameError("unsupported-codec", `unsupported codec: ${JSON.stringify(mime)}`);
}

const OPUS_PREFIX_LEN = 0; // nothing: the TOC byte (RFC 6716 section 3.1) is encrypted too
const VP8_DELTA_PREFIX_LEN = 3; // the frame tag (RFC 6386 section 9.1)
const VP8_KEY_PREFIX_LEN = 10; // frame tag, start code 9d 01 2a, width, height
const H264_SLICE_HEAD_LEN = 3; // NAL header, then first_mb_in_slice, slice_type, pic_parameter_set_id

// NAL unit types (ITU-T H.264 table 7-1).
const NAL_TYPE_MASK = 0x1f;
const NAL_FORBIDDEN_BIT = 0x80;
const NAL_SLICE_FIRST = 1;
const NAL_SLICE_LAST = 5;
const NAL_SPS = 7;
const NAL_PPS = 8;
const NAL_AUD = 9;
const NAL_FILLER = 12;
const NAL_RESERVED = 24;

/**
 * Returns how many leading bytes of an encoded frame stay in clear, as
 * Go's e2ee.PrefixLen: Opus 0 (an empty frame is malformed); VP8 10 for a key frame (which must carry
 * 9d 01 2a in bytes 3-5), 3 otherwise; H.264 (Annex B) every NAL unit
 * before the first coded slice whole, then the slice's start code, NAL
 * header and 2 more bytes. Throws a FrameError for a frame it cannot
 * split.
 * @param {CodecId} codec
 * @param {Uint8Array<ArrayBuffer>} frame
 * @returns {number}
 */
export function prefixLen(codec, frame) {
  switch (codec) {
    case Codec.OPUS:
      if (frame.length === 0) {
        throw new FrameError("malformed", "malformed frame: empty Opus frame");
      }
      return OPUS_PREFIX_LEN;
    case Codec.VP8:
      return vp8PrefixLen(frame);
    case Codec.H264:
      return h264PrefixLen(frame);
  }
  throw new FrameError("unsupported-codec", `unsupported codec: ${codecMimeType(codec)}`);
}

/**
 * @param {Uint8Array<ArrayBuffer>} frame
 * @returns {number}
 */
function vp8PrefixLen(frame) {
  if (frame.length < VP8_DELTA_PREFIX_LEN) {
    throw new FrameError("malformed", `malformed frame: VP8 frame of ${frame.length} bytes, shorter than its frame tag`);
  }
  if ((frame[0] & 0x01) !== 0) {
    return VP8_DELTA_PREFIX_LEN;
  }
  if (frame.length < VP8_KEY_PREFIX_LEN) {
    throw new FrameError("malformed", `malformed frame: VP8 key frame of ${frame.length} bytes, shorter than its header`);
  }
  if (frame[3] !== 0x9d || frame[4] !== 0x01 || frame[5] !== 0x2a) {
    throw new FrameError("malformed", "malformed frame: VP8 key frame without start code 9d 01 2a");
  }
  return VP8_KEY_PREFIX_LEN;
}

/**
 * The length of the start code at b[at]: 3, 4, or 0 if none begins there.
 * @param {Uint8Array<ArrayBuffer>} b
 * @param {number} at
 * @returns {number}
 */
function startCodeLen(b, at) {
  const n = b.length - at;
  if (n >= 3 && b[at] === 0 && b[at + 1] === 0 && b[at + 2] === 1) {
    return 3;
  }
  if (n >= 4 && b[at] === 0 && b[at + 1] === 0 && b[at + 2] === 0 && b[at + 3] === 1) {
    return 4;
  }
  return 0;
}

/**
 * The index of the first 00 00 01 at or after from, or -1.
 * @param {Uint8Array<ArrayBuffer>} b
 * @param {number} from
 * @returns {number}
 */
function indexStartCode3(b, from) {
  for (let i = from; i + 2 < b.length; i++) {
    if (b[i + 2] > 1) {
      i += 2; // no start code can end at i+2 or contain it
      continue;
    }
    if (b[i] === 0 && b[i + 1] === 0 && b[i + 2] === 1) {
      return i;
    }
  }
  return -1;
}

/**
 * @param {Uint8Array<ArrayBuffer>} frame
 * @returns {number}
 */
function h264PrefixLen(frame) {
  const sc = startCodeLen(frame, 0);
  if (sc === 0) {
    throw new FrameError("malformed", "malformed frame: H.264 frame does not begin with an Annex B start code");
  }
  let p = sc; // the NAL header of the current unit
  for (;;) {
    if (p === frame.length || startCodeLen(frame, p) !== 0) {
      throw new FrameError("malformed", `malformed frame: empty H.264 NAL unit at byte ${p}`);
    }
    // The unit runs to the next 00 00 01; a zero before it belongs to a
    // four-byte start code, but the prefix is a byte range, so which unit
    // it is counted in does not matter.
    let end = frame.length;
    const i = indexStartCode3(frame, p + 1);
    if (i >= 0) {
      end = i;
    }
    if ((frame[p] & NAL_FORBIDDEN_BIT) !== 0) {
      throw new FrameError("malformed", `malformed frame: H.264 NAL unit with forbidden_zero_bit set at byte ${p}`);
    }
    const typ = frame[p] & NAL_TYPE_MASK;
    if (typ >= NAL_SLICE_FIRST && typ <= NAL_SLICE_LAST) {
      if (end - p < H264_SLICE_HEAD_LEN) {
        throw new FrameError("malformed", `malformed frame: H.264 slice NAL unit of ${end - p} bytes at byte ${p}`);
      }
      return p + H264_SLICE_HEAD_LEN;
    }
    if (typ === 0 || typ >= NAL_RESERVED) {
      throw new FrameError("malformed", `malformed frame: H.264 NAL unit type ${typ} at byte ${p}`);
    }
    if (end === frame.length) {
      throw new FrameError("no-slice", "H.264 frame has no slice");
    }
    p = end + 3;
  }
}

/**
 * The default bucket size of audio padding, in bytes (Go's
 * e2ee.DefaultAudioBucket): the SFrame plaintext of an audio frame is a
 * multiple of it.
 */
export const DEFAULT_AUDIO_BUCKET = 32;

/** The largest bucket size (Go's e2ee.MaxAudioBucket). */
export const MAX_AUDIO_BUCKET = 256;

/**
 * Returns the SFrame plaintext of an audio frame (Go's e2ee.PadAudio):
 * frame, then p zero bytes, then the byte p, with p the least that makes
 * the length a multiple of bucket (1 to MAX_AUDIO_BUCKET).
 * @param {Uint8Array<ArrayBuffer>} frame
 * @param {number} bucket
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function padAudio(frame, bucket) {
  if (!Number.isInteger(bucket) || bucket < 1 || bucket > MAX_AUDIO_BUCKET) {
    throw new RangeError(`e2ee: audio bucket ${bucket} outside 1-${MAX_AUDIO_BUCKET}`);
  }
  const n = frame.length + 1;
  const p = (bucket - (n % bucket)) % bucket;
  const out = new Uint8Array(n + p);
  out.set(frame);
  out[n + p - 1] = p;
  return out;
}

/**
 * Returns the frame inside a padded audio plaintext, a view of plain (Go's
 * e2ee.UnpadAudio). Throws a "bad-padding" FrameError for an empty
 * plaintext, a trailer counting more padding than there is room for
 * before it, a nonzero padding byte, or an empty frame.
 * @param {Uint8Array<ArrayBuffer>} plain
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function unpadAudio(plain) {
  if (plain.length === 0) {
    throw new FrameError("bad-padding", "malformed frame: bad audio padding: no trailer");
  }
  const p = plain[plain.length - 1];
  const end = plain.length - 1 - p;
  if (end < 1) {
    throw new FrameError("bad-padding", `malformed frame: bad audio padding: ${p} padding bytes leave no frame in ${plain.length} bytes`);
  }
  for (let i = end; i < plain.length - 1; i++) {
    if (plain[i] !== 0) {
      throw new FrameError("bad-padding", "malformed frame: bad audio padding: nonzero padding byte");
    }
  }
  return plain.subarray(0, end);
}

/**
 * Calls emit with each NAL unit of b, split exactly as pion's
 * H264Payloader splits: at each 00 00 01, a zero byte before it taken as
 * part of a four-byte start code, bytes before the first start code
 * dropped, and b as one unit if it has no start code at all.
 * @param {Uint8Array<ArrayBuffer>} b
 * @param {(nal: Uint8Array<ArrayBuffer>) => void} emit
 */
function splitAnnexB(b, emit) {
  let start = indexStartCode3(b, 0);
  if (start < 0) {
    emit(b);
    return;
  }
  let offset = 3;
  while (start < b.length) {
    let next = indexStartCode3(b, start + offset);
    if (next < 0) {
      emit(b.subarray(start + offset));
      return;
    }
    const four = b[next - 1] === 0;
    if (four) {
      next--;
    }
    emit(b.subarray(start + offset, next));
    start = next;
    offset = four ? 4 : 3;
  }
}

/**
 * Returns frame as pion's H.264 depacketizer delivers it after pion's
 * payloader sent it (Go's e2ee.NormalizeAnnexB): every NAL unit behind a
 * four-byte start code, empty units, access unit delimiters and filler
 * data left out, and SPS and PPS held back and placed, the last of each,
 * just before the next other NAL unit once both were seen. The sender
 * normalizes before computing the prefix. Returns a new array.
 * @param {Uint8Array<ArrayBuffer>} frame
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function normalizeAnnexB(frame) {
  /** @type {Uint8Array<ArrayBuffer>[]} */
  const units = [];
  /** @type {Uint8Array<ArrayBuffer>|null} */
  let sps = null;
  /** @type {Uint8Array<ArrayBuffer>|null} */
  let pps = null;
  splitAnnexB(frame, (nal) => {
    if (nal.length === 0) {
      return;
    }
    switch (nal[0] & NAL_TYPE_MASK) {
      case NAL_AUD:
      case NAL_FILLER:
        return;
      case NAL_SPS:
        sps = nal;
        return;
      case NAL_PPS:
        pps = nal;
        return;
    }
    if (sps !== null && pps !== null) {
      units.push(sps, pps);
      sps = null;
      pps = null;
    }
    units.push(nal);
  });
  let n = 0;
  for (const u of units) {
    n += 4 + u.length;
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const u of units) {
    out[at + 3] = 1;
    out.set(u, at + 4);
    at += 4 + u.length;
  }
  return out;
}

/**
 * Reports whether b[0:end] ends in 0x00 followed by zero or more 0x03.
 * @param {Uint8Array<ArrayBuffer>} b
 * @param {number} end
 * @returns {boolean}
 */
function endsZeroThrees(b, end) {
  let i = end;
  while (i > 0 && b[i - 1] === 3) {
    i--;
  }
  return i > 0 && b[i - 1] === 0;
}

/**
 * Returns src with H.264 emulation-prevention bytes inserted (Go's
 * e2ee.EscapeH264): wherever two zero bytes are followed by a byte
 * 0x00-0x03, a 0x03 goes in between; src is escaped as if two zero bytes
 * came before it, and if the result ends in 0x00 followed by zero or more
 * 0x03, one more 0x03 is appended. The result contains no start code,
 * cannot form one with what precedes it, and unescapeH264 inverts it.
 * @param {Uint8Array<ArrayBuffer>} src
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function escapeH264(src) {
  const out = new Uint8Array(src.length + (src.length >> 1) + 3);
  let n = 0;
  let zeros = 2;
  for (let i = 0; i < src.length; i++) {
    const b = src[i];
    if (zeros >= 2 && b <= 3) {
      out[n++] = 3;
      zeros = 0;
    }
    out[n++] = b;
    zeros = b === 0 ? zeros + 1 : 0;
  }
  if (endsZeroThrees(out, n)) {
    out[n++] = 3;
  }
  return out.slice(0, n);
}

/**
 * Returns the bytes escapeH264 was given to produce src (Go's
 * e2ee.UnescapeH264): drops the 0x03 appended at the end and turns each
 * 00 00 03 back into 00 00, reading src as if two zero bytes came before
 * it. Anything escapeH264 cannot have produced throws a "malformed"
 * FrameError: 00 00 followed by 0x00-0x02, an emulation-prevention byte
 * not followed by 0x00-0x03, or a final 0x00.
 * @param {Uint8Array<ArrayBuffer>} src
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function unescapeH264(src) {
  let end = src.length;
  if (end === 0) {
    return new Uint8Array(0);
  }
  if (src[end - 1] === 0) {
    throw new FrameError("malformed", "malformed frame: escaped H.264 data ends in 0x00");
  }
  if (src[end - 1] === 3 && endsZeroThrees(src, end - 1)) {
    end--;
  }
  const out = new Uint8Array(end);
  let n = 0;
  let zeros = 2;
  for (let i = 0; i < end; i++) {
    const b = src[i];
    if (zeros >= 2 && b <= 3) {
      if (b !== 3) {
        throw new FrameError("malformed", `malformed frame: 00 00 ${b.toString(16).padStart(2, "0")} in escaped H.264 data at byte ${i}`);
      }
      if (i + 1 === end || src[i + 1] > 3) {
        throw new FrameError("malformed", `malformed frame: emulation prevention byte at ${i} not followed by 00-03`);
      }
      zeros = 0;
      continue;
    }
    out[n++] = b;
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return out.slice(0, n);
}
