// @ts-check
/**
 * @file Where a browser keeps its identity and what it learned about other
 * people's identity keys (trust on first use), as media/e2ee/store.go
 * (docs/E2EE.md, "Known people"):
 *
 *   - IndexedDBStore: per origin, in the IndexedDB database "sotto-e2ee".
 *     The identity's Ed25519 private key is a non-extractable CryptoKey,
 *     kept by structured clone: this code, the page and the server never
 *     see its bytes, and it survives reloads and restarts of the browser.
 *     Clearing the site's data deletes it: the next load makes a new
 *     identity, which every person met before sees as a changed key.
 *   - MemoryStore: in memory only, for tests and bots (Go's MemoryStore).
 *
 * Both keep known people by the access token's sub: {key (the 32-byte
 * Ed25519 identity key), verified, firstSeen}, and copy what they are
 * given and what they return: nothing the caller holds aliases a stored
 * key. Every method is asynchronous (IndexedDB is); E2EE (index.js)
 * applies them as the Go SDK's client does.
 */

import { Identity, PUBLIC_KEY_SIZE, equalBytes } from "./identity.js";

/**
 * What a store remembers about one person's identity key (Go's KnownKey).
 * @typedef {object} KnownKey
 * @property {Uint8Array<ArrayBuffer>} key the Ed25519 identity key, 32 bytes
 * @property {boolean} verified the user compared the verification code and marked it verified
 * @property {Date} firstSeen when this key was first seen (or accepted) for this person
 */

/**
 * Keeps a client's identity and the keys it learned (Go's IdentityStore).
 * E2EE.create takes one as its store option; IndexedDBStore and
 * MemoryStore are the two this SDK makes.
 * @typedef {object} IdentityStore
 * @property {() => Promise<Identity>} identity this client's identity, made (and kept) the first time
 * @property {(person: string) => Promise<KnownKey|null>} known the key remembered for person (a token's sub), or null
 * @property {(person: string, k: KnownKey) => Promise<void>} remember keeps k as person's, replacing what was there;
 *   rejects a key that is not 32 bytes
 */

/**
 * What a store says about a key seen for a person (Go's Trust): "new"
 * (nobody was known by that name; the key is now remembered), "same" (the
 * key is the one remembered), "changed" (another key is remembered for that
 * person; nothing was changed in the store: the application decides).
 * @typedef {"new"|"same"|"changed"} Trust
 */

/**
 * Looks key up for person in store (Go's CheckKey): "new" (and remembers
 * it, unverified, first seen now), "same", or "changed" with what was
 * remembered.
 * @param {IdentityStore} store
 * @param {string} person
 * @param {Uint8Array<ArrayBuffer>} key
 * @returns {Promise<{trust: Trust, known: KnownKey|null}>}
 */
export async function checkKey(store, person, key) {
  const k = await store.known(person);
  if (!k) {
    await store.remember(person, { key: key.slice(), verified: false, firstSeen: new Date() });
    return { trust: "new", known: null };
  }
  // A copy, whatever the store hands out: changing what is returned must
  // not change the key the store pins for that person.
  const known = { key: new Uint8Array(k.key), verified: k.verified, firstSeen: k.firstSeen };
  return { trust: equalBytes(known.key, key) ? "same" : "changed", known };
}

/**
 * A copy of k, checked: a 32-byte key, verified a boolean, firstSeen a
 * Date. Throws a TypeError otherwise.
 * @param {unknown} k
 * @param {string} what
 * @returns {KnownKey}
 */
function knownKey(k, what) {
  const r = /** @type {any} */ (k);
  if (typeof r !== "object" || r === null || !(r.key instanceof Uint8Array)) {
    throw new TypeError(`e2ee: store: ${what}: no key`);
  }
  if (r.key.length !== PUBLIC_KEY_SIZE) {
    throw new TypeError(`e2ee: store: ${what}: key of ${r.key.length} bytes, want ${PUBLIC_KEY_SIZE}`);
  }
  const firstSeen = r.firstSeen instanceof Date ? new Date(r.firstSeen.getTime()) : new Date(r.firstSeen ?? 0);
  return { key: new Uint8Array(r.key), verified: r.verified === true, firstSeen };
}

/**
 * An IdentityStore in memory only: the identity and what it learned last
 * as long as the object (Go's MemoryStore). For tests and bots; a page
 * that must keep its identity uses IndexedDBStore.
 */
export class MemoryStore {
  /**
   * @param {Identity} [identity] the identity to hold; a fresh one is made on first use otherwise
   */
  constructor(identity) {
    if (identity !== undefined && !(identity instanceof Identity)) {
      throw new TypeError("e2ee: MemoryStore takes an Identity");
    }
    /** @private @type {Promise<Identity>|null} */
    this.id = identity ? Promise.resolve(identity) : null;
    /** @private @type {Map<string, KnownKey>} */
    this.people = new Map();
  }

  /**
   * This store's identity, made the first time.
   * @returns {Promise<Identity>}
   */
  identity() {
    if (!this.id) {
      const made = Identity.generate();
      this.id = made;
      made.catch(() => {
        if (this.id === made) {
          this.id = null;
        }
      });
    }
    return this.id;
  }

  /**
   * @param {string} person
   * @returns {Promise<KnownKey|null>}
   */
  async known(person) {
    const k = this.people.get(person);
    return k ? knownKey(k, person) : null;
  }

  /**
   * @param {string} person
   * @param {KnownKey} k
   * @returns {Promise<void>}
   */
  async remember(person, k) {
    this.people.set(person, knownKey(k, person));
  }
}

