// @ts-check
/**
 * @file Sotto's browser SDK: connect to a Sotto node, join a room with an
 * access token, publish the camera, microphone or screen, receive the
 * others' media, exchange relay messages, and reconnect on its own when the
 * connection drops. It speaks signaling protocol v1 (docs/PROTOCOL.md) and
 * behaves like the Go SDK (signaling/client), which is the reference.
 *
 * Each participant has two peer connections with the node: the publisher
 * connection, on which this client offers the media it sends, and the
 * subscriber connection, on which the node offers the media it forwards.
 * Neither side ever has to resolve an offer collision.
 *
 * End-to-end encryption (docs/E2EE.md) is on by default: frames are
 * encrypted with SFrame before they leave the browser, keys travel sealed in
 * relay messages, and the node forwards what it cannot read. The key
 * management and the frame transforms live in ./e2ee/; this file wires them
 * to the call.
 *
 * With end-to-end encryption on, nobody gets this client's media keys
 * before a member of the call admits them (docs/E2EE.md, "Admission and
 * rosters"): a newcomer waits (`waiting`) until a member admits it
 * ({@link Call#admit}, or the `admission` option of {@link connect}), and
 * this client waits too until a member admits it (`selfadmitted`; the
 * first in the call is admitted at once). Every member signs its view of
 * who is in the call; when they disagree for a few seconds the call raises
 * `rostermismatch`, and this client sends no new key until they agree.
 */

export { PROTOCOL_VERSION, SIGNAL_PATH, SottoError, isPermanent, signalURL, parseMsids, rewriteMsid } from "./wire.js";
export { Call, connect } from "./call.js";
export { Publication } from "./publish.js";

/**
 * @typedef {import("./types.js").ConnectionState} ConnectionState
 * @typedef {import("./types.js").E2EEState} E2EEState
 * @typedef {import("./types.js").TrackInfo} TrackInfo
 * @typedef {import("./types.js").Participant} Participant
 * @typedef {import("./types.js").ReconnectOptions} ReconnectOptions
 * @typedef {import("./types.js").ConnectOptions} ConnectOptions
 * @typedef {import("./types.js").CameraOptions} CameraOptions
 * @typedef {import("./types.js").MicrophoneOptions} MicrophoneOptions
 * @typedef {import("./types.js").PublishOptions} PublishOptions
 * @typedef {import("./types.js").InboundTrackStats} InboundTrackStats
 * @typedef {import("./types.js").TrackEventDetail} TrackEventDetail
 * @typedef {import("./types.js").Newcomer} Newcomer
 * @typedef {import("./types.js").AdmissionDecision} AdmissionDecision
 * @typedef {import("./types.js").AdmissionPolicy} AdmissionPolicy
 * @typedef {import("./types.js").ParticipantAdmission} ParticipantAdmission
 * @typedef {import("./types.js").RosterStatus} RosterStatus
 * @typedef {import("./types.js").RosterMismatch} RosterMismatch
 * @typedef {import("./types.js").RosterMismatchDetail} RosterMismatchDetail
 * @typedef {import("./types.js").KeyChange} KeyChange
 * @typedef {import("./types.js").KeyCheckFailure} KeyCheckFailure
 * @typedef {import("./types.js").Covered} Covered
 * @typedef {import("./types.js").CallEventName} CallEventName
 * @typedef {import("./publish.js").Attachment} Attachment
 * @typedef {import("./receive.js").Received} Received
 * @typedef {import("./signal.js").SessionHooks} SessionHooks
 */

/**
 * @template T
 * @typedef {import("./wire.js").Deferred<T>} Deferred
 */
