// @ts-check
// The page of TestBrowserGoInterop: it exposes the browser's E2EE pieces
// to the Go test as window.e2eeTest, every byte string as hex, so that
// the test can move frames, announcements, key boxes and key messages
// between Go and JavaScript and compare.

import * as sframe from "/sdk/e2ee/sframe.js";
import * as prefix from "/sdk/e2ee/prefix.js";
import { Identity, SessionKey, announce, base64urlEncode, parseAnnouncement } from "/sdk/e2ee/identity.js";
import { openKeyBox, sealKeyBox } from "/sdk/e2ee/seal.js";
import { safetyNumber, verificationCode } from "/sdk/e2ee/safety.js";
import { KeySession } from "/sdk/e2ee/keys.js";
import { FrameCrypto, isNoKey } from "/sdk/e2ee/transform.js";
import { IndexedDBStore, MemoryStore, checkKey } from "/sdk/e2ee/store.js";
import { skeleton } from "/sdk/e2ee/skeleton.js";
import { admit, checkAdmission, parseAdmission } from "/sdk/e2ee/admission.js";
import { diffRosters, parseRoster, sameParticipants, signRoster } from "/sdk/e2ee/roster.js";
import { fromHex, toHex } from "./hex.js";

/**
 * What an error is, in the words the Go test compares: the error code of
 * an SFrameError or FrameError, or the class name.
 * @param {unknown} err
 * @returns {string}
 */
function errorKind(err) {
  if (isNoKey(err)) {
    return "no-key";
  }
  const e = /** @type {any} */ (err);
  if (e && typeof e.code === "string") {
    return e.code;
  }
  return e?.name ?? String(err);
}

/** @param {string} codec "opus", "vp8" or "h264" */
function codecOf(codec) {
  return { opus: prefix.Codec.OPUS, vp8: prefix.Codec.VP8, h264: prefix.Codec.H264 }[codec] ?? 0;
}

/**
 * Runs f; returns {value} or {error}.
 * @template T
 * @param {() => T|Promise<T>} f
 * @returns {Promise<{value?: T, error?: string, message?: string}>}
 */
async function attempt(f) {
  try {
    return { value: await f() };
  } catch (err) {
    return { error: errorKind(err), message: String(err) };
  }
}

/**
 * The keys of one participant: what newIdentity makes, and what
 * newSession makes for its session.
 * @typedef {{identity: Identity, sessionKey: SessionKey}} Keys
 */

/** @type {Map<string, Keys>} */
const identities = new Map();

/** @param {string} name */
function keysOf(name) {
  const k = identities.get(name);
  if (!k) {
    throw new Error(`no identity ${name}`);
  }
  return k;
}

/**
 * A key body as the Go test passes it: byte strings in hex, 64-bit
 * integers as decimal strings.
 * @typedef {object} HexBody
 * @property {number} suite
 * @property {string} kid
 * @property {string} seq
 * @property {string} room
 * @property {string} sender
 * @property {string} senderKey
 * @property {string} senderSession
 * @property {string} recipient
 * @property {string} recipientKey
 * @property {string} recipientSession
 * @property {string} baseKey
 */

/**
 * @param {HexBody} b
 * @returns {import("/sdk/e2ee/seal.js").KeyBody}
 */
function fromHexBody(b) {
  return {
    suite: b.suite,
    kid: BigInt(b.kid),
    seq: BigInt(b.seq),
    room: b.room,
    sender: b.sender,
    senderKey: fromHex(b.senderKey),
    senderSession: fromHex(b.senderSession),
    recipient: b.recipient,
    recipientKey: fromHex(b.recipientKey),
    recipientSession: fromHex(b.recipientSession),
    baseKey: fromHex(b.baseKey),
  };
}

/**
 * @param {import("/sdk/e2ee/seal.js").OpenedKeyBody} b
 * @returns {HexBody}
 */
function toHexBody(b) {
  return {
    suite: b.suite,
    kid: String(b.kid),
    seq: String(b.seq),
    room: b.room,
    sender: b.sender,
    senderKey: toHex(b.senderKey),
    senderSession: toHex(b.senderSession),
    recipient: b.recipient,
    recipientKey: toHex(b.recipientKey),
    recipientSession: toHex(b.recipientSession),
    baseKey: toHex(b.baseKey),
  };
}

/**
 * Whether a private key can be exported, in how many formats it was, and
 * its usages: the test wants none.
 * @param {CryptoKey} key
 */
