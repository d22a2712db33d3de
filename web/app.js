// The call page: a person picks a room, a name, a camera and a microphone,
// joins, and sees and hears the others, with each one's end-to-end
// encryption state and the call's safety number. Everything that talks to
// the node is the SDK (sdk/index.js); this file is the page around it.
//
// URL modes:
//   /?room=R&name=N       (development node) fetch /dev/token and join at once
//   /?room=R&token=T      join at once with that token
//   /?room=R&autojoin=1   pick a name "guest-NNNN" and join at once (two tabs: two people)
//   /                     the form
//
// Tests read the page without pixels: window.sotto = {call, state}, tiles
// with data-identity, data-e2ee-state, data-speaking and data-video, the
// safety number in #safety-number, the people it covers in #safety-covers
// (data-covered, data-verified), and a changed security key in the
// #key-changed dialog (data-person, data-key: the new key it shows, which
// its Accept button accepts, and no other; data-looks-like: the known
// person a new name looks like). Names from the server are shown with
// their invisible characters made visible (⟨U+200B⟩); data attributes and
// state keep them as they came. Test-only URL flags (test-video=WxH,
// test-fps=N, test-media=none, test-deny-keys=1) are honoured only when a test harness set
// window.sottoTestMode = true before the page loaded (DevTools'
// addScriptToEvaluateOnNewDocument); a link cannot turn them on.

import * as Sotto from "./sdk/index.js";

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * A name from the server as the page shows it: every invisible or control
 * character (general category Cf or Cc: a zero-width space, a direction
 * override) written out as ⟨U+XXXX⟩, so that "bob" and "bob" with a
 * zero-width space after it do not look the same. Only for display.
 */
function shownName(name) {
  return String(name).replace(/[\p{Cf}\p{Cc}]/gu,
    (c) => `⟨U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}⟩`);
}

const NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

const params = new URLSearchParams(location.search);
const testMode = globalThis.sottoTestMode === true;
const test = {
  denyKeys: testMode && params.get("test-deny-keys") === "1",
  video: testMode ? parseSize(params.get("test-video")) : null,
  fps: testMode ? Number(params.get("test-fps")) || 0 : 0,
  noMedia: testMode && params.get("test-media") === "none",
};

/**
 * What the page shows, for people (through the DOM) and tests (through
 * window.sotto.state). Updated in place.
 */
const state = {
  /** "lobby" | "joining" | "in-call" | "ended" */
  phase: "lobby",
  room: "",
  identity: "",
  /** the SDK's connection state, or "idle" */
  connection: "idle",
  /** every connection state of this page so far, in order */
  connectionHistory: [],
  /** {code, message} of the last error shown, or null */
  error: null,
  safetyNumber: "",
  /** the identities the shown safety number covers, sorted */
  safetyParticipants: [],
  /**
   * the people the shown safety number covers, as the SDK lists them:
   * [{identity, verified, self, key (the identity key covered, hex)}]
   */
  safetyCovers: [],
  /** identity → the verification code shown for each other person covered */
  verificationCodes: Object.create(null),
  /**
   * changed security keys waiting for the person's choice, oldest first:
   * [{identity, wasVerified, key (the new key, hex), looksLike (the known
   * person a new name looks like, or ""), again (it replaced an earlier
   * warning for the same person)}]
   */
  keyChanges: [],
  /**
   * participants whose security key this browser's store could not check,
   * held out of the call's keys: [{identity, error}]
   */
  keyCheckFailures: [],
  /**
   * identity → {e2ee, speaking, video, audioMuted, videoMuted}. No
   * prototype: names come from the server, and "__proto__" is a name.
   */
  participants: Object.create(null),
  self: { speaking: false, audioMuted: false, videoMuted: false, hasAudio: false, hasVideo: false },
  /** media the page could not get: "" or a sentence */
  mediaProblem: "",
  test,
};
window.sotto = { call: null, state };

// ---- local media ---------------------------------------------------------------

/** The camera and microphone tracks of this page, for preview and publishing. */
const local = {
  /** @type {MediaStreamTrack | null} */ audio: null,
  /** @type {MediaStreamTrack | null} */ video: null,
  /** the devices chosen in the form: "" none, null the default */
  cameraId: /** @type {string | null} */ (null),
  micId: /** @type {string | null} */ (null),
  skip: test.noMedia,
};

