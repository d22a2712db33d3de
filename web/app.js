// The call page: a person picks a room, a name, a camera and a microphone,
// joins, and sees and hears the others, with each one's end-to-end
// encryption state and the call's safety number. Everything that talks to
// the node is the SDK (sdk/index.js); this file is the page around it.
//
// URL modes:
//   /?room=R&name=N       (development node) fetch /dev/token and join at once
//   /?room=R&token=T      join at once with that token
//   /?room=R&autojoin=1   pick a name "guest-NNNN" and join at once (two tabs: two people,
//                         each with an identity key of its own, kept for the page's life)
//   /                     the form
//
// Tests read the page without pixels: window.sotto = {call, state}, tiles
// with data-identity, data-e2ee-state, data-speaking and data-video, the
// safety number in #safety-number, the people it covers in #safety-covers
// (data-covered, data-verified), and a changed security key in the
// #key-changed dialog (data-person, data-key: the new key it shows, which
// its Accept button accepts, and no other; data-looks-like: the known
// person a new name looks like). Admission (docs/E2EE.md, "Admission and
// rosters"): only members have tiles; someone waiting or refused is a card
// in #admission-list (data-candidate, data-admission-state, with buttons
// data-admit and data-refuse naming them), this tab's own wait is
// #self-admission, and the roster alert is the #roster-alert dialog
// (state.admissions, state.selfAdmission, state.rosterAlert). Names from the server are shown with
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
  /**
   * identity → {state: "waiting" | "refused" | "member", by, known,
   * verified} of every participant the SDK counts as a candidate for
   * admission (end-to-end encrypted, with an identity key); by is the
   * member who admitted or refused it ("" for one present when this tab
   * joined). No prototype, as participants.
   */
  admissions: Object.create(null),
  /** this tab's own admission: state "waiting" | "refused" | "member", by the member who decided */
  selfAdmission: { state: "member", by: "" },
  /**
   * the roster alert while it is up: {message, mismatches: [{member,
   * missing, onlyTheirs, onlyMine}]}; null otherwise
   */
  rosterAlert: null,
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

/**
 * The identity store of a guest of ?autojoin=1, this page's only: two
 * tabs of one browser are two people, so each needs its own identity
 * key (the browser's stored one is one person's; a member cannot admit
 * its own key). Kept for the page's life, so that Rejoin comes back as
 * the same person; a reload is a new guest anyway.
 * @type {InstanceType<typeof Sotto.MemoryStore> | null}
 */
let guestStore = null;

/** The E2EE this page made for the current call (the SDK closes only its own), or null. */
let ownE2EE = null;

function closeOwnE2EE() {
  ownE2EE?.close();
  ownE2EE = null;
}