async function privateKeyReport(key) {
  let exported = 0;
  for (const format of ["raw", "pkcs8", "jwk"]) {
    if ((await attempt(() => crypto.subtle.exportKey(/** @type {any} */ (format), key))).error === undefined) {
      exported++;
    }
  }
  return { extractable: key.extractable, exported, usages: key.usages, algorithm: key.algorithm.name };
}

/**
 * @typedef {object} TestSession a KeySession with its FrameCrypto and outbox
 * @property {KeySession} keys
 * @property {FrameCrypto} frames
 * @property {{to: string[]|null, msg: object}[]} outbox
 * @property {{sender: string, kid: number, base: string}[]} log
 * @property {HexEvent[]} events membership events (sessions with admission), not yet taken
 */

/**
 * A membership event as TestBrowserGoAdmissionInterop takes it: the key
 * in hex, mismatches with names only.
 * @typedef {object} HexEvent
 * @property {string} kind
 * @property {string} identity
 * @property {string} identityKey
 * @property {string} by
 * @property {{member: string, missing: boolean, onlyTheirs: string[], onlyMine: string[]}[]} mismatches
 */

/**
 * Mismatches with names only.
 * @param {import("/sdk/e2ee/keys.js").RosterMismatch[]} ms
 */
function namedMismatches(ms) {
  return ms.map((m) => ({ member: m.member, missing: m.missing, onlyTheirs: m.onlyTheirs.map((e) => e.name), onlyMine: m.onlyMine.map((e) => e.name) }));
}

/** @type {Map<string, TestSession>} */
const sessions = new Map();

// Admissions and roster views as TestBrowserAdmissionInterop passes them:
// names, rooms and keys in hex (names as their UTF-8 bytes, so that the
// test compares bytes, whatever JSON does to strings), 64-bit integers as
// decimal strings.

const utf8 = new TextEncoder();
const strictUTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** @param {string} h UTF-8 bytes in hex */
function textOf(h) {
  return strictUTF8.decode(fromHex(h));
}

/** @param {string} s */
function hexText(s) {
  return toHex(utf8.encode(s));
}

/**
 * A decimal integer as admit and signRoster take it: a Number when it is
 * a safe integer (the usual case, tested as such), a bigint otherwise.
 * @param {string} d
 * @returns {number|bigint}
 */