function videoConstraints(deviceId) {
  const c = test.video
    ? { width: { ideal: test.video.width }, height: { ideal: test.video.height } }
    : { width: { ideal: 640 }, height: { ideal: 480 } };
  c.frameRate = { ideal: test.fps || 24 };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

function audioConstraints(deviceId) {
  const c = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

/**
 * Gets the camera and microphone chosen (either may be refused or absent:
 * the other is still taken). Sets state.mediaProblem to what went wrong,
 * in words.
 */
async function acquireMedia() {
  stopLocal();
  state.mediaProblem = "";
  if (local.skip) return;
  const wantVideo = local.cameraId !== "";
  const wantAudio = local.micId !== "";
  if (!wantVideo && !wantAudio) return;
  const md = navigator.mediaDevices;
  if (!md?.getUserMedia) {
    state.mediaProblem = "This browser cannot use a camera or microphone here (the page must be opened over https).";
    return;
  }
  /** @type {unknown[]} */
  const errors = [];
  try {
    const s = await md.getUserMedia({
      video: wantVideo ? videoConstraints(local.cameraId) : false,
      audio: wantAudio ? audioConstraints(local.micId) : false,
    });
    local.video = s.getVideoTracks()[0] ?? null;
    local.audio = s.getAudioTracks()[0] ?? null;
  } catch (err) {
    errors.push(err);
    // One device may be missing or busy: take the other alone, unless
    // the person (or the browser) refused both.
    if (!isDenied(err)) {
      if (wantAudio) {
        try { local.audio = (await md.getUserMedia({ audio: audioConstraints(local.micId) })).getAudioTracks()[0] ?? null; }
        catch (e) { errors.push(e); }
      }
      if (wantVideo) {
        try { local.video = (await md.getUserMedia({ video: videoConstraints(local.cameraId) })).getVideoTracks()[0] ?? null; }
        catch (e) { errors.push(e); }
      }
    }
  }
  if (errors.length && !(local.audio && local.video)) {
    state.mediaProblem = describeMediaError(errors[errors.length - 1], !!local.audio, !!local.video);
  }
}

function stopLocal() {
  local.audio?.stop();
  local.video?.stop();
  local.audio = local.video = null;
}

function isDenied(err) {
  return err instanceof DOMException && (err.name === "NotAllowedError" || err.name === "SecurityError");
}

function describeMediaError(err, haveAudio, haveVideo) {
  const missing = !haveAudio && !haveVideo ? "camera and microphone" : haveAudio ? "camera" : "microphone";
  const name = err instanceof DOMException ? err.name : "";
  switch (name) {
    case "NotAllowedError":
    case "SecurityError":
      return `Your browser is not letting this page use your ${missing}. Allow it (usually with the ` +
        "camera icon in the address bar) and choose “Try again”, or join without it: you will still " +
        "see and hear the others.";
    case "NotFoundError":
    case "OverconstrainedError":
      return `No ${missing} was found. You can join without it and still see and hear the others.`;
    case "NotReadableError":
    case "AbortError":
      return `Your ${missing} is in use by another program or could not start. Close the other ` +
        "program and choose “Try again”, or join without it.";
    default:
      return `Your ${missing} could not be used (${err instanceof Error ? err.message : String(err)}).`;
  }
}

async function fillDeviceLists() {
  if (!navigator.mediaDevices?.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind, current, noneLabel) => {
    const chosen = current?.getSettings().deviceId ?? select.value;
    select.replaceChildren(new Option(noneLabel, ""));
    let n = 0;
    for (const d of devices) {
      if (d.kind !== kind || !d.deviceId) continue;
      n++;
      select.add(new Option(d.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${n}`, d.deviceId));
    }
    if (chosen && [...select.options].some((o) => o.value === chosen)) select.value = chosen;
    else if (current === null && local[kind === "videoinput" ? "cameraId" : "micId"] === "") select.value = "";
    else if (select.options.length > 1 && current) select.selectedIndex = 1;
  };
  fill($("camera"), "videoinput", local.video, "No camera");
  fill($("microphone"), "audioinput", local.audio, "No microphone");
}

function showPreview() {
  const v = /** @type {HTMLVideoElement} */ ($("preview"));
  v.srcObject = local.video ? new MediaStream([local.video]) : null;
  $("preview-empty").hidden = !!local.video;
  const box = $("media-problem");
  box.hidden = !state.mediaProblem;
  $("media-problem-text").textContent = state.mediaProblem;
}

// ---- joining -------------------------------------------------------------------

/** @type {{room: string, identity: string, token: string} | null} */
let lastJoin = null;
/** @type {Sotto.Call | null} */
let call = null;

/**
 * A token for the join: the one given, or one from the development node's
 * /dev/token (fetched anew for every connect and reconnect).
 */
function tokenSource(room, identity, token) {
  if (token) return token;
  return async () => {
    let res;
    try {
      res = await fetch(`/dev/token?room=${encodeURIComponent(room)}&identity=${encodeURIComponent(identity)}`,
        { cache: "no-store" });
    } catch (err) {
      throw new Sotto.SottoError("connection_lost", `cannot reach the server: ${err}`);
    }
    if (res.status === 404) {
      throw new Sotto.SottoError("no_dev_token", "this server does not hand out tokens for names");
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok || !body.token) {
      throw new Sotto.SottoError(res.status === 400 ? "bad_name" : "token_unavailable",
        body.error || `the server answered ${res.status}`);
    }
    return body.token;
  };
}

async function join({ room, identity, token }) {
  lastJoin = { room, identity, token };
  state.room = room;
  state.identity = identity;
  state.error = null;
  state.phase = "joining";
  setConnection("connecting", null);
  $("room-label").hidden = false;
  $("room-label").textContent = `Room ${room}`;
  document.title = `${room} · Sotto`;

  if (!local.audio && !local.video && !local.skip) await acquireMedia();

  let e2ee = true;
  if (test.denyKeys) {
    e2ee = await Sotto.E2EE.create();
    e2ee.denyKeysForTest = true;
  }
  let c;
  try {
    c = await Sotto.connect(location.origin, { token: tokenSource(room, identity, token), room, e2ee });
  } catch (err) {
    stopLocal();
    showEnded(err, false);
    return;
  }
  call = c;
  window.sotto.call = c;
  state.identity = c.self.identity;
  state.participants = Object.create(null);
  state.keyChanges = [];
  state.keyCheckFailures = [];
  wireCall(c);
  showCall(c);
  setConnection(c.state, null);

  await publishLocal(c);
  void refreshSafetyNumber();
}

async function publishLocal(c) {
  const jobs = [];
  if (local.audio) jobs.push(c.publish(local.audio, { source: "microphone" }));
  if (local.video) jobs.push(c.publish(local.video, { source: "camera" }));
  const results = await Promise.allSettled(jobs);
  const refused = results.find((r) => r.status === "rejected");
  if (refused && c === call) {
    const err = /** @type {PromiseRejectedResult} */ (refused).reason;
    showBanner(err?.code === "permission_denied"
      ? "Your invitation lets you see and hear the others, but not send your camera or microphone."
      : `Your camera or microphone could not be sent: ${describeError(err)}`);
  } else if (state.mediaProblem) {
    showBanner(state.mediaProblem.replace(/ and choose “Try again”,| You can join without it and/, "."));
  }
  updateControls();
}

function micPub() { return call?.publications.find((p) => p.source === "microphone") ?? null; }
function cameraPub() { return call?.publications.find((p) => p.source === "camera") ?? null; }

// ---- the call's events ------------------------------------------------------------

function wireCall(c) {
  const on = (type, fn) => c.addEventListener(type, (ev) => { if (c === call) fn(ev.detail); });
  on("participantjoined", ({ participant }) => {
    ensureTile(participant.identity, false);
    setTileE2EE(participant.identity, c.e2eeState(participant.identity) ?? "waiting");
    void refreshSafetyNumber();
  });
  on("participantleft", ({ participant }) => {
    removeTile(participant.identity);
    void refreshSafetyNumber();
  });
  on("track", ({ track, info, participant }) => {
    const t = ensureTile(participant.identity, false);
    if (info.kind === "video") {
      t.videoSid = info.sid;
      t.video.srcObject = new MediaStream([track]);
      setTileVideo(participant.identity, !info.muted);
    } else {
      t.audioSid = info.sid;
      t.audio.srcObject = new MediaStream([track]);
      t.audio.play().catch(() => offerSound());
      setTileMic(participant.identity, info.muted);
    }
  });
  on("trackpublished", ({ info, participant, local: mine }) => {
    if (mine) return;
    ensureTile(participant.identity, false);
    if (info.kind === "audio") setTileMic(participant.identity, info.muted);
  });
  on("trackunpublished", ({ info, participant, local: mine }) => {
    const t = tiles.get(mine ? SELF : participant.identity);
    if (!t || mine) return;
    if (info.kind === "video" && t.videoSid === info.sid) {
      t.video.srcObject = null;
      t.videoSid = "";
      setTileVideo(participant.identity, false);
    } else if (info.kind === "audio" && t.audioSid === info.sid) {
      t.audio.srcObject = null;
      t.audioSid = "";
    }
  });
  on("trackmuted", ({ info, participant, local: mine, muted }) => {
    if (mine) return;
    if (info.kind === "video") setTileVideo(participant.identity, !muted && !!tiles.get(participant.identity)?.videoSid);
    else setTileMic(participant.identity, muted);
  });
  on("speaking", ({ identity, speaking }) => {
    const key = identity === c.self.identity ? SELF : identity;
    const t = tiles.get(key);
    if (t) t.el.dataset.speaking = String(speaking);
    if (key === SELF) state.self.speaking = speaking;
    else if (state.participants[identity]) state.participants[identity].speaking = speaking;
  });
  on("e2eestate", ({ identity, state: s }) => setTileE2EE(identity, s));
  on("safetynumber", () => void refreshSafetyNumber());
  on("keychanged", (kc) => {
    noteKeyChange(kc);
    void refreshSafetyNumber();
  });
  on("keycheckfailed", () => {
    renderKeyCheckFailures();
    void refreshSafetyNumber();
  });
  on("connectionstate", ({ state: s, error }) => {
    setConnection(s, error);
    if (s === "connected") {
      hideBanner();
      renderKeyCheckFailures();
      void refreshSafetyNumber();
    }
    if (s === "disconnected") {
      stopLocal();
      if (error) showEnded(error, true);
    }
  });
  on("error", ({ error }) => console.warn("sotto:", error?.code, error?.message));
  for (const kc of c.pendingKeyChanges()) noteKeyChange(kc);
}

function setConnection(s, error) {
  state.connection = s;
  state.connectionHistory.push(s);
  switch (s) {
    case "connecting":
      setStatus(s, "Connecting…");
      break;
    case "connected":
      state.phase = "in-call";
      refreshCallStatus();
      break;
    case "reconnecting":
      setStatus(s, "Connection lost, reconnecting…");
      showBanner(`The connection to the server was lost. Reconnecting…${error ? ` (${describeError(error)})` : ""}`);
      break;
    case "disconnected":
      setStatus(s, "Disconnected");
      break;
  }
}

// ---- tiles ---------------------------------------------------------------------

// The own tile's key: a symbol, which no name from the server can equal.
const SELF = Symbol("self");
/** @type {Map<string | symbol, {el: HTMLElement, video: HTMLVideoElement, audio: HTMLAudioElement, videoSid: string, audioSid: string}>} */
const tiles = new Map();

function ensureTile(identity, self) {
  const key = self ? SELF : identity;
  let t = tiles.get(key);
  if (t) return t;
  const frag = /** @type {HTMLTemplateElement} */ ($("tile-template")).content.cloneNode(true);
  const el = /** @type {HTMLElement} */ (/** @type {DocumentFragment} */ (frag).firstElementChild);
  el.dataset.identity = identity;
  if (self) el.dataset.self = "true";
  const shown = shownName(identity);
  const video = /** @type {HTMLVideoElement} */ (el.querySelector("video"));
  video.setAttribute("aria-label", self ? "Your camera" : `${shown}'s camera`);
  const audio = document.createElement("audio");
  audio.autoplay = true;
  el.append(audio);
  el.querySelector(".name").textContent = self ? `${shown} (you)` : shown;
  el.querySelector(".avatar").textContent = initials(identity.replace(/[\p{Cf}\p{Cc}]/gu, ""));
  el.setAttribute("aria-label", self ? `You, ${shown}` : shown);
  t = { el, video, audio, videoSid: "", audioSid: "" };
  tiles.set(key, t);
  if (!self) state.participants[identity] = { e2ee: "waiting", speaking: false, video: false, audioMuted: false, videoMuted: false };
  const grid = $("grid");
  if (self) grid.prepend(el);
  else grid.append(el);
  layoutGrid();
  return t;
}

function removeTile(identity) {
  const t = tiles.get(identity);
  if (!t) return;
  t.video.srcObject = null;
  t.audio.srcObject = null;
  t.el.remove();
  tiles.delete(identity);
  delete state.participants[identity];
  layoutGrid();
  refreshCallStatus();
}

function clearTiles() {
  for (const key of [...tiles.keys()]) {
    if (key === SELF) {
      const t = tiles.get(key);
      t.video.srcObject = null;
      t.el.remove();
      tiles.delete(key);
    } else removeTile(key);
  }
}

function layoutGrid() {
  $("grid").dataset.count = String(tiles.size);
}

const E2EE_LABELS = {
  encrypted: ["Encrypted", "Their media is end-to-end encrypted: the server cannot see or hear it."],
  "not-encrypted": ["Not encrypted", "They do not encrypt end to end: the server could see and hear them."],
  "cannot-decrypt": ["Cannot decrypt", "Their media arrives encrypted but no key opens it: you cannot see or hear them."],
  waiting: ["Waiting for keys", "Waiting for their encryption keys."],
};

function setTileE2EE(identity, s) {
  const key = call && identity === call.self.identity ? SELF : identity;
  const t = tiles.get(key);
  if (!t) return;
  const [text, title] = E2EE_LABELS[s] ?? E2EE_LABELS.waiting;
  t.el.dataset.e2eeState = s;
  const badge = t.el.querySelector(".e2ee-badge");
  badge.textContent = text;
  badge.title = key === SELF ? (s === "encrypted" ? "Your media is end-to-end encrypted." : "Your media is not end-to-end encrypted.") : title;
  if (key !== SELF && state.participants[identity]) state.participants[identity].e2ee = s;
  refreshCallStatus();
}

function setTileVideo(identity, on) {
  const key = call && identity === call.self.identity ? SELF : identity;
  const t = tiles.get(key);
  if (!t) return;
  t.el.dataset.video = on ? "on" : "off";
  if (key !== SELF && state.participants[identity]) {
    state.participants[identity].video = on;
    state.participants[identity].videoMuted = !on;
  }
}

function setTileMic(identity, muted) {
  const key = call && identity === call.self.identity ? SELF : identity;
  const t = tiles.get(key);
  if (!t) return;
  t.el.dataset.audioMuted = String(muted);
  t.el.querySelector(".mic-state").textContent = muted ? "Muted" : "";
  if (key !== SELF && state.participants[identity]) state.participants[identity].audioMuted = muted;
}

function initials(name) {
  const parts = name.split(/[._-]+/).filter(Boolean);
  return (parts.length > 1 ? parts[0][0] + parts[1][0] : name.slice(0, 2)).toUpperCase();
}

let soundOffered = false;
function offerSound() {
  if (soundOffered) return;
  soundOffered = true;
  showBanner("Your browser paused the call's sound until you click.", "Turn on sound", () => {
    soundOffered = false;
    for (const t of tiles.values()) if (t.audio.srcObject) t.audio.play().catch(() => {});
    hideBanner();
  });
}

// ---- safety number -----------------------------------------------------------------

let safetySeq = 0;

async function refreshSafetyNumber() {
  const c = call;
  if (!c) return;
  const seq = ++safetySeq;
  const out = $("safety-number");
  if (!c.e2ee) {
    out.textContent = "Encryption is off";
    $("safety-help").textContent = "This call is not end-to-end encrypted here, so there is no safety number to compare.";
    state.safetyNumber = "";
    renderCovers([], {});
    return;
  }
  // Exactly the people the number covers, as key management has them:
  // this client, and everyone with end-to-end encryption whose key it
  // trusts (not someone whose changed key waits for a choice). Both are
  // read at once, from the same membership.
  // Each code is over the key the number covers for that person, and
  // "Mark verified" next to it marks that key, no other.
  let n = "";
  /** @type {{identity: string, verified: boolean, self: boolean, key: string}[]} */
  let covers = [];
  /** @type {Record<string, string>} */
  const codes = Object.create(null);
  try {
    const [cv, number] = await Promise.all([c.safetyNumberCovers(), c.safetyNumber()]);
    covers = cv.map((x) => ({ identity: x.identity, verified: x.verified, self: x.self, key: hexOf(x.key) }));
    n = number;
    for (const x of covers) if (!x.self) codes[x.identity] = await c.verificationCode(x.identity);
  } catch (err) {
    console.warn("sotto: safety number:", err);
  }
  if (seq !== safetySeq || c !== call) return;
  const covered = covers.map((x) => x.identity);
  out.textContent = n || "…";
  out.dataset.participants = covered.join(",");
  state.safetyNumber = n;
  state.safetyParticipants = covered;
  renderCovers(covers, codes);
  renderKeyCheckFailures();
  // A person back with the key this browser knows needs no choice any more.
  const pending = new Set(c.pendingKeyChanges().map((k) => k.identity));
  if (state.keyChanges.some((k) => !pending.has(k.identity))) {
    state.keyChanges = state.keyChanges.filter((k) => pending.has(k.identity));
    renderKeyChange();
  }
}

/** Whether each person's verification details are open, as the user left them. */
const codesOpen = new Map();

/**
 * Lists the people the safety number covers (li data-covered=identity,
 * data-verified): each other one with their verification code and a "Mark
 * verified" toggle, kept by this browser, in a disclosure (open on wide
 * screens).
 * @param {{identity: string, verified: boolean, self: boolean, key: string}[]} covers
 * @param {Record<string, string>} codes
 */
function renderCovers(covers, codes) {
  state.safetyCovers = covers;
  state.verificationCodes = codes;
  const list = $("safety-covers");
  list.replaceChildren();
  const wide = window.matchMedia("(min-width: 761px)").matches;
  for (const cv of covers) {
    const li = document.createElement("li");
    li.dataset.covered = cv.identity;
    li.dataset.verified = String(cv.verified);
    if (cv.self) li.dataset.self = "true";
    const name = shownName(cv.identity);
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = cv.self ? `${name} (you)` : name;
    li.append(who);
    if (cv.verified) {
      const mark = document.createElement("span");
      mark.className = "verified-mark";
      mark.textContent = "✓ verified";
      li.append(mark);
    }
    if (!cv.self) {
      const box = document.createElement("details");
      box.className = "verify";
      box.open = codesOpen.get(cv.identity) ?? wide;
      // Closed, its content is out of the layout (not merely unpainted),
      // so nothing in it counts as on the page.
      const inner = document.createElement("div");
      inner.hidden = !box.open;
      box.addEventListener("toggle", () => {
        codesOpen.set(cv.identity, box.open);
        inner.hidden = !box.open;
      });
      const summary = document.createElement("summary");
      summary.textContent = "Verification code";
      const code = document.createElement("p");
      code.className = "verification-code";
      code.textContent = codes[cv.identity] || "…";
      code.setAttribute("aria-label", `Your verification code with ${name}: ${codes[cv.identity] || "not ready"}`);
      const toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "verify-toggle";
      toggle.textContent = "Mark verified";
      toggle.setAttribute("aria-pressed", String(cv.verified));
      toggle.title = cv.verified
        ? `You marked ${name}'s key verified. Press to withdraw it.`
        : `Compare this code with ${name} (in person, or over a channel you trust); if it matches, mark them verified. This browser remembers it.`;
      toggle.addEventListener("click", () => void toggleVerified(cv.identity, cv.key, !cv.verified));
      inner.append(code, toggle);
      box.append(summary, inner);
      li.append(box);
    }
    list.append(li);
  }
  $("safety-covers-title").hidden = covers.length === 0;
}

/**
 * Marks (or unmarks) identity verified for key, the key whose code the
 * panel showed: if the key this browser knows for them is another now
 * (another tab accepted a change), nothing is marked, and the page says so.
 */
async function toggleVerified(identity, key, verified) {
  const c = call;
  if (!c) return;
  try {
    await c.markVerified(identity, bytesOf(key), verified);
  } catch (err) {
    console.warn("sotto: mark verified:", err);
    if (c === call) {
      showBanner(`${shownName(identity)} was not marked verified: the key this call uses for them is not the one ` +
        "this browser knows for them now (it changed, perhaps in another tab). Compare the verification code again.");
    }
  }
  await refreshSafetyNumber();
}

// ---- a security key this browser could not check ---------------------------------------

/** The banner shows the store's failure (not something else the page said). */
let keyCheckBanner = false;

/**
 * Shows, in the banner, the participants whose key this browser's store
 * could not check (the SDK holds them out of the call's keys), or drops
 * that once there are none. The SDK logged each (console.error).
 */
function renderKeyCheckFailures() {
  const c = call;
  const failed = c ? c.keyCheckFailures() : [];
  state.keyCheckFailures = failed.map((f) => ({ identity: f.identity, error: f.error }));
  if (!failed.length) {
    if (keyCheckBanner) hideBanner();
    return;
  }
  const names = failed.map((f) => shownName(f.identity)).join(", ");
  const text = `This browser could not check the security key of ${names}: its storage failed ` +
    `(${shownName(failed[0].error)}). To be safe, they hear and see nothing from you, ` +
    "and you neither hear nor see them. Reload the page to try again.";
  state.error = { code: "identity_store", message: text };
  showBanner(text, "Reload", () => location.reload());
  keyCheckBanner = true;
}

// ---- a known person's changed key -------------------------------------------------------

/** The SDK's KeyChange behind each entry of state.keyChanges: what Accept passes. */
const keyChangeOf = new WeakMap();

/** The entry of state.keyChanges the dialog shows now, or null. */
let shownKeyChange = null;

const hexOf = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const bytesOf = (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));

/**
 * Queues the blocking warning for a changed security key (the SDK's
 * KeyChange), once per person: a newer change of the same person replaces
 * the warning, and the dialog then shows that one.
 */
function noteKeyChange(kc) {
  const key = hexOf(kc.current);
  const i = state.keyChanges.findIndex((k) => k.identity === kc.identity);
  if (i >= 0 && state.keyChanges[i].key === key) return;
  const entry = { identity: kc.identity, wasVerified: kc.wasVerified, key, looksLike: kc.looksLike || "", again: i >= 0 };
  keyChangeOf.set(entry, kc);
  if (i >= 0) state.keyChanges[i] = entry;
  else state.keyChanges.push(entry);
  renderKeyChange();
}

/** Groups a key's hex as the dialog shows it: "1a2b 3c4d …". */
function keyFingerprint(key) {
  return key.match(/.{1,4}/g).join(" ");
}

/**
 * Shows the oldest changed key waiting for a choice in the modal dialog
 * (the rest of the page is inert meanwhile), or closes it. The dialog
 * names the new key (data-key, and its fingerprint): Accept accepts that
 * key, and no other.
 */
function renderKeyChange() {
  const dialog = /** @type {HTMLDialogElement} */ ($("key-changed"));
  const kc = state.keyChanges[0];
  if (!kc || !call) {
    shownKeyChange = null;
    if (dialog.open) dialog.close();
    return;
  }
  shownKeyChange = kc;
  dialog.dataset.person = kc.identity;
  dialog.dataset.key = kc.key;
  dialog.dataset.looksLike = kc.looksLike;
  const who = shownName(kc.identity);
  const again = kc.again ? "Their key changed once more while the earlier warning was up: this is a different key. " : "";
  if (kc.looksLike) {
    // Someone new whose name looks like a known person's on screen.
    const like = shownName(kc.looksLike);
    $("key-changed-title").textContent = `${who} looks like ${like}, whom you have met, but is someone else`;
    $("key-changed-text").textContent = again +
      `This browser has never met ${who}, but the name looks like ${like}'s on screen, and the key that ` +
      `proves who ${who} is, is not the key this browser knows for ${like}` + (kc.wasVerified ? ", which you had verified. " : ". ") +
      `If you do not know two people by these names, someone, perhaps the server, may be passing for ${like}. ` +
      `Until you choose, ${who} hears and sees nothing from you, and you neither hear nor see them.`;
    $("key-changed-key").textContent = `Their key: ${keyFingerprint(kc.key)}`;
    $("key-changed-advice").textContent =
      `If you accept, ${who} is remembered as someone other than ${like}: compare your verification code with them ` +
      "(in person, or over a channel you trust).";
    $("accept-key-change").textContent = `Accept ${who} as someone else`;
  } else {
    $("key-changed-title").textContent = kc.again
      ? `${who}'s security key changed again`
      : `${who}'s security key changed`;
    $("key-changed-text").textContent = again +
      `The key that proves who ${who} is differs from the one this browser knew` +
      (kc.wasVerified ? ", which you had verified. " : ". ") +
      `They may have reinstalled, or joined from a new device or browser; or someone, perhaps the server, ` +
      `is trying to listen in. Until you choose, ${who} hears and sees nothing from you, and you ` +
      "neither hear nor see them.";
    $("key-changed-key").textContent = `New key: ${keyFingerprint(kc.key)}`;
    $("key-changed-advice").textContent = kc.wasVerified
      ? `If you accept, compare your verification code with ${who} again before you mark them verified.`
      : `If you accept, compare your verification code with ${who} (in person, or over a channel you trust).`;
    $("accept-key-change").textContent = `Accept ${who}'s new key`;
  }
  if (!dialog.open) {
    dialog.showModal();
    $("leave-after-key-change").focus();
  }
}

/** Drops every pending warning (the call ended or was left). */
function clearKeyChanges() {
  state.keyChanges = [];
  renderKeyChange();
}

$("key-changed").addEventListener("cancel", (ev) => ev.preventDefault()); // Escape chooses nothing
$("key-changed").addEventListener("close", () => {
  // Closed without a choice (the browser may insist on Escape): ask again.
  if (state.keyChanges.length && call) queueMicrotask(renderKeyChange);
});

/**
 * Accepts the change the warning entry shows, exactly that key. If the
 * person's key changed again meanwhile, the SDK accepts nothing
 * (NoKeyChangeError) and the newer warning, which replaced this entry,
 * stays up.
 */
async function acceptShownKeyChange(entry) {
  const c = call;
  if (!c || !entry) return;
  try {
    await c.acceptKeyChange(keyChangeOf.get(entry));
  } catch (err) {
    // Not the change waiting: the key changed again (its warning is up
    // now), or they came back with the key known.
    console.warn("sotto: accept key change:", err);
  }
  if (c !== call) return;
  state.keyChanges = state.keyChanges.filter((k) => k !== entry);
  renderKeyChange();
  await refreshSafetyNumber();
}

$("accept-key-change").addEventListener("click", () => void acceptShownKeyChange(shownKeyChange));

$("leave-after-key-change").addEventListener("click", () => void leaveCall());

// ---- screens -------------------------------------------------------------------------

function showLobby() {
  state.phase = "lobby";
  $("lobby").hidden = false;
  $("call").hidden = true;
  $("ended").hidden = true;
}

function showCall(c) {
  $("lobby").hidden = true;
  $("ended").hidden = true;
  $("call").hidden = false;
  $("call-title").textContent = `Call in room ${c.room}`;
  clearTiles();
  hideBanner();
  renderCovers([], {});
  const me = ensureTile(c.self.identity, true);
  me.video.srcObject = local.video ? new MediaStream([local.video]) : null;
  setTileE2EE(c.self.identity, c.e2eeState(c.self.identity));
  setTileVideo(c.self.identity, !!local.video);
  setTileMic(c.self.identity, false);
  state.self = { speaking: false, audioMuted: false, videoMuted: false, hasAudio: !!local.audio, hasVideo: !!local.video };
  for (const p of c.participants.values()) ensureTile(p.identity, false);
  updateControls();
}

/**
 * The end of a call: left on purpose (err null) or ended by an error, in
 * words a person understands, with a way back in.
 */
function showEnded(err, wasInCall) {
  state.phase = "ended";
  state.connection = "disconnected";
  state.error = err ? { code: err.code ?? "", message: describeError(err) } : null;
  clearKeyChanges();
  clearTiles();
  $("call").hidden = true;
  $("lobby").hidden = true;
  $("ended").hidden = false;
  const title = $("ended-title");
  const rejoin = $("rejoin");
  if (!err) {
    title.textContent = "You left the call";
    $("ended-reason").textContent = "";
    rejoin.textContent = "Rejoin";
    setStatus("disconnected", "Not connected");
  } else {
    title.textContent = wasInCall ? "The call ended" : "Could not join the call";
    $("ended-reason").textContent = describeError(err);
    rejoin.textContent = err.code === "replaced" ? "Use this tab instead" : "Try again";
    setStatus("disconnected", wasInCall ? "Disconnected" : "Could not join");
  }
  rejoin.hidden = !lastJoin;
  rejoin.focus();
}

function describeError(err) {
  const code = err?.code ?? "";
  switch (code) {
    case "token_expired":
      return "Your invitation has expired. Ask for a new link.";
    case "token_not_yet_valid":
      return "Your invitation is not valid yet. Check your device's clock, or try again in a minute.";
    case "token_missing": case "token_malformed": case "token_algorithm":
    case "token_unknown_key": case "token_signature":
      return "Your invitation is not valid: the server refused its token. Ask for a new link.";
    case "room_mismatch":
      return "Your invitation is for another room.";
    case "room_full":
      return "This call is full. Try again later.";
    case "too_many_rooms":
      return "The server is too busy to open another call. Try again later.";
    case "join_rate_limited": case "flood":
      return "Too many attempts from your network. Wait a moment and try again.";
    case "replaced":
      return "You joined this call with the same name from another tab or device, so this tab was disconnected.";
    case "shutting_down": case "shutdown":
      return "The server is restarting. Try again in a moment.";
    case "connection_lost": case "timeout": case "gave_up": case "disconnected": case "ice_failed":
      return "Cannot reach the server. Check your internet connection and try again.";
    case "unsupported_version":
      return "This page is out of date for the server. Reload the page.";
    case "permission_denied":
      return "Your invitation does not allow this.";
    case "e2ee_unsupported":
      return "This browser cannot encrypt calls end to end. Use a current version of Chrome, Edge, Firefox or Safari.";
    case "no_dev_token":
      return "This server needs an invitation link with a token; it does not hand out tokens for names.";
    case "bad_name":
      return "Room and name may only use letters, digits, “.”, “_” and “-” (up to 64).";
    case "closed":
      return "The call was closed.";
    default:
      return `Something went wrong: ${err?.message ?? String(err)}`;
  }
}

// callStatus is the header's text in a call. It says "end-to-end
// encrypted" only while every participant's media is: one who does not
// encrypt, or whose media this client cannot open, is named instead, so a
// single plain participant (one the node could have added) is never
// covered by the call's claim. A participant still waiting for keys sends
// nothing yet, or only listens, so it does not change the claim; its tile
// says so.
function callStatus() {
  if (!call?.e2ee) return "Connected · not end-to-end encrypted";
  const inState = (s) =>
    Object.entries(state.participants).filter(([, p]) => p.e2ee === s).map(([id]) => id).sort();
  const plain = inState("not-encrypted");
  if (plain.length) {
    return `Connected · not end-to-end encrypted: ${plain.map(shownName).join(", ")} ${plain.length === 1 ? "does" : "do"} not encrypt`;
  }
  const locked = inState("cannot-decrypt");
  if (locked.length) return `Connected · cannot decrypt ${locked.map(shownName).join(", ")}`;
  return "Connected · end-to-end encrypted";
}

function refreshCallStatus() {
  if (state.connection === "connected") setStatus("connected", callStatus());
}

function setStatus(s, text) {
  const el = $("status");
  el.dataset.state = s;
  el.textContent = text;
}

function showBanner(text, actionLabel, action) {
  keyCheckBanner = false;
  $("banner").hidden = false;
  $("banner-text").textContent = text;
  const b = $("banner-action");
  b.hidden = !actionLabel;
  b.textContent = actionLabel ?? "";
  b.onclick = action ?? null;
}

function hideBanner() {
  keyCheckBanner = false;
  $("banner").hidden = true;
}

function updateControls() {
  const mic = micPub();
  const cam = cameraPub();
  const micBtn = $("toggle-mic");
  const camBtn = $("toggle-camera");
  micBtn.disabled = !mic;
  camBtn.disabled = !cam;
  micBtn.setAttribute("aria-pressed", String(!!mic?.muted));
  camBtn.setAttribute("aria-pressed", String(!!cam?.muted));
  micBtn.textContent = !mic ? "No microphone" : mic.muted ? "Unmute microphone" : "Mute microphone";
  camBtn.textContent = !cam ? "No camera" : cam.muted ? "Turn camera on" : "Turn camera off";
}

// ---- controls ------------------------------------------------------------------------

$("toggle-mic").addEventListener("click", async () => {
  const pub = micPub();
  if (!pub || !call) return;
  const muted = !pub.muted;
  state.self.audioMuted = muted;
  setTileMic(call.self.identity, muted);
  const done = call.setMuted(pub, muted);
  updateControls();
  await done.catch((err) => console.warn("sotto: mute:", err));
});

$("toggle-camera").addEventListener("click", async () => {
  const pub = cameraPub();
  if (!pub || !call) return;
  const muted = !pub.muted;
  state.self.videoMuted = muted;
  setTileVideo(call.self.identity, !muted);
  const done = call.setMuted(pub, muted);
  updateControls();
  await done.catch((err) => console.warn("sotto: mute:", err));
});

async function leaveCall() {
  const c = call;
  if (!c) return;
  call = null;
  clearKeyChanges();
  await c.leave();
  stopLocal();
  showEnded(null, true);
}

$("leave").addEventListener("click", () => void leaveCall());

$("rejoin").addEventListener("click", () => {
  if (!lastJoin) return;
  $("ended").hidden = true;
  void join(lastJoin);
});

// ---- the form ---------------------------------------------------------------------------

async function startPreview() {
  await acquireMedia();
  showPreview();
  await fillDeviceLists().catch(() => {});
}

$("camera").addEventListener("change", async (ev) => {
  local.cameraId = /** @type {HTMLSelectElement} */ (ev.target).value;
  local.skip = false;
  await startPreview();
});

$("microphone").addEventListener("change", async (ev) => {
  local.micId = /** @type {HTMLSelectElement} */ (ev.target).value;
  local.skip = false;
  await startPreview();
});

$("retry-media").addEventListener("click", () => {
  local.skip = false;
  void startPreview();
});

$("join-without-media").addEventListener("click", () => {
  local.skip = true;
  stopLocal();
  state.mediaProblem = "";
  showPreview();
  /** @type {HTMLFormElement} */ ($("join-form")).requestSubmit();
});

$("join-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const room = /** @type {HTMLInputElement} */ ($("room")).value.trim();
  const name = /** @type {HTMLInputElement} */ ($("name")).value.trim();
  const token = /** @type {HTMLInputElement} */ ($("token")).value.trim();
  const err = $("lobby-error");
  if (!NAME_PATTERN.test(room) || (!token && !NAME_PATTERN.test(name))) {
    err.hidden = false;
    err.textContent = !NAME_PATTERN.test(room)
      ? "Enter a room: letters, digits, “.”, “_” and “-”, up to 64."
      : "Enter your name: letters, digits, “.”, “_” and “-”, up to 64.";
    (!NAME_PATTERN.test(room) ? $("room") : $("name")).focus();
    return;
  }
  err.hidden = true;
  if (!token) {
    // A reload of this address joins again at once.
    const u = new URL(location.href);
    u.search = new URLSearchParams({ room, name }).toString();
    history.replaceState(null, "", u);
  }
  void join({ room, identity: name, token });
});

// ---- start ---------------------------------------------------------------------------------

function parseSize(s) {
  const m = /^(\d{2,4})x(\d{2,4})$/.exec(s ?? "");
  return m ? { width: Number(m[1]), height: Number(m[2]) } : null;
}

function guestName() {
  const n = crypto.getRandomValues(new Uint16Array(1))[0] % 10000;
  return `guest-${String(n).padStart(4, "0")}`;
}

function start() {
  const room = params.get("room") ?? "";
  const name = params.get("name") ?? "";
  const token = params.get("token") ?? "";
  if (room && token) {
    void join({ room, identity: "", token });
  } else if (room && NAME_PATTERN.test(room) && NAME_PATTERN.test(name)) {
    void join({ room, identity: name, token: "" });
  } else if (room && NAME_PATTERN.test(room) && params.get("autojoin") === "1") {
    void join({ room, identity: guestName(), token: "" });
  } else {
    /** @type {HTMLInputElement} */ ($("room")).value = room;
    /** @type {HTMLInputElement} */ ($("name")).value = name;
    showLobby();
    ($("room").value ? $("name") : $("room")).focus();
    void startPreview();
  }
}

start();
