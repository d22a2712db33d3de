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
import { $, shownName, NAME_PATTERN, params, test, state } from "./app/state.js";
import { local, acquireMedia, stopLocal, fillDeviceLists, showPreview } from "./app/media.js";
import { SELF, tiles, ensureTile, remoteMedia, mediaOf, showMedia, removeTile, clearTiles, setTileE2EE, setTileVideo, setTileMic } from "./app/tiles.js";
import { hasAdmission, newcomers, syncAdmissions, normalizeMismatches, renderRosterAlert, note, clearAdmissions } from "./app/admission.js";
import { refreshSafetyNumber, renderCovers, hexOf, noteKeyChange, clearKeyChanges } from "./app/safety.js";

// ---- joining -------------------------------------------------------------------

/** @type {{room: string, identity: string, token: string} | null} */
export let lastJoin = null;
/** @type {Sotto.Call | null} */
export let call = null;

/**
 * A token for the join: the one given, or one from the development node's
 * /dev/token (fetched anew for every connect and reconnect).
 */
export function tokenSource(room, identity, token) {
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
export let guestStore = null;

/** The E2EE this page made for the current call (the SDK closes only its own), or null. */
export let ownE2EE = null;

export function closeOwnE2EE() {
  ownE2EE?.close();
  ownE2EE = null;
}

export async function join({ room, identity, token, guest = false }) {
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

export async function publishLocal(c) {
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

export function micPub() { return call?.publications.find((p) => p.source === "microphone") ?? null; }
export function cameraPub() { return call?.publications.find((p) => p.source === "camera") ?? null; }

// ---- the call's events ------------------------------------------------------------

export function wireCall(c) {
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

export function setConnection(s, error) {
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

// ---- a security key this browser could not check ---------------------------------------

/** The banner shows the store's failure (not something else the page said). */
export let keyCheckBanner = false;

/**
 * Shows, in the banner, the participants whose key this browser's store
 * could not check (the SDK holds them out of the call's keys), or drops
 * that once there are none. The SDK logged each (console.error).
 */
export function renderKeyCheckFailures() {
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

// ---- screens -------------------------------------------------------------------------

export function showLobby() {
  state.phase = "lobby";
  $("lobby").hidden = false;
  $("call").hidden = true;
  $("ended").hidden = true;
}

export function showCall(c) {
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
export function showEnded(err, wasInCall) {
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

export function describeError(err) {
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
export function callStatus() {
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

export function refreshCallStatus() {
  if (state.connection === "connected") setStatus("connected", callStatus());
}

export function setStatus(s, text) {
  const el = $("status");
  el.dataset.state = s;
  el.textContent = text;
}

export function showBanner(text, actionLabel, action) {
  keyCheckBanner = false;
  $("banner").hidden = false;
  $("banner-text").textContent = text;
  const b = $("banner-action");
  b.hidden = !actionLabel;
  b.textContent = actionLabel ?? "";
  b.onclick = action ?? null;
}

export function hideBanner() {
  keyCheckBanner = false;
  $("banner").hidden = true;
}

export function updateControls() {
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

export async function leaveCall() {
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

export async function startPreview() {
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

export function guestName() {
  const n = crypto.getRandomValues(new Uint16Array(1))[0] % 10000;
  return `guest-${String(n).padStart(4, "0")}`;
}

export function start() {
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
