// @ts-check
// The page of TestBrowserE2EELoopback: two RTCPeerConnections in one page,
// the fake camera and microphone sent from the first to the second, with
// an E2EE on each side ("alice" sends, "bob" receives) that exchange key
// messages directly, as signaling's relay would. The Go test starts a
// call with window.loopback.start(...) and polls window.loopback.state().
// Admission by members is on in every E2EE: alice joins first (the first
// member), then bob, whom alice admits (the admission option).

import { E2EE, MemoryStore } from "/sdk/e2ee/index.js";
import { Identity, equalBytes, parseAnnouncement } from "/sdk/e2ee/identity.js";

/**
 * @typedef {object} LoopbackOptions
 * @property {"script"|"streams"} transform how frames reach the E2EE worker
 * @property {string} codec the video codec: "VP8" or "H264"
 * @property {boolean} deny bob drops every key message (denyKeysForTest)
 */

/**
 * @typedef {object} Loopback one call in the page
 * @property {E2EE} alice
 * @property {E2EE} bob
 * @property {Identity} aliceIdentity the identity alice was given, as a page that kept it would
 * @property {RTCPeerConnection} pc1 alice's, sending
 * @property {RTCPeerConnection} pc2 bob's, receiving
 * @property {MediaStream} stream
 * @property {{identity: string, state: string}[]} states bob's statechange events
 * @property {Record<string, string>} numbers the last safety number each announced
 * @property {number} relayed key messages delivered
 * @property {Set<string>} present who is in the call: relays go only to them, as the server's
 */

/** @type {Loopback|null} */
let current = null;

/**
 * Relays key messages from one E2EE to the other, through JSON as the
 * server would carry them, asynchronously, if the other is in the call
 * when the message is sent.
 * @param {string} from
 * @param {() => E2EE} to
 * @param {string} toName
 */
function relay(from, to, toName) {
  /** @type {(recipients: string[]|null, data: object) => void} */
  return (recipients, data) => {
    if ((recipients !== null && !recipients.includes(toName)) || !current?.present.has(toName)) {
      return;
    }
    const text = JSON.stringify(data);
    setTimeout(() => {
      if (current) {
        current.relayed++;
        if (!to().handleRelay(from, JSON.parse(text))) {
          console.error("a key message was not taken as one", text);
        }
      }
    }, 0);
  };
}

/** The video codecs this browser can send (each once). */
function sendCodecs() {
  const caps = RTCRtpSender.getCapabilities("video");
  return [...new Set((caps ? caps.codecs : []).map((c) => c.mimeType))];
}

/**
 * Starts a call. Resolves once negotiated; media flows after.
 * @param {LoopbackOptions} o
 */
async function start(o) {
  if (current) {
    stop();
  }
  const codecs = sendCodecs();
  if (!codecs.some((c) => c.toLowerCase() === `video/${o.codec.toLowerCase()}`)) {
    // The Go test fails on this: it never skips a codec.
    return { unsupported: `this browser cannot send video/${o.codec}; it sends ${codecs.join(", ")}` };
  }
  const aliceIdentity = await Identity.generate();
  const alice = await E2EE.create({ transform: o.transform, identity: aliceIdentity, admission: () => "admit" });
  // Every call of this page makes a new alice: bob keeps what he knows in
  // memory, so he meets her afresh (this origin's IndexedDB store would
  // hold the alice of an earlier call and refuse the new one's key).
  const bob = await E2EE.create({ transform: o.transform, store: new MemoryStore(), admission: () => "admit" });
  bob.denyKeysForTest = o.deny;
  const pc1 = new RTCPeerConnection({ ...alice.rtcConfiguration() });
  const pc2 = new RTCPeerConnection({ ...bob.rtcConfiguration() });
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240, frameRate: 15 } });
  /** @type {Loopback} */
  const lb = { alice, bob, aliceIdentity, pc1, pc2, stream, states: [], numbers: {}, relayed: 0, present: new Set(["alice"]) };
  current = lb;
  bob.addEventListener("statechange", (e) => lb.states.push(/** @type {CustomEvent} */ (e).detail));
  for (const [name, e] of /** @type {const} */ ([["alice", alice], ["bob", bob]])) {
    e.addEventListener("safetynumber", (ev) => {
      lb.numbers[name] = /** @type {CustomEvent} */ (ev).detail.number;
    });
  }

  // alice is alone in the call: its first member. Then bob joins, and
  // alice admits him.
  const aliceAdmitted = new Promise((resolve) => alice.addEventListener("selfadmitted", resolve, { once: true }));
  alice.start({ room: "loopback", self: "alice", send: relay("alice", () => bob, "bob") });
  alice.setMembers([]);
  await aliceAdmitted;
  lb.present.add("bob");
  bob.start({ room: "loopback", self: "bob", send: relay("bob", () => alice, "alice") });
  bob.setMembers([{ identity: "alice", publicKey: alice.publicKey }]);
  alice.setMembers([{ identity: "bob", publicKey: bob.publicKey }]);

  pc1.onicecandidate = (e) => e.candidate && pc2.addIceCandidate(e.candidate);
  pc2.onicecandidate = (e) => e.candidate && pc1.addIceCandidate(e.candidate);
  pc2.ontrack = (e) => {
    // The track's kind is its sid here.
    bob.attachReceiver(e.receiver, "alice", e.track.kind);
    if (e.track.kind === "video") {
      const v = document.createElement("video");
      v.muted = true;
      v.autoplay = true;
      v.srcObject = new MediaStream([e.track]);
      document.body.append(v);
    }
  };
  for (const track of stream.getTracks()) {
    const tr = pc1.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    alice.attachSender(tr.sender);
    if (track.kind === "video") {
      const caps = /** @type {RTCRtpCapabilities} */ (RTCRtpReceiver.getCapabilities("video"));
      const want = `video/${o.codec}`.toLowerCase();
      tr.setCodecPreferences([
        ...caps.codecs.filter((c) => c.mimeType.toLowerCase() === want),
        ...caps.codecs.filter((c) => c.mimeType.toLowerCase() !== want),
      ]);
    }
  }
  await pc1.setLocalDescription();
  await pc2.setRemoteDescription(/** @type {RTCSessionDescription} */ (pc1.localDescription));
  await pc2.setLocalDescription();
  await pc1.setRemoteDescription(/** @type {RTCSessionDescription} */ (pc2.localDescription));
  return { transformMode: alice.transformMode, rtcConfiguration: alice.rtcConfiguration() };
}

