// @ts-check
/**
 * @file Sotto's browser SDK, `@sotto/sdk`: join a Sotto call from a web
 * page. Plain ES modules, no build step; the node serves them at /sdk/.
 *
 * ```js
 * import * as Sotto from "/sdk/index.js";
 * const call = await Sotto.connect(location.origin, { token });
 * call.addEventListener("track", (ev) => attach(ev.detail.track, ev.detail.participant));
 * await call.publishMicrophone();
 * await call.publishCamera({ width: 640, height: 480 });
 * console.log(await call.safetyNumber());
 * ```
 *
 * The protocol is docs/PROTOCOL.md; end-to-end encryption docs/E2EE.md.
 */

export {
  connect,
  Call,
  Publication,
  SottoError,
  isPermanent,
  signalURL,
  parseMsids,
  rewriteMsid,
  PROTOCOL_VERSION,
  SIGNAL_PATH,
} from "./client.js";
export {
  E2EE,
  NoKeyChangeError,
  NotAdmittedError,
  NotWaitingError,
  ROSTER_MISMATCH_MESSAGE,
  MemoryStore,
  IndexedDBStore,
  defaultIdentityStore,
  skeleton,
} from "./e2ee/index.js";

/**
 * @typedef {import("./client.js").ConnectOptions} ConnectOptions
 * @typedef {import("./client.js").ReconnectOptions} ReconnectOptions
 * @typedef {import("./client.js").CameraOptions} CameraOptions
 * @typedef {import("./client.js").MicrophoneOptions} MicrophoneOptions
 * @typedef {import("./client.js").PublishOptions} PublishOptions
 * @typedef {import("./client.js").Participant} Participant
 * @typedef {import("./client.js").TrackInfo} TrackInfo
 * @typedef {import("./client.js").ConnectionState} ConnectionState
 * @typedef {import("./client.js").E2EEState} E2EEState
 * @typedef {import("./client.js").InboundTrackStats} InboundTrackStats
 * @typedef {import("./client.js").TrackEventDetail} TrackEventDetail
 * @typedef {import("./client.js").CallEventName} CallEventName
 * @typedef {import("./e2ee/index.js").KeyChange} KeyChange
 * @typedef {import("./e2ee/index.js").KeyCheckFailure} KeyCheckFailure
 * @typedef {import("./e2ee/index.js").Covered} Covered
 * @typedef {import("./e2ee/index.js").Newcomer} Newcomer
 * @typedef {import("./e2ee/index.js").AdmissionDecision} AdmissionDecision
 * @typedef {import("./e2ee/index.js").AdmissionPolicy} AdmissionPolicy
 * @typedef {import("./e2ee/index.js").ParticipantAdmission} ParticipantAdmission
 * @typedef {import("./e2ee/index.js").RosterStatus} RosterStatus
 * @typedef {import("./e2ee/index.js").RosterMismatch} RosterMismatch
 * @typedef {import("./e2ee/index.js").RosterMismatchDetail} RosterMismatchDetail
 * @typedef {import("./e2ee/store.js").IdentityStore} IdentityStore
 * @typedef {import("./e2ee/store.js").KnownKey} KnownKey
 */
