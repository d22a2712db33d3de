// The call page's camera and microphone: capture, device lists, preview.

import { $, test, state } from "./state.js";

// ---- local media ---------------------------------------------------------------

/** The camera and microphone tracks of this page, for preview and publishing. */
export const local = {
  /** @type {MediaStreamTrack | null} */ audio: null,
  /** @type {MediaStreamTrack | null} */ video: null,
  /** the devices chosen in the form: "" none, null the default */
  cameraId: /** @type {string | null} */ (null),
  micId: /** @type {string | null} */ (null),
  skip: test.noMedia,
};

export function videoConstraints(deviceId) {
  const c = test.video
    ? { width: { ideal: test.video.width }, height: { ideal: test.video.height } }
    : { width: { ideal: 640 }, height: { ideal: 480 } };
  c.frameRate = { ideal: test.fps || 24 };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

export function audioConstraints(deviceId) {
  const c = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

/**
 * Gets the camera and microphone chosen (either may be refused or absent:
 * the other is still taken). Sets state.mediaProblem to what went wrong,
 * in words.
 */
export async function acquireMedia() {
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

export function stopLocal() {
  local.audio?.stop();
  local.video?.stop();
  local.audio = local.video = null;
}

export function isDenied(err) {
  return err instanceof DOMException && (err.name === "NotAllowedError" || err.name === "SecurityError");
}

export function describeMediaError(err, haveAudio, haveVideo) {
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

export async function fillDeviceLists() {
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

export function showPreview() {
  const v = /** @type {HTMLVideoElement} */ ($("preview"));
  v.srcObject = local.video ? new MediaStream([local.video]) : null;
  $("preview-empty").hidden = !!local.video;
  const box = $("media-problem");
  box.hidden = !state.mediaProblem;
  $("media-problem-text").textContent = state.mediaProblem;
}
