// @ts-check
// The page of TestBrowserCallAdmissionSDK: several calls of web/sdk's
// connect() in one page, one per person, each with an E2EE of its own on
// a MemoryStore kept per person across calls (so a person met in one call
// is known in the next). Everything a Call dispatches is recorded, the
// listeners added right after connect resolves, as an application does.

import { E2EE, MemoryStore, connect } from "/sdk/index.js";

/** @param {Uint8Array} b */
function hex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** @param {string} h */
function unhex(h) {
  return new Uint8Array((h.match(/../g) ?? []).map((x) => parseInt(x, 16)));
}

const EVENTS = ["waiting", "admitted", "refused", "selfadmitted", "selfrefused", "rostermismatch", "rosteragreed", "participantjoined", "participantleft"];

/** @type {Map<string, MemoryStore>} */
const stores = new Map();
/** @type {Map<string, {call: import("/sdk/client.js").Call, events: {type: string, detail: any}[], asked: string[]}>} */
const calls = new Map();

/**
 * A detail as the Go test reads it: keys in hex, participants by identity.
 * @param {any} d
 */
function plain(d) {
  if (d instanceof Uint8Array) {
    return hex(d);
  }
  if (Array.isArray(d)) {
    return d.map(plain);
  }
  if (d && typeof d === "object") {
    if ("participant" in d && d.participant?.identity !== undefined) {
      return { identity: d.participant.identity };
    }
    /** @type {Record<string, any>} */
    const o = {};
    for (const [k, v] of Object.entries(d)) {
      o[k] = plain(v);
    }
    return o;
  }
  return d;
}

/** @param {string} name */
function callOf(name) {
  const c = calls.get(name);
  if (!c) {
    throw new Error(`no call ${name}`);
  }
  return c;
}

/**
 * Runs f: {ok: true} or {error: the error's class}.
 * @param {() => Promise<unknown>} f
 */
async function attempt(f) {
  try {
    await f();
    return { ok: true };
  } catch (err) {
    return { error: /** @type {any} */ (err)?.name ?? String(err), message: String(err) };
  }
}

const callsTest = {
  /**
   * Joins as name. policy: "ask" (no admission option), "admit",
   * "refuse", "only:NAME" (admit NAME, ask about others) or "verified"
   * (admit whoever's key is marked verified).
   * @param {string} name
   * @param {string} token
   * @param {string} policy
   * @param {number} rosterTimeoutMs
   */
  async connect(name, token, policy, rosterTimeoutMs) {
    let store = stores.get(name);
    if (!store) {
      store = new MemoryStore();
      stores.set(name, store);
    }
    const e2ee = await E2EE.create({ store });
    /** @type {string[]} */
    const asked = [];
    /** @type {import("/sdk/client.js").ConnectOptions} */
    const opts = { token, e2ee, rosterTimeoutMs, reconnect: false };
    if (policy !== "ask") {
      opts.admission = (n) => {
        asked.push(n.identity);
        if (policy.startsWith("only:")) {
          return n.identity === policy.slice(5) ? "admit" : "ask";
        }
        if (policy === "verified") {
          return n.verified ? "admit" : "ask";
        }
        return /** @type {"admit"|"refuse"} */ (policy);
      };
    }
    const call = await connect(location.origin, opts);
    /** @type {{type: string, detail: any}[]} */
    const events = [];
    for (const type of EVENTS) {
      call.addEventListener(type, (ev) => events.push({ type, detail: plain(/** @type {CustomEvent} */ (ev).detail) }));
    }
    calls.set(name, { call, events, asked });
    return hex(e2ee.identity.publicKey);
  },

  /** @param {string} name */
  events(name) {
    return callOf(name).events;
  },

  /** @param {string} name */
  asked(name) {
    return callOf(name).asked;
  },

  /**
   * @param {string} name
   * @param {string} identity
   */
  admit(name, identity) {
    return attempt(() => callOf(name).call.admit(identity));
  },

  /**
   * @param {string} name
   * @param {string} identity
   */
  refuse(name, identity) {
    return attempt(() => callOf(name).call.refuse(identity));
  },

  /** @param {string} name */
  admissions(name) {
    return plain(callOf(name).call.admissions());
  },

  /** @param {string} name */
  rosterStatus(name) {
    return callOf(name).call.rosterStatus();
  },

  /** @param {string} name */
  safetyNumber(name) {
    return callOf(name).call.safetyNumber();
  },

  /**
   * name marks identity's key (hex) verified.
   * @param {string} name
   * @param {string} identity
   * @param {string} key
   */
  markVerified(name, identity, key) {
    return attempt(() => callOf(name).call.markVerified(identity, unhex(key), true));
  },

  /** @param {string} name */
  async leave(name) {
    await callOf(name).call.leave();
    calls.delete(name);
  },
};

/** @type {any} */ (window).callsTest = callsTest;