async function join({ room, identity, token, guest = false }) {
  lastJoin = { room, identity, token, guest };
  state.room = room;
  state.identity = identity;
  state.error = null;
  state.phase = "joining";
  setConnection("connecting", null);
  $("room-label").hidden = false;
  $("room-label").textContent = `Room ${room}`;
  document.title = `${room} · Sotto`;

  if (!local.audio && !local.video && !local.skip) await acquireMedia();

  /** @type {boolean | InstanceType<typeof Sotto.E2EE>} */
  let e2ee = true;
  let c;
  try {
    if (test.denyKeys || guest) {
      if (guest) guestStore ??= new Sotto.MemoryStore();
      closeOwnE2EE();
      try {
        ownE2EE = await Sotto.E2EE.create(guest ? { store: guestStore } : {});
      } catch (err) {
        throw new Sotto.SottoError("e2ee_unsupported", `this browser cannot encrypt calls end to end: ${err}`, { cause: err });
      }
      ownE2EE.denyKeysForTest = test.denyKeys;
      e2ee = ownE2EE;
    }
    // Nobody is let in without a person's click: every newcomer waits
    // until a member admits them (the page never admits on its own).
    c = await Sotto.connect(location.origin, {
      token: tokenSource(room, identity, token), room, e2ee, admission: () => "ask",
    });
  } catch (err) {
    closeOwnE2EE();
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
  state.admissions = Object.create(null);
  state.selfAdmission = { state: hasAdmission(c) ? "waiting" : "member", by: "" };
  state.rosterAlert = null;
  newcomers.clear();
  remoteMedia.clear();
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
  // A participant is a tile only once it is a member (admission); its
  // media is kept meanwhile (remoteMedia) and shown only in that tile.
  on("participantjoined", ({ participant }) => {
    syncAdmissions();
    void refreshSafetyNumber();
  });
  on("participantleft", ({ participant }) => {
    removeTile(participant.identity);
    remoteMedia.delete(participant.identity);
    syncAdmissions(participant.identity);
    void refreshSafetyNumber();
  });
  on("track", ({ track, info, participant }) => {
    const m = mediaOf(participant.identity);
    if (info.kind === "video") {
      m.videoSid = info.sid;
      m.video = track;
      m.videoOn = !info.muted;
    } else {
      m.audioSid = info.sid;
      m.audio = track;
      m.audioMuted = info.muted;
    }
    const t = tiles.get(participant.identity);
    if (t) showMedia(participant.identity, t, info.kind);
  });
  on("trackpublished", ({ info, participant, local: mine }) => {
    if (mine) return;
    if (info.kind === "audio") {
      mediaOf(participant.identity).audioMuted = info.muted;
      setTileMic(participant.identity, info.muted);
    }
  });
  on("trackunpublished", ({ info, participant, local: mine }) => {
    if (mine) return;
    const m = remoteMedia.get(participant.identity);
    const t = tiles.get(participant.identity);
    if (info.kind === "video" && m?.videoSid === info.sid) {
      m.video = null;
      m.videoSid = "";
      m.videoOn = false;
      if (t) t.video.srcObject = null;
      setTileVideo(participant.identity, false);
    } else if (info.kind === "audio" && m?.audioSid === info.sid) {
      m.audio = null;
      m.audioSid = "";
      if (t) t.audio.srcObject = null;
    }
  });
  on("trackmuted", ({ info, participant, local: mine, muted }) => {
    if (mine) return;
    const m = mediaOf(participant.identity);
    if (info.kind === "video") {
      if (m.videoSid === info.sid || !m.videoSid) m.videoOn = !muted;
      setTileVideo(participant.identity, !muted && !!m.videoSid);
    } else {
      m.audioMuted = muted;
      setTileMic(participant.identity, muted);
    }
  });
  on("speaking", ({ identity, speaking }) => {
    const key = identity === c.self.identity ? SELF : identity;
    const t = tiles.get(key);
    if (t) t.el.dataset.speaking = String(speaking);
    if (key === SELF) state.self.speaking = speaking;
    else if (state.participants[identity]) state.participants[identity].speaking = speaking;
  });
  on("waiting", ({ identity, identityKey, known, verified }) => {
    newcomers.set(identity, { key: hexOf(identityKey ?? []), known: !!known, verified: !!verified });
    syncAdmissions();
  });
  on("admitted", () => {
    syncAdmissions();
    void refreshSafetyNumber();
  });
  on("refused", () => syncAdmissions());
  on("selfadmitted", ({ by }) => {
    const was = state.selfAdmission.state;
    state.selfAdmission = { state: "member", by: by ?? "" };
    syncAdmissions();
    // by "": the first in the call, or nobody is left who could admit.
    if (was !== "member" && by) note(`${shownName(by)} admitted you: the others can hear and see you now.`);
    void refreshSafetyNumber();
  });
  on("selfrefused", ({ by }) => {
    state.selfAdmission = { state: "refused", by: by ?? "" };
    syncAdmissions();
  });
  on("rostermismatch", ({ message, mismatches }) => {
    state.rosterAlert = { message: String(message ?? ""), mismatches: normalizeMismatches(mismatches) };
    renderRosterAlert();
  });
  on("rosteragreed", () => {
    const was = !!state.rosterAlert;
    state.rosterAlert = null;
    renderRosterAlert();
    if (was) note("Everyone now sees the same people again: the alert is over, and keys are sent again.");
  });
  on("e2eestate", ({ identity, state: s }) => setTileE2EE(identity, s));
  on("safetynumber", () => void refreshSafetyNumber());
  on("keychanged", (kc) => {
    noteKeyChange(kc);
    syncAdmissions();
    void refreshSafetyNumber();
  });
  on("keycheckfailed", () => {
    renderKeyCheckFailures();
    syncAdmissions();
    void refreshSafetyNumber();
  });
  on("connectionstate", ({ state: s, error }) => {
    setConnection(s, error);
    if (s === "connected") {
      hideBanner();
      renderKeyCheckFailures();
      // Joined again: this tab waits again until the members admit it
      // (they do on their own, having admitted it once).
      syncAdmissions();
      void refreshSafetyNumber();
    }
    if (s === "disconnected") {
      stopLocal();
      if (error) {
        closeOwnE2EE();
        showEnded(error, true);
      }
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
  if (!self && call) {
    // A member's tile: its state and whatever media arrived before.
    setTileE2EE(identity, call.e2eeState(identity) ?? "waiting");
    const m = remoteMedia.get(identity);
    if (m?.video) showMedia(identity, t, "video");
    if (m?.audio) showMedia(identity, t, "audio");
    else setTileMic(identity, !!m?.audioMuted);
  }
  return t;
}

/**
 * What a remote participant sends, as the SDK delivered it: kept for
 * everyone, shown only in a member's tile.
 * @type {Map<string, {video: MediaStreamTrack | null, videoSid: string, videoOn: boolean,
 *   audio: MediaStreamTrack | null, audioSid: string, audioMuted: boolean}>}
 */
const remoteMedia = new Map();

function mediaOf(identity) {
  let m = remoteMedia.get(identity);
  if (!m) {
    m = { video: null, videoSid: "", videoOn: false, audio: null, audioSid: "", audioMuted: false };
    remoteMedia.set(identity, m);
  }
  return m;
}

/** Puts a participant's kept video or audio into its tile. */
function showMedia(identity, t, kind) {
  const m = remoteMedia.get(identity);
  if (!m) return;
  if (kind === "video") {
    t.videoSid = m.videoSid;
    t.video.srcObject = m.video ? new MediaStream([m.video]) : null;
    setTileVideo(identity, !!m.video && m.videoOn);
  } else {
    t.audioSid = m.audioSid;
    t.audio.srcObject = m.audio ? new MediaStream([m.audio]) : null;
    if (m.audio) t.audio.play().catch(() => offerSound());
    setTileMic(identity, m.audioMuted);
  }
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
  held: ["Waiting for keys", "Nobody sends you keys until a member admits you."],
};

function setTileE2EE(identity, s) {
  const key = call && identity === call.self.identity ? SELF : identity;
  const t = tiles.get(key);
  if (!t) return;
  // Not admitted yet, this tab gets no keys: that is no failure.
  const held = key !== SELF && s === "cannot-decrypt" && state.selfAdmission.state !== "member";
  const [text, title] = held ? E2EE_LABELS.held : E2EE_LABELS[s] ?? E2EE_LABELS.waiting;
  t.el.dataset.e2eeState = s;
  if (held) t.el.dataset.held = "true";
  else delete t.el.dataset.held;
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

// ---- admission -----------------------------------------------------------------------

// Admission by members (docs/E2EE.md, "Admission and rosters"): a
// newcomer gets no media key until a member admits it. Every member sees
// it as a card with Admit and Refuse, never as a tile; one member's
// Admit suffices. A refused one stays a card, saying who refused it. This
// tab, until admitted, says so above the grid. Names are the server's
// (attacker-chosen): they go into textContent and data attributes only.

/** Whether the call's SDK admits by members (end-to-end encryption on). */
function hasAdmission(c) {
  return !!c?.e2ee && typeof c.admissions === "function" && typeof c.rosterStatus === "function";
}

/** What the "waiting" event said of each newcomer: identity → {key (hex), known, verified}. */
const newcomers = new Map();

/**
 * Whether identity is shown as a normal tile: a member; or, with no
 * admission listed for it, a participant that does not encrypt (never a
 * candidate: its tile says "Not encrypted", and the header names it), or
 * one this browser holds out itself, its changed key waiting for the
 * person's choice or its key not checked (the blocking warning, or the
 * banner, says why it gets no key). One the node says encrypts but that
 * the SDK does not list is no member either: a card says it waits.
 */
function showsTile(identity) {
  const c = call;
  const p = c?.participants.get(identity);
  if (!p) return false;
  if (!hasAdmission(c)) return true;
  const a = state.admissions[identity];
  if (a) return a.state === "member";
  if (!p.e2ee) return true;
  return c.pendingKeyChanges().some((k) => k.identity === identity) ||
    c.keyCheckFailures().some((f) => f.identity === identity);
}

/**
 * Reads the admissions and this tab's own state from the SDK and redraws
 * from them: a tile for every member, a card for everyone else waiting
 * or refused, this tab's own wait. gone: a participant that just left.
 */
function syncAdmissions(gone) {
  const c = call;
  if (!c) return;
  if (hasAdmission(c)) {
    const next = Object.create(null);
    for (const a of c.admissions()) {
      if (a.identity === gone) continue;
      const key = hexOf(a.identityKey ?? []);
      const n = newcomers.get(a.identity);
      const same = !!n && n.key === key;
      next[a.identity] = {
        state: a.state, by: a.by ?? "", root: !!a.root, key,
        known: same && n.known, verified: same && n.verified,
      };
    }
    state.admissions = next;
    const rs = c.rosterStatus();
    const s = rs.admitted ? "member" : rs.refused ? "refused" : "waiting";
    if (s !== state.selfAdmission.state) {
      state.selfAdmission = { state: s, by: s === "waiting" ? "" : state.selfAdmission.by };
    }
    if (rs.alert && !state.rosterAlert) {
      state.rosterAlert = { message: "", mismatches: normalizeMismatches(rs.mismatches) };
      renderRosterAlert();
    }
  } else {
    state.admissions = Object.create(null);
    state.selfAdmission = { state: "member", by: "" };
  }
  for (const key of [...tiles.keys()]) {
    if (key !== SELF && !showsTile(/** @type {string} */ (key))) removeTile(key);
  }
  for (const p of c.participants.values()) {
    if (p.identity !== gone && showsTile(p.identity)) ensureTile(p.identity, false);
  }
  renderAdmissionCards(gone);
  renderSelfAdmission();
  refreshHeldTiles();
  refreshCallStatus();
}

/** This tab's identity key, in hex ("" without E2EE). */
function ownKeyHex() {
  const k = call?.e2ee?.identity?.publicKey;
  return k ? hexOf(k) : "";
}

/** identity → its card in #admission-list */
const cards = new Map();

/**
 * Draws a card for every participant that is not a member (waiting or
 * refused), in the order they came, each updated in place (so that focus
 * on a button stays where it is while others arrive).
 */
function renderAdmissionCards(gone) {
  const c = call;
  const list = $("admission-list");
  const want = [];
  if (c) {
    for (const p of c.participants.values()) {
      if (p.identity !== gone && !showsTile(p.identity)) want.push(p.identity);
    }
  }
  const keep = new Set(want);
  for (const [id, card] of cards) {
    if (!keep.has(id)) {
      card.remove();
      cards.delete(id);
    }
  }
  const canDecide = state.selfAdmission.state === "member";
  want.forEach((id, i) => {
    let card = cards.get(id);
    if (!card) {
      card = makeAdmissionCard(id);
      cards.set(id, card);
    }
    fillAdmissionCard(card, id, canDecide);
    // In order; a card in its place is not moved (that would take the
    // focus, or a pointer, off its buttons).
    if (list.children[i] !== card) list.insertBefore(card, list.children[i] ?? null);
  });
  $("admissions").hidden = want.length === 0;
  $("admissions-title").textContent = want.length === 1 ? "Waiting to join" : `Waiting to join (${want.length})`;
}

function makeAdmissionCard(identity) {
  const li = document.createElement("li");
  li.className = "admission-card";
  li.dataset.candidate = identity;
  const text = document.createElement("p");
  text.className = "admission-text";
  const detail = document.createElement("p");
  detail.className = "admission-detail hint";
  const error = document.createElement("p");
  error.className = "admission-error error";
  error.hidden = true;
  const row = document.createElement("div");
  row.className = "row";
  const admit = document.createElement("button");
  admit.type = "button";
  admit.className = "primary";
  admit.dataset.admit = identity;
  admit.addEventListener("click", () => void decide(identity, "admit"));
  const refuse = document.createElement("button");
  refuse.type = "button";
  refuse.dataset.refuse = identity;
  refuse.addEventListener("click", () => void decide(identity, "refuse"));
  row.append(admit, refuse);
  li.append(text, detail, error, row);
  return li;
}

function fillAdmissionCard(card, identity, canDecide) {
  const a = state.admissions[identity];
  const refused = a?.state === "refused";
  const name = shownName(identity);
  const me = call?.self.identity;
  card.dataset.admissionState = refused ? "refused" : "waiting";
  const text = /** @type {HTMLElement} */ (card.querySelector(".admission-text"));
  const detail = /** @type {HTMLElement} */ (card.querySelector(".admission-detail"));
  // Admit and Refuse wait until the SDK lists identity as waiting or
  // refused (its "waiting" event redraws the card): the node may show a
  // newcomer before the SDK has taken their announcement, and a click then
  // would only fail ("no such participant waiting").
  const listed = a?.state === "waiting" || refused;
  if (refused) {
    const by = a.by ? shownName(a.by) + (a.by === me ? " (you)" : "") : "a member";
    text.textContent = `${name} was refused by ${by}`;
    detail.textContent = "They hear and see nothing, and get no key. Any member can still admit them.";
  } else {
    text.textContent = `${name} is waiting to join — they hear and see nothing until admitted`;
  }
  if (!listed) {
    detail.textContent = `This browser has not taken ${name}'s security key yet: you can admit or refuse them once it has.`;
  } else if (!refused) {
    const parts = [];
    if (a && a.key === ownKeyHex()) {
      parts.push(`${name} comes with this browser's own security key: another tab of this browser, or someone ` +
        "copying it. Nobody can admit their own key: someone on another device can, or refuse them.");
    } else if (a?.verified) parts.push(`You verified ${name}'s key before.`);
    else if (a?.known) parts.push(`This browser has met ${name} before, with this key.`);
    else parts.push(`This browser has not met ${name} before: if you do not expect them, refuse.`);
    detail.textContent = parts.join(" ");
  }
  if (!canDecide && listed) detail.textContent += " You can admit or refuse them once you are admitted yourself.";
  const busy = card.dataset.busy === "true";
  const admit = /** @type {HTMLButtonElement} */ (card.querySelector("[data-admit]"));
  const refuse = /** @type {HTMLButtonElement} */ (card.querySelector("[data-refuse]"));
  admit.textContent = busy && card.dataset.busyWith === "admit" ? "Admitting…" : refused ? "Admit anyway" : "Admit";
  refuse.textContent = busy && card.dataset.busyWith === "refuse" ? "Refusing…" : "Refuse";
  admit.setAttribute("aria-label", `Admit ${name}`);
  refuse.setAttribute("aria-label", `Refuse ${name}`);
  refuse.hidden = refused;
  admit.disabled = refuse.disabled = !canDecide || busy || !listed;
  if (a && a.key === ownKeyHex()) admit.disabled = true;
  admit.title = `Let ${name} in: they get the call's keys, and everyone sees them.`;
  refuse.title = `Keep ${name} out: everyone sees that you refused them.`;
  card.setAttribute("aria-label", text.textContent);
}

/** Admits or refuses identity (a member's click), and says so in its card if that fails. */
async function decide(identity, what) {
  const c = call;
  const card = cards.get(identity);
  if (!c || !card || card.dataset.busy === "true" || state.selfAdmission.state !== "member") return;
  // Only someone the SDK lists as waiting or refused can be decided on
  // (the buttons are disabled until then).
  if (!c.admissions().some((a) => a.identity === identity && (a.state === "waiting" || a.state === "refused"))) return;
  card.dataset.busy = "true";
  card.dataset.busyWith = what;
  const error = /** @type {HTMLElement} */ (card.querySelector(".admission-error"));
  error.hidden = true;
  fillAdmissionCard(card, identity, true);
  try {
    if (what === "admit") await c.admit(identity);
    else await c.refuse(identity);
  } catch (err) {
    // Another member decided first, they left, or this tab cannot yet.
    console.warn(`sotto: ${what} ${JSON.stringify(identity)}:`, err);
    if (c === call && cards.get(identity) === card) {
      error.hidden = false;
      error.textContent = `Could not ${what} ${shownName(identity)}: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  delete card.dataset.busy;
  delete card.dataset.busyWith;
  if (c === call) syncAdmissions();
}

/** Shows this tab's own wait (or refusal) above the grid, until it is a member. */
function renderSelfAdmission() {
  const panel = $("self-admission");
  const { state: s, by } = state.selfAdmission;
  $("call").dataset.admission = s;
  panel.hidden = s === "member";
  panel.dataset.state = s;
  if (s === "member") return;
  const leave = $("leave-while-waiting");
  if (s === "refused") {
    const who = by ? shownName(by) : "A member";
    $("self-admission-title").textContent = `${who} refused to admit you`;
    $("self-admission-text").textContent = "You hear and see nothing, and nobody hears or sees you. " +
      "Another member may still admit you; or you may leave the call.";
    leave.hidden = false;
  } else {
    $("self-admission-title").textContent = "Waiting to be admitted";
    $("self-admission-text").textContent = "Someone already in the call must admit you. Until then you hear " +
      "and see nothing, and nobody hears or sees you. They see that you are waiting.";
    leave.hidden = true;
  }
}

$("leave-while-waiting").addEventListener("click", () => void leaveCall());

/**
 * While this tab is not admitted nobody sends it keys: the members' tiles
 * say "waiting for keys" then, not "cannot decrypt" (which would mean
 * something is wrong).
 */
function refreshHeldTiles() {
  const c = call;
  if (!c) return;
  for (const [key, t] of tiles) {
    if (key !== SELF) setTileE2EE(/** @type {string} */ (key), t.el.dataset.e2eeState ?? "waiting");
  }
}

/** The detail of a "rostermismatch" as the page keeps it (names as strings). */
function normalizeMismatches(list) {
  return (Array.isArray(list) ? list : []).map((m) => ({
    member: String(m?.member ?? ""),
    missing: !!m?.missing,
    onlyTheirs: (m?.onlyTheirs ?? []).map(nameOf),
    onlyMine: (m?.onlyMine ?? []).map(nameOf),
  }));
}

/** A name from a mismatch list: a string, or an entry with a name. */
function nameOf(x) {
  return typeof x === "string" ? x : String(x?.name ?? x?.identity ?? "");
}

/**
 * The roster alert: modal (the rest of the page is inert) while members'
 * signed views of the call disagree; it closes itself when they agree.
 */
function renderRosterAlert() {
  const dialog = /** @type {HTMLDialogElement} */ ($("roster-alert"));
  const alert = state.rosterAlert;
  if (!alert || !call) {
    if (dialog.open) dialog.close();
    return;
  }
  const list = $("roster-alert-list");
  list.replaceChildren();
  const names = (xs) => xs.map(shownName).join(", ");
  for (const m of alert.mismatches) {
    const li = document.createElement("li");
    li.dataset.member = m.member;
    const who = shownName(m.member);
    const lines = [];
    // A name on both sides: the same name with another security key.
    const both = m.onlyTheirs.filter((n) => m.onlyMine.includes(n));
    const theirs = m.onlyTheirs.filter((n) => !both.includes(n));
    const mine = m.onlyMine.filter((n) => !both.includes(n));
    if (m.missing) lines.push(`${who}'s view of the call did not arrive.`);
    if (theirs.length) lines.push(`${who}'s view lists ${names(theirs)}, whom yours does not.`);
    if (mine.length) lines.push(`Your view lists ${names(mine)}, whom ${who}'s does not.`);
    if (both.length) lines.push(`${who}'s view has another security key than yours for ${names(both)}.`);
    if (!lines.length) lines.push(`${who}'s view differs from yours.`);
    for (const line of lines) {
      const p = document.createElement("p");
      p.textContent = line;
      li.append(p);
    }
    list.append(li);
  }
  dialog.dataset.members = alert.mismatches.map((m) => m.member).join(",");
  if (!dialog.open) {
    dialog.showModal();
    $("leave-after-roster-alert").focus();
  }
}

$("roster-alert").addEventListener("cancel", (ev) => ev.preventDefault()); // Escape dismisses nothing
$("roster-alert").addEventListener("close", () => {
  // Closed while the views still disagree: show it again.
  if (state.rosterAlert && call) queueMicrotask(renderRosterAlert);
});
$("leave-after-roster-alert").addEventListener("click", () => void leaveCall());

let noteTimer = 0;

/** A short message above the grid that goes away on its own. */
function note(text) {
  const el = $("call-note");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(noteTimer);
  noteTimer = setTimeout(() => { el.hidden = true; }, 8000);
}

function clearAdmissions() {
  state.admissions = Object.create(null);
  state.rosterAlert = null;
  for (const card of cards.values()) card.remove();
  cards.clear();
  $("admissions").hidden = true;
  $("self-admission").hidden = true;
  $("call-note").hidden = true;
  renderRosterAlert();
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
  syncAdmissions();
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
  clearAdmissions();
  syncAdmissions();
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
  clearAdmissions();
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
// says so. Someone waiting to be admitted gets no key and has no tile: it
// changes nothing either (its card says so). While this tab itself is not
// admitted, the header says that.
function callStatus() {
  if (!call?.e2ee) return "Connected · not end-to-end encrypted";
  const inState = (s) =>
    Object.entries(state.participants).filter(([, p]) => p.e2ee === s).map(([id]) => id).sort();
  const plain = inState("not-encrypted");
  if (plain.length) {
    return `Connected · not end-to-end encrypted: ${plain.map(shownName).join(", ")} ${plain.length === 1 ? "does" : "do"} not encrypt`;
  }
  if (state.selfAdmission.state === "waiting") return "Connected · waiting to be admitted";
  if (state.selfAdmission.state === "refused") return "Connected · not admitted";
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
  clearAdmissions();
  await c.leave();
  closeOwnE2EE();
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
    void join({ room, identity: guestName(), token: "", guest: true });
  } else {
    /** @type {HTMLInputElement} */ ($("room")).value = room;
    /** @type {HTMLInputElement} */ ($("name")).value = name;
    showLobby();
    ($("room").value ? $("name") : $("room")).focus();
    void startPreview();
  }
}

start();