/** What the Go test checks, now. */
async function state() {
  const lb = current;
  if (!lb) {
    return null;
  }
  /** @type {Record<string, any>} */
  const inbound = {};
  /** @type {Record<string, any>} */
  const outbound = {};
  const sent = await lb.pc1.getStats();
  sent.forEach((s) => {
    if (s.type === "outbound-rtp") {
      outbound[s.kind] = {
        framesEncoded: s.framesEncoded ?? 0,
        encoderImplementation: s.encoderImplementation ?? "",
        codec: s.codecId ? sent.get(s.codecId)?.mimeType : undefined,
      };
    }
  });
  const report = await lb.pc2.getStats();
  report.forEach((s) => {
    if (s.type === "inbound-rtp") {
      inbound[s.kind] = {
        framesDecoded: s.framesDecoded ?? 0,
        packetsReceived: s.packetsReceived ?? 0,
        totalSamplesReceived: s.totalSamplesReceived ?? 0,
        decoderImplementation: s.decoderImplementation ?? "",
        codec: s.codecId ? report.get(s.codecId)?.mimeType : undefined,
      };
    }
  });
  return {
    video: lb.bob.trackStats("video"),
    audio: lb.bob.trackStats("audio"),
    sent: lb.alice.sendStats(),
    bobSees: lb.bob.participantState("alice"),
    states: lb.states,
    aliceStats: lb.alice.stats(),
    bobStats: lb.bob.stats(),
    numbers: lb.numbers,
    relayed: lb.relayed,
    rosters: { alice: lb.alice.rosterStatus(), bob: lb.bob.rosterStatus() },
    inbound,
    outbound,
  };
}

/**
 * Whether alice announces the identity she was given and bob holds it,
 * and the verification code each computes of the other.
 */
async function identities() {
  const lb = /** @type {Loopback} */ (current);
  const announced = await parseAnnouncement(lb.alice.publicKey);
  return {
    aliceAnnouncesHers: lb.alice.identity === lb.aliceIdentity && equalBytes(announced.identity, lb.aliceIdentity.publicKey),
    bobHoldsHers: equalBytes(lb.bob.memberKeys().get("alice") ?? new Uint8Array(0), lb.aliceIdentity.publicKey),
    codes: { alice: await lb.alice.verificationCode("bob"), bob: await lb.bob.verificationCode("alice") },
    unknown: await lb.bob.verificationCode("nobody"),
  };
}

/**
 * A reconnect of alice, as the SDK does it: bob sees her leave and come
 * back with the same key (and admits her again on his own, having
 * admitted her before); alice starts again with a new relay, waiting to
 * be admitted, bob already in the call.
 */
function reconnectAlice() {
  const lb = /** @type {Loopback} */ (current);
  lb.bob.setMembers([]);
  lb.alice.start({ room: "loopback", self: "alice", send: relay("alice", () => lb.bob, "bob") });
  lb.bob.setMembers([{ identity: "alice", publicKey: lb.alice.publicKey }]);
  lb.alice.setMembers([{ identity: "bob", publicKey: lb.bob.publicKey }]);
}

/** Ends the call. */
function stop() {
  const lb = current;
  current = null;
  if (!lb) {
    return;
  }
  lb.pc1.close();
  lb.pc2.close();
  lb.stream.getTracks().forEach((t) => t.stop());
  lb.alice.close();
  lb.bob.close();
  document.querySelectorAll("video").forEach((v) => v.remove());
}

/** @type {any} */ (window).loopback = { start, state, identities, reconnectAlice, stop };
