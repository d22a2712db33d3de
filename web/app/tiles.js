// The call page's tiles: one per member, with its media, end-to-end encryption state and speaking.

import { $, shownName, state } from "./state.js";
import { call, refreshCallStatus, showBanner, hideBanner } from "../app.js";

// ---- tiles ---------------------------------------------------------------------

// The own tile's key: a symbol, which no name from the server can equal.
export const SELF = Symbol("self");
/** @type {Map<string | symbol, {el: HTMLElement, video: HTMLVideoElement, audio: HTMLAudioElement, videoSid: string, audioSid: string}>} */
export const tiles = new Map();

export function ensureTile(identity, self) {
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
export const remoteMedia = new Map();

export function mediaOf(identity) {
  let m = remoteMedia.get(identity);
  if (!m) {
    m = { video: null, videoSid: "", videoOn: false, audio: null, audioSid: "", audioMuted: false };
    remoteMedia.set(identity, m);
  }
  return m;
}

/** Puts a participant's kept video or audio into its tile. */
export function showMedia(identity, t, kind) {
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

export function removeTile(identity) {
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

export function clearTiles() {
  for (const key of [...tiles.keys()]) {
    if (key === SELF) {
      const t = tiles.get(key);
      t.video.srcObject = null;
      t.el.remove();
      tiles.delete(key);
    } else removeTile(key);
  }
}

export function layoutGrid() {
  $("grid").dataset.count = String(tiles.size);
}

export const E2EE_LABELS = {
  encrypted: ["Encrypted", "Their media is end-to-end encrypted: the server cannot see or hear it."],
  "not-encrypted": ["Not encrypted", "They do not encrypt end to end: the server could see and hear them."],
  "cannot-decrypt": ["Cannot decrypt", "Their media arrives encrypted but no key opens it: you cannot see or hear them."],
  waiting: ["Waiting for keys", "Waiting for their encryption keys."],
  held: ["Waiting for keys", "Nobody sends you keys until a member admits you."],
};

export function setTileE2EE(identity, s) {
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

export function setTileVideo(identity, on) {
  const key = call && identity === call.self.identity ? SELF : identity;
  const t = tiles.get(key);
  if (!t) return;
  t.el.dataset.video = on ? "on" : "off";
  if (key !== SELF && state.participants[identity]) {
    state.participants[identity].video = on;
    state.participants[identity].videoMuted = !on;
  }
}

export function setTileMic(identity, muted) {
  const key = call && identity === call.self.identity ? SELF : identity;
  const t = tiles.get(key);
  if (!t) return;
  t.el.dataset.audioMuted = String(muted);
  t.el.querySelector(".mic-state").textContent = muted ? "Muted" : "";
  if (key !== SELF && state.participants[identity]) state.participants[identity].audioMuted = muted;
}

export function initials(name) {
  const parts = name.split(/[._-]+/).filter(Boolean);
  return (parts.length > 1 ? parts[0][0] + parts[1][0] : name.slice(0, 2)).toUpperCase();
}

export let soundOffered = false;
export function offerSound() {
  if (soundOffered) return;
  soundOffered = true;
  showBanner("Your browser paused the call's sound until you click.", "Turn on sound", () => {
    soundOffered = false;
    for (const t of tiles.values()) if (t.audio.srcObject) t.audio.play().catch(() => {});
    hideBanner();
  });
}