const DB_NAME = "sotto-e2ee";
const DB_VERSION = 1;
const IDENTITY = "identity";
const KNOWN = "known";
const SELF = "self";

/**
 * @template T
 * @param {IDBRequest<T>} req
 * @returns {Promise<T>}
 */
function result(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/**
 * @param {IDBTransaction} tx
 * @returns {Promise<void>}
 */
function committed(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("e2ee: store: transaction aborted"));
  });
}

/** Only IndexedDBStore.open constructs. */
const OPEN = Symbol("IndexedDBStore.open");

/**
 * An IdentityStore in IndexedDB, for this page's origin: the identity's
 * private key as a non-extractable CryptoKey with its public key, and the
 * known people. Every tab of the origin shares it: the first to need an
 * identity makes it, the others take that one.
 */
export class IndexedDBStore {
  /**
   * Opens (creating if needed) the store of this origin.
   * @param {string} [name] the IndexedDB database, "sotto-e2ee" by default
   * @returns {Promise<IndexedDBStore>}
   */
  static async open(name = DB_NAME) {
    if (typeof indexedDB === "undefined") {
      throw new Error("e2ee: this browser has no IndexedDB here");
    }
    const req = indexedDB.open(name, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(IDENTITY)) {
        db.createObjectStore(IDENTITY);
      }
      if (!db.objectStoreNames.contains(KNOWN)) {
        db.createObjectStore(KNOWN);
      }
    };
    const db = await result(req);
    // Another tab deleting or upgrading the database must not wait on us.
    db.onversionchange = () => db.close();
    return new IndexedDBStore(OPEN, db, name);
  }

  /**
   * Use IndexedDBStore.open.
   * @param {symbol} token
   * @param {IDBDatabase} db
   * @param {string} name
   */
  constructor(token, db, name) {
    if (token !== OPEN) {
      throw new TypeError("e2ee: use IndexedDBStore.open()");
    }
    /** @private */
    this.db = db;
    /**
     * The IndexedDB database.
     * @readonly
     */
    this.name = name;
    /** @private @type {Promise<Identity>|null} */
    this.id = null;
  }

  /**
   * This origin's identity: the one kept here, or a new one, kept now. Two
   * tabs asking at once get the same one. Rejects when the kept keys
   * cannot be used (clearing the site's data starts with a new identity).
   * @returns {Promise<Identity>}
   */
  identity() {
    if (!this.id) {
      const loading = this.loadIdentity();
      this.id = loading;
      loading.catch(() => {
        if (this.id === loading) {
          this.id = null;
        }
      });
    }
    return this.id;
  }

  /**
   * @returns {Promise<Identity>}
   * @private
   */
  async loadIdentity() {
    let rec = await result(this.db.transaction(IDENTITY).objectStore(IDENTITY).get(SELF));
    if (rec === undefined) {
      // Made outside the transaction (WebCrypto is not IndexedDB, and a
      // transaction ends when nothing is pending on it), then kept unless
      // another tab kept one meanwhile: the get and the put are one
      // read-write transaction, and those do not overlap.
      const fresh = await Identity.generate();
      const tx = this.db.transaction(IDENTITY, "readwrite");
      const st = tx.objectStore(IDENTITY);
      const get = st.get(SELF);
      get.onsuccess = () => {
        if (get.result === undefined) {
          st.put({ privateKey: fresh.privateKey, publicKey: fresh.publicKey }, SELF);
        } else {
          rec = get.result;
        }
      };
      await committed(tx);
      if (rec === undefined) {
        return fresh;
      }
    }
    const r = /** @type {any} */ (rec);
    try {
      if (!(r?.privateKey instanceof CryptoKey) || !(r.publicKey instanceof Uint8Array)) {
        throw new TypeError("not a key pair");
      }
      return await Identity.fromKeys(r.privateKey, new Uint8Array(r.publicKey));
    } catch (err) {
      throw new Error(`e2ee: the identity kept in this browser (IndexedDB "${this.name}") cannot be used ` +
        `(${err instanceof Error ? err.message : String(err)}): clearing this site's data starts with a new identity`);
    }
  }

  /**
   * @param {string} person
   * @returns {Promise<KnownKey|null>}
   */
  async known(person) {
    const rec = await result(this.db.transaction(KNOWN).objectStore(KNOWN).get(person));
    return rec === undefined ? null : knownKey(rec, person);
  }

  /**
   * @param {string} person
   * @param {KnownKey} k
   * @returns {Promise<void>}
   */
  async remember(person, k) {
    const v = knownKey(k, person);
    const tx = this.db.transaction(KNOWN, "readwrite");
    tx.objectStore(KNOWN).put(v, person);
    await committed(tx);
  }

  /** Closes the database; the store cannot be used after. */
  close() {
    this.db.close();
  }
}

/** @type {Promise<IdentityStore>|null} */
let pageStore = null;

/**
 * The store E2EE.create uses by default, one for the page: this origin's
 * IndexedDBStore, or, where IndexedDB cannot be opened (some private
 * windows, opaque origins), a MemoryStore, with a warning: the page then
 * has a new identity every time it loads.
 * @returns {Promise<IdentityStore>}
 */
export function defaultIdentityStore() {
  if (!pageStore) {
    pageStore = IndexedDBStore.open().catch((err) => {
      console.warn("e2ee: this browser cannot keep the identity key (IndexedDB:", String(err),
        "); this page gets a new identity every time it loads, which everyone met before sees as a changed key");
      return new MemoryStore();
    });
  }
  return pageStore;
}