function intOf(d) {
  const b = BigInt(d);
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

/**
 * @typedef {object} HexAdmission
 * @property {string} room
 * @property {string} admitter
 * @property {string} [admitterKey] left out: the signer's
 * @property {string} admitted
 * @property {string} admittedKey
 * @property {string} time decimal
 * @property {string} [timeType] "number" or "bigint", as parseAdmission returned it
 */

/**
 * @param {import("/sdk/e2ee/admission.js").Admission} a
 * @returns {HexAdmission}
 */
function toHexAdmission(a) {
  return {
    room: hexText(a.room),
    admitter: hexText(a.admitter),
    admitterKey: toHex(a.admitterKey),
    admitted: hexText(a.admitted),
    admittedKey: toHex(a.admittedKey),
    time: String(a.time),
    timeType: typeof a.time,
  };
}

/**
 * @typedef {{name: string, key: string, keySeq: string}} HexEntry
 * @typedef {{room: string, member: string, memberKey?: string, viewSeq: string, entries: HexEntry[]}} HexView
 */

/** @param {HexEntry} e */
function fromHexEntry(e) {
  return { name: textOf(e.name), key: fromHex(e.key), keySeq: intOf(e.keySeq) };
}

/** @param {{name: string, key: Uint8Array, keySeq: bigint|number}} e */
function toHexEntry(e) {
  return { name: hexText(e.name), key: toHex(e.key), keySeq: String(e.keySeq) };
}

/** @param {string} name */
function session(name) {
  const s = sessions.get(name);
  if (!s) {
    throw new Error(`no session ${name}`);
  }
  return s;
}

const e2eeTest = {
  /**
   * A fresh identity and session key kept under name; its announcement,
   * its keys and session id, and what its private keys allow (they must
   * not be exportable).
   * @param {string} name
   */
  async newIdentity(name) {
    const identity = await Identity.generate();
    const sessionKey = await SessionKey.generate();
    identities.set(name, { identity, sessionKey });
    return {
      announcement: await announce(identity, sessionKey),
      identityKey: toHex(identity.publicKey),
      hpke: toHex(sessionKey.publicKey),
      sessionId: toHex(sessionKey.id),
      identityPrivate: await privateKeyReport(identity.privateKey),
      sessionPrivate: await privateKeyReport(sessionKey.privateKey),
    };
  },

  /**
   * Decrypts frames that Go encrypted under one fixed key.
   * @param {{suite: number, kid: string, base: string, frames: {codec: string, wire: string}[]}} o
   */
  async decryptFrames(o) {
    const fc = new FrameCrypto(o.suite);
    await fc.setReceiveKey("go", BigInt(o.kid), fromHex(o.base));
    const out = [];
    for (const f of o.frames) {
      const r = await attempt(() => fc.decryptFrame("go", codecOf(f.codec), fromHex(f.wire)));
      out.push(r.value ? { data: toHex(r.value.data), kid: String(r.value.header.kid), ctr: String(r.value.header.ctr) } : r);
    }
    return out;
  },

  /**
   * Encrypts frames under one fixed key, the first at counter ctr, audio
   * padded to audioBucket (absent: the default).
   * @param {{suite: number, kid: string, base: string, ctr: string, audioBucket?: number, frames: {codec: string, frame: string}[]}} o
   */
  async encryptFrames(o) {
    const fc = new FrameCrypto(o.suite, { audioBucket: o.audioBucket });
    await fc.setSendKey(BigInt(o.kid), fromHex(o.base));
    /** @type {any} */ (fc).sender.setCounter(BigInt(o.ctr));
    const out = [];
    for (const f of o.frames) {
      const r = await attempt(() => fc.encryptFrame(codecOf(f.codec), fromHex(f.frame)));
      out.push(r.value ? { wire: toHex(r.value) } : r);
    }
    return out;
  },

  /**
   * The frame functions of prefix.js on each input, for comparison with
   * media/e2ee/prefix.go.
   * @param {string[]} inputs hex
   */
  prefixFunctions(inputs) {
    return inputs.map((h) => {
      const b = fromHex(h);
      /** @param {() => Uint8Array|number} f */
      const run = (f) => {
        try {
          const v = f();
          return typeof v === "number" ? String(v) : toHex(v);
        } catch (err) {
          return "error:" + errorKind(err);
        }
      };
      return {
        normalize: toHex(prefix.normalizeAnnexB(b)),
        h264: run(() => prefix.prefixLen(prefix.Codec.H264, b)),
        vp8: run(() => prefix.prefixLen(prefix.Codec.VP8, b)),
        opus: run(() => prefix.prefixLen(prefix.Codec.OPUS, b)),
        escape: toHex(prefix.escapeH264(b)),
        unescape: run(() => prefix.unescapeH264(b)),
      };
    });
  },

  /**
   * padAudio with each bucket and unpadAudio on each input, for
   * comparison with media/e2ee/pad.go.
   * @param {string[]} inputs hex
   * @param {number[]} buckets
   */
  paddingFunctions(inputs, buckets) {
    return inputs.map((h) => {
      const b = fromHex(h);
      let unpad;
      try {
        unpad = toHex(prefix.unpadAudio(b));
      } catch (err) {
        unpad = "error:" + errorKind(err);
      }
      return { pad: buckets.map((n) => toHex(prefix.padAudio(b, n))), unpad };
    });
  },

  /**
   * Feeds frames to a fresh Receiver holding one key, in order, and
   * returns each outcome: "ok" or the SFrameError code.
   * @param {{suite: number, kid: string, base: string, window: number, maxJump: string, metadata: string, frames: string[]}} o
   */
  async replay(o) {
    const r = new sframe.Receiver(o.suite, { window: o.window, maxJump: BigInt(o.maxJump) });
    await r.setKey(BigInt(o.kid), fromHex(o.base));
    const metadata = fromHex(o.metadata);
    const out = [];
    for (const f of o.frames) {
      try {
        await r.decrypt(metadata, fromHex(f));
        out.push("ok");
      } catch (err) {
        out.push(err instanceof sframe.SFrameError ? err.code : String(err));
      }
    }
    return out;
  },

  /**
   * Signs body with the identity kept under signer and seals it to
   * recipientHPKE. forge: sign with signer's key whatever body.senderKey
   * says (a box its claimed sender never made).
   * @param {string} signer
   * @param {string} recipientHPKE hex
   * @param {HexBody} body
   * @param {boolean} [forge]
   */
  async sealKeyBox(signer, recipientHPKE, body, forge = false) {
    const b = fromHexBody(body);
    const id = keysOf(signer).identity;
    const as = forge ? { publicKey: b.senderKey, sign: (/** @type {Uint8Array<ArrayBuffer>} */ d) => id.sign(d) } : id;
    const r = await attempt(async () => toHex(await sealKeyBox(as, fromHex(recipientHPKE), b)));
    return r.value !== undefined ? { box: r.value } : r;
  },

  /**
   * Opens a box with the session key kept under name, verified under
   * senderKey.
   * @param {string} name
   * @param {string} senderKey hex
   * @param {string} box hex
   */
  async openKeyBox(name, senderKey, box) {
    const r = await attempt(() => openKeyBox(keysOf(name).sessionKey, fromHex(senderKey), fromHex(box)));
    return r.value ? { body: toHexBody(r.value) } : r;
  },

  /**
   * A key message of the participant kept under signer, with one box:
   * body sealed to recipientHPKE, under boxes[boxFor] (see sealKeyBox
   * for forge).
   * @param {string} signer
   * @param {number} kid the message's KID
   * @param {string} boxFor
   * @param {string} recipientHPKE hex
   * @param {HexBody} body
   * @param {boolean} [forge]
   */
  async keyMessage(signer, kid, boxFor, recipientHPKE, body, forge = false) {
    const r = await this.sealKeyBox(signer, recipientHPKE, body, forge);
    if (r.box === undefined) {
      throw new Error(`sealing: ${r.message}`);
    }
    return JSON.stringify({ sotto_e2ee: 2, type: "key", kid, boxes: { [boxFor]: base64urlEncode(fromHex(r.box)) } });
  },

  /**
   * The announcement of the keys kept under name.
   * @param {string} name
   */
  announce(name) {
    const k = keysOf(name);
    return announce(k.identity, k.sessionKey);
  },

  /**
   * What parseAnnouncement makes of each string: "ok:" and the identity
   * key, session key and session id in hex, or "error:" and the message.
   * @param {string[]} list
   */
  async parseAnnouncements(list) {
    const out = [];
    for (const s of list) {
      try {
        const a = await parseAnnouncement(s);
        out.push(`ok:${toHex(a.identity)}:${toHex(a.hpke)}:${toHex(a.sessionId)}`);
      } catch (err) {
        out.push(`error:${errorKind(err)}:${/** @type {Error} */ (err).message}`);
      }
    }
    return out;
  },

  /**
   * @param {string} room
   * @param {{identity: string, publicKey: string}[]} members publicKey hex
   */
  safetyNumber(room, members) {
    return safetyNumber(room, members.map((m) => ({ identity: m.identity, publicKey: fromHex(m.publicKey) })));
  },

  /**
   * @param {{identity: string, publicKey: string}} a publicKey hex
   * @param {{identity: string, publicKey: string}} b
   */
  verificationCode(a, b) {
    return verificationCode({ identity: a.identity, publicKey: fromHex(a.publicKey) }, { identity: b.identity, publicKey: fromHex(b.publicKey) });
  },

  /**
   * The skeleton of each name, names and skeletons as the hex of their
   * UTF-8 bytes (so that nothing on the way normalizes or escapes them).
   * @param {string[]} names
   * @returns {string[]}
   */
  skeletons(names) {
    const dec = new TextDecoder("utf-8", { fatal: true });
    const enc = new TextEncoder();
    return names.map((n) => toHex(enc.encode(skeleton(dec.decode(fromHex(n))))));
  },

  /**
   * Starts a key-management session named self, its messages queued in
   * an outbox the test empties, its keys in a FrameCrypto of its own.
   * With admission ({rosterTimeoutMs}), admission by members is on and
   * its events are kept for events().
   * @param {{room: string, self: string, suite?: number, ackTimeoutMs?: number, graceMs?: number, publish?: boolean, admission?: {rosterTimeoutMs?: number}}} o
   */
  async newSession(o) {
    const id = await Identity.generate();
    const sessionKey = await SessionKey.generate();
    identities.set(o.self, { identity: id, sessionKey });
    /** @type {TestSession} */
    const s = /** @type {any} */ ({ outbox: [], log: [], events: [] });
    s.frames = new FrameCrypto(o.suite ?? 4, {
      onInUse: (from, kid) => s.keys.noteInUse(from, kid),
    });
    s.keys = new KeySession({
      room: o.room,
      self: o.self,
      identity: id,
      sessionKey,
      suite: o.suite,
      ackTimeoutMs: o.ackTimeoutMs,
      graceMs: o.graceMs,
      send: (to, msg) => s.outbox.push({ to, msg }),
      keys: s.frames,
      keyLog: (e) => s.log.push({ sender: e.sender, kid: e.kid, base: toHex(e.baseKey) }),
      logger: { info() {}, warn() {}, error: console.error },
      publishing: o.publish,
      admission: o.admission
        ? {
            rosterTimeoutMs: o.admission.rosterTimeoutMs,
            onEvent: (e) =>
              s.events.push({
                kind: e.kind,
                identity: e.identity,
                identityKey: e.identityKey ? toHex(e.identityKey) : "",
                by: e.by,
                mismatches: namedMismatches(e.mismatches),
              }),
          }
        : null,
    });
    sessions.set(o.self, s);
    await s.keys.idle();
    return announce(id, sessionKey);
  },

  /**
   * @param {string} name
   * @param {{identity: string, publicKey: string}[]|null} peers
   */
  setMembers(name, peers) {
    return session(name).keys.setMembers(peers);
  },

  /**
   * Tells session name that peers and count made-up participants
   * ("prefix0", "prefix1", …, each with the announcement publicKey) are
   * the call's members: a ghost flood, made in the page.
   * @param {string} name
   * @param {{identity: string, publicKey: string}[]} peers
   * @param {string} prefix
   * @param {number} count
   * @param {string} publicKey
   */
  setMembersWithGhosts(name, peers, prefix, count, publicKey) {
    const list = [...peers];
    for (let i = 0; i < count; i++) {
      list.push({ identity: `${prefix}${i}`, publicKey });
    }
    return session(name).keys.setMembers(list);
  },

  /**
   * How many members session name counts (each with a usable
   * announcement, a name a box can carry and a replay record).
   * @param {string} name
   */
  async memberCount(name) {
    const s = session(name);
    await s.keys.idle();
    return s.keys.memberKeys().size;
  },

  /**
   * Hands session name msg (JSON) as sent by each of senders made-up
   * participants ("prefix0", …), times times each; the outcomes counted
   * ("ok" or the error's class).
   * @param {string} name
   * @param {string} prefix
   * @param {number} senders
   * @param {number} times
   * @param {string} msg
   */
  async handleFromMany(name, prefix, senders, times, msg) {
    /** @type {Record<string, number>} */
    const out = {};
    for (let i = 0; i < senders; i++) {
      for (let j = 0; j < times; j++) {
        const r = await attempt(() => session(name).keys.handleMessage(`${prefix}${i}`, JSON.parse(msg)));
        const k = r.error === undefined ? "ok" : r.error;
        out[k] = (out[k] ?? 0) + 1;
      }
    }
    return out;
  },

  /**
   * What session name keeps of key messages from senders that are not
   * members: senders, messages, and the characters of their boxes.
   * @param {string} name
   */
  async early(name) {
    const s = session(name);
    await s.keys.idle();
    const early = /** @type {Map<string, {kid: number, boxes: Record<string, string>}[]>} */ (/** @type {any} */ (s.keys).early);
    let messages = 0;
    let boxChars = 0;
    for (const q of early.values()) {
      messages += q.length;
      for (const m of q) {
        for (const b of Object.values(m.boxes)) {
          boxChars += b.length;
        }
      }
    }
    return { senders: early.size, messages, boxChars };
  },

  /**
   * Hands session name a relay message; "ok" or the error's class.
   * @param {string} name
   * @param {string} from
   * @param {string} msg JSON
   */
  async handle(name, from, msg) {
    const r = await attempt(() => session(name).keys.handleMessage(from, JSON.parse(msg)));
    return r.error === undefined ? "ok" : r.error;
  },

  /**
   * Takes session name's queued messages, each as JSON.
   * @param {string} name
   */
  takeOutbox(name) {
    const s = session(name);
    const out = s.outbox.map((m) => ({ to: m.to, msg: JSON.stringify(m.msg) }));
    s.outbox = [];
    return out;
  },

  /** @param {string} name */
  async state(name) {
    const s = session(name);
    await s.keys.idle();
    return { kid: s.keys.kid, sendKID: String(s.frames.sendKID), stats: s.keys.stats(), safetyNumber: await s.keys.safetyNumber(), log: s.log };
  },

  /** @param {string} name */
  startPublishing(name) {
    return session(name).keys.startPublishing();
  },

  /**
   * Encrypts a frame as session name's; like Go's EncryptFrame, this
   * makes it a publisher first.
   * @param {string} name
   * @param {string} codec
   * @param {string} frame hex
   */
  async encrypt(name, codec, frame) {
    await session(name).keys.startPublishing();
    const r = await attempt(() => session(name).frames.encryptFrame(codecOf(codec), fromHex(frame)));
    return r.value ? { wire: toHex(r.value) } : r;
  },

  /**
   * @param {string} name
   * @param {string} from
   * @param {string} codec
   * @param {string} wire hex
   */
  async decrypt(name, from, codec, wire) {
    const r = await attempt(() => session(name).frames.decryptFrame(from, codecOf(codec), fromHex(wire)));
    return r.value ? { data: toHex(r.value.data), kid: Number(r.value.header.kid) } : r;
  },

  /**
   * Waits (up to timeoutMs) until session name holds no key kid of from:
   * the grace period after a newer key came into use is over.
   * @param {string} name
   * @param {string} from
   * @param {number} kid
   * @param {number} timeoutMs
   */
  async waitKeyGone(name, from, kid, timeoutMs) {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const r = /** @type {any} */ (session(name).frames).receivers.get(from);
      if (!r || !r.hasKey(kid)) {
        return true;
      }
      if (performance.now() > deadline) {
        return false;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  },

  /**
   * Whether session name holds a key for kid of participant from.
   * @param {string} name
   * @param {string} from
   * @param {number} kid
   */
  hasKey(name, from, kid) {
    const r = /** @type {any} */ (session(name).frames).receivers.get(from);
    return !!r && r.hasKey(kid);
  },

  /**
   * What session name holds of participant from: the KIDs of its keys
   * (oldest first), the KID a frame last decrypted under (inUse), whether
   * the older keys' grace period is running (expiring: they are dropped
   * when it ends), and the highest sequence number taken from it. null
   * when from is not a member.
   * @param {string} name
   * @param {string} from
   */
  async keyState(name, from) {
    const s = session(name);
    await s.keys.idle();
    const r = /** @type {any} */ (s.keys).members.get(from);
    if (!r) {
      return null;
    }
    return {
      kids: r.keys.map((/** @type {{kid: number}} */ k) => k.kid),
      inUse: r.inUse,
      expiring: r.expiry !== null,
      highest: String(r.rec.highest),
    };
  },

  /**
   * Keeps, under name, the identity whose Ed25519 private key is seed (a
   * leaked one: what a thief who read a participant's identity store can
   * sign with), its public key publicKey, with a fresh session key: all a
   * thief can make of that, as the identity key does not give the session
   * key. Rejects a seed that is not publicKey's (Identity.fromKeys signs a
   * probe).
   * @param {string} name
   * @param {string} seed hex, 32 bytes
   * @param {string} publicKey hex, 32 bytes
   */
  async importIdentity(name, seed, publicKey) {
    // PKCS #8 of an Ed25519 private key (RFC 8410): a fixed prefix, then
    // the 32-byte seed.
    const pkcs8 = new Uint8Array([...fromHex("302e020100300506032b657004220420"), ...fromHex(seed)]);
    const priv = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
    pkcs8.fill(0);
    const identity = await Identity.fromKeys(priv, fromHex(publicKey));
    identities.set(name, { identity, sessionKey: await SessionKey.generate() });
    return toHex(identity.publicKey);
  },

  /**
   * Whether each store copies keys in and out (Go's
   * TestKnownKeyAliasesTheStore): for the MemoryStore, an IndexedDBStore
   * (database dbName, deleted after) and a store that hands out the very
   * arrays it keeps, whatever is done to a key handed in to remember, out
   * of known, or out of checkKey's "changed" answer, the key the store
   * pins for that person stays the same. Lists what changed it.
   * @param {string} dbName
   */
  async storeCopies(dbName) {
    const bob = crypto.getRandomValues(new Uint8Array(32));
    const other = crypto.getRandomValues(new Uint8Array(32));
    /** @type {Map<string, import("/sdk/e2ee/store.js").KnownKey>} */
    const kept = new Map();
    const leaky = {
      identity: () => Identity.generate(),
      known: async (/** @type {string} */ p) => kept.get(p) ?? null,
      remember: async (/** @type {string} */ p, /** @type {import("/sdk/e2ee/store.js").KnownKey} */ k) => void kept.set(p, k),
      knownNames: async () => [...kept.keys()],
    };
    const idb = await IndexedDBStore.open(dbName);
    /** @type {string[]} */
    const failures = [];
    try {
      for (const [what, st] of /** @type {[string, import("/sdk/e2ee/store.js").IdentityStore][]} */ ([["memory", new MemoryStore()], ["indexeddb", idb], ["leaky", leaky]])) {
        const pinned = () => st.known("bob").then((k) => !!k && k.key.every((x, i) => x === bob[i]));
        if ((await checkKey(st, "bob", bob.slice())).trust !== "new") {
          failures.push(`${what}: first sight not new`);
        }
        const { trust, known } = await checkKey(st, "bob", other);
        if (trust !== "changed" || !known) {
          failures.push(`${what}: another key not changed`);
          continue;
        }
        known.key.fill(0); // e.g. an application wiping what it showed
        if (!(await pinned())) {
          failures.push(`${what}: changing checkKey's answer changed the pinned key`);
        }
        if (what === "leaky") {
          continue; // its known and remember are the application's own
        }
        const k = await st.known("bob");
        k?.key.fill(1);
        if (!(await pinned())) {
          failures.push(`${what}: changing what known returned changed the pinned key`);
        }
        const given = { key: other.slice(), verified: false, firstSeen: new Date() };
        await st.remember("carol", given);
        given.key.fill(2);
        const c = await st.known("carol");
        if (!c || !c.key.every((x, i) => x === other[i])) {
          failures.push(`${what}: changing the key handed to remember changed the stored one`);
        }
      }
    } finally {
      idb.close();
      await new Promise((resolve) => {
        const req = indexedDB.deleteDatabase(dbName);
        req.onsuccess = req.onerror = req.onblocked = () => resolve(undefined);
      });
    }
    return failures;
  },

  /**
   * Session name's sender tag and the count it draws next, when the
   * random number generator yields draws first (-1: the session's tag at
   * the start), then real ones.
   * @param {string} name
   * @param {number[]} draws
   * @param {number} count
   */
  tagsDrawn(name, draws, count) {
    const ks = /** @type {any} */ (session(name).keys);
    const real = crypto.getRandomValues.bind(crypto);
    const queue = draws.map((d) => (d === -1 ? ks.tag : d));
    /** @type {any} */ (crypto).getRandomValues = (/** @type {any} */ a) => {
      if (a instanceof Uint32Array && a.length === 1 && queue.length > 0) {
        a[0] = /** @type {number} */ (queue.shift());
        return a;
      }
      return real(a);
    };
    try {
      const out = [ks.tag];
      for (let i = 0; i < count; i++) {
        ks.newTag();
        out.push(ks.tag);
      }
      return out;
    } finally {
      /** @type {any} */ (crypto).getRandomValues = real;
    }
  },

  /**
   * Signs an admission as the identity kept under signer: {value: text},
   * or {error, message}.
   * @param {string} signer
   * @param {HexAdmission} a
   */
  admit(signer, a) {
    return attempt(async () => {
      /** @type {import("/sdk/e2ee/admission.js").AdmissionInput} */
      const input = {
        room: textOf(a.room),
        admitter: textOf(a.admitter),
        admitted: textOf(a.admitted),
        admittedKey: fromHex(a.admittedKey),
        time: intOf(a.time),
      };
      if (a.admitterKey !== undefined) {
        input.admitterKey = fromHex(a.admitterKey);
      }
      return admit(keysOf(signer).identity, input);
    });
  },

  /**
   * Parses each admission: {value: HexAdmission}, or {error, message}.
   * @param {string[]} list
   */
  async parseAdmissions(list) {
    const out = [];
    for (const s of list) {
      out.push(await attempt(async () => toHexAdmission(await parseAdmission(s))));
    }
    return out;
  },

  /**
   * Parses admission text, then checks it against each case: {} when
   * checkAdmission takes it, {error, message} otherwise. now and maxAge
   * are decimal: with a ".", passed as a Number (fractions of a
   * millisecond), else as a bigint; "NaN" and "Infinity" as Numbers.
   * @param {string} text
   * @param {{room: string, now: string, maxAge: string}[]} cases
   */
  async checkAdmissions(text, cases) {
    const a = await parseAdmission(text);
    /** @param {string} d */
    const num = (d) => (/^-?\d+$/.test(d) ? BigInt(d) : Number(d));
    return Promise.all(cases.map((c) => attempt(() => void checkAdmission(a, textOf(c.room), num(c.now), num(c.maxAge)))));
  },

  /**
   * Signs a roster view as the identity kept under signer: {value: text},
   * or {error, message}.
   * @param {string} signer
   * @param {HexView} v
   */
  signRoster(signer, v) {
    return attempt(async () => {
      /** @type {import("/sdk/e2ee/roster.js").RosterView} */
      const view = { room: textOf(v.room), member: textOf(v.member), viewSeq: intOf(v.viewSeq), entries: v.entries.map(fromHexEntry) };
      if (v.memberKey !== undefined) {
        view.memberKey = fromHex(v.memberKey);
      }
      return signRoster(keysOf(signer).identity, view);
    });
  },

  /**
   * Parses each roster view: {value: HexView}, or {error, message}.
   * @param {string[]} list
   */
  async parseRosters(list) {
    const out = [];
    for (const s of list) {
      out.push(
        await attempt(async () => {
          const v = await parseRoster(s);
          if (typeof v.viewSeq !== "bigint" || v.entries.some((e) => typeof e.keySeq !== "bigint")) {
            throw new Error("parseRoster returned a sequence number that is not a bigint");
          }
          return { room: hexText(v.room), member: hexText(v.member), memberKey: toHex(v.memberKey), viewSeq: String(v.viewSeq), entries: v.entries.map(toHexEntry) };
        }),
      );
    }
    return out;
  },

  /**
   * diffRosters and sameParticipants (both ways) of each pair of entry
   * lists.
   * @param {{a: HexEntry[], b: HexEntry[]}[]} pairs
   */
  diffRosters(pairs) {
    return pairs.map((p) => {
      const a = { entries: p.a.map(fromHexEntry) };
      const b = { entries: p.b.map(fromHexEntry) };
      const before = JSON.stringify([p.a, p.b]);
      const { onlyA, onlyB } = diffRosters(a, b);
      const out = { same: sameParticipants(a, b), sameSwapped: sameParticipants(b, a), onlyA: onlyA.map(toHexEntry), onlyB: onlyB.map(toHexEntry) };
      // The results are copies: changing them changes neither view.
      for (const e of [...onlyA, ...onlyB]) {
        e.key.fill(0);
      }
      return { ...out, untouched: JSON.stringify([a.entries.map(toHexEntry), b.entries.map(toHexEntry)]) === before };
    });
  },

  /**
   * Takes session name's membership events.
   * @param {string} name
   */
  async events(name) {
    const s = session(name);
    await s.keys.idle();
    const out = s.events;
    s.events = [];
    return out;
  },

  /**
   * Session name admits identity: "ok" or the error's class.
   * @param {string} name
   * @param {string} identity
   */
  async admitParticipant(name, identity) {
    const r = await attempt(() => session(name).keys.admit(identity));
    return r.error === undefined ? "ok" : r.error;
  },

  /**
   * Session name refuses identity: "ok" or the error's class.
   * @param {string} name
   * @param {string} identity
   */
  async refuseParticipant(name, identity) {
    const r = await attempt(() => session(name).keys.refuse(identity));
    return r.error === undefined ? "ok" : r.error;
  },

  /**
   * The participants as session name sees them, keys in hex.
   * @param {string} name
   */
  async participants(name) {
    const s = session(name);
    await s.keys.idle();
    return s.keys.participants().map((p) => ({ ...p, identityKey: toHex(p.identityKey) }));
  },

  /**
   * Session name's roster status, mismatches with names only.
   * @param {string} name
   */
  async rosterStatus(name) {
    const s = session(name);
    await s.keys.idle();
    const st = s.keys.rosterStatus();
    return { ...st, mismatches: namedMismatches(st.mismatches) };
  },

  /**
   * Session name joins again, as after a reconnect.
   * @param {string} name
   */
  rejoin(name) {
    return session(name).keys.rejoin();
  },

  /** @param {string} name */
  close(name) {
    session(name).keys.close();
    sessions.delete(name);
  },

  sframe,
};

/** @type {any} */ (window).e2eeTest = e2eeTest;
