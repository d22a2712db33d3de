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
 *
 * Checking a key (checkKey) and marking it verified (markVerified) read
 * and then write: both stores do each in one step (for IndexedDB, one
 * read-write transaction, which no other tab's overlaps), so two tabs
 * meeting the same new person at once cannot both take their key as the
 * first.
 */

import { Identity, PUBLIC_KEY_SIZE, equalBytes } from "./identity.js";
import { skeleton } from "./skeleton.js";

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
 * MemoryStore are the two this SDK makes. checkKey and markVerified are
 * optional: a store that has them does each in one atomic step (both of
 * this SDK's do); otherwise the functions of the same names do it with
 * known, knownNames and remember.
 * @typedef {object} IdentityStore
 * @property {() => Promise<Identity>} identity this client's identity, made (and kept) the first time
 * @property {(person: string) => Promise<KnownKey|null>} known the key remembered for person (a token's sub), or null
 * @property {(person: string, k: KnownKey) => Promise<void>} remember keeps k as person's, replacing what was there;
 *   rejects a key that is not 32 bytes
 * @property {() => Promise<string[]>} knownNames everyone remembered, in no particular order (Go's KnownNames)
 * @property {(person: string, key: Uint8Array<ArrayBuffer>) => Promise<KeyCheck>} [checkKey] what the function
 *   checkKey does, in one step
 * @property {(person: string, key: Uint8Array<ArrayBuffer>, verified: boolean) => Promise<Marked>} [markVerified]
 *   what the function markVerified does, in one step
 */

/**
 * What a store says about a key seen for a person (Go's Trust): "new"
 * (nobody was known by that name, nor by a look-alike one; the key is now
 * remembered), "same" (the key is the one remembered), "changed" (another
 * key is remembered for that person), "lookalike" (nobody is known by that
 * name, but someone is by a name with the same skeleton: a name made to
 * pass for theirs). After "changed" and "lookalike" nothing was changed in
 * the store: the application decides.
 * @typedef {"new"|"same"|"changed"|"lookalike"} Trust
 */

/**
 * checkKey's answer: the verdict; for "same" and "changed" what is
 * remembered for the person, for "lookalike" what is remembered for the
 * known person the name looks like (looksLike, "" otherwise), for "new"
 * null.
 * @typedef {object} KeyCheck
 * @property {Trust} trust
 * @property {KnownKey|null} known
 * @property {string} looksLike
 */

/**
 * What markVerified did: "marked", or nothing because nobody is known by
 * that name ("unknown") or another key is ("otherkey").
 * @typedef {"marked"|"unknown"|"otherkey"} Marked
 */

/**
 * The verdict on key for person, given what is remembered for person (k).
 * @param {string} person
 * @param {Uint8Array<ArrayBuffer>} key
 * @param {KnownKey|null} k
 * @returns {KeyCheck|null} null: nobody is known by that name
 */
function verdictOf(person, key, k) {
  if (!k) {
    return null;
  }
  // A copy, whatever the store hands out: changing what is returned must
  // not change the key the store pins for that person.
  const known = { key: new Uint8Array(k.key), verified: k.verified, firstSeen: k.firstSeen };
  return { trust: equalBytes(known.key, key) ? "same" : "changed", known, looksLike: "" };
}

/**
 * The first of names, other than person, with person's skeleton, or "".
 * @param {string} person
 * @param {Iterable<unknown>} names
 * @returns {string}
 */
function lookalikeOf(person, names) {
  const sk = skeleton(person);
  for (const n of names) {
    if (typeof n === "string" && n !== person && skeleton(n) === sk) {
      return n;
    }
  }
  return "";
}

/**
 * A new person's record: key, unverified, first seen now.
 * @param {Uint8Array<ArrayBuffer>} key
 * @returns {KnownKey}
 */
function firstSight(key) {
  return { key: key.slice(), verified: false, firstSeen: new Date() };
}

/**
 * Looks key up for person in store (Go's CheckKey): "same" or "changed"
 * with what is remembered for person; when nobody is, "lookalike" with
 * what is remembered for a known person whose name has person's skeleton
 * (and that name, looksLike), or else "new", and key is remembered as
 * person's, unverified, first seen now. A store with its own checkKey
 * does all that in one step (IndexedDBStore: one read-write transaction,
 * so that two tabs meeting the same new person at once do not both take
 * their key as the first). Rejects when the store cannot be read or
 * written: the key was not checked, and must not be trusted.
 * @param {IdentityStore} store
 * @param {string} person
 * @param {Uint8Array<ArrayBuffer>} key
 * @returns {Promise<KeyCheck>}
 */
export async function checkKey(store, person, key) {
  if (typeof store.checkKey === "function") {
    const r = await store.checkKey(person, key.slice());
    const known = r.known ? { key: new Uint8Array(r.known.key), verified: r.known.verified === true, firstSeen: r.known.firstSeen } : null;
    return { trust: r.trust, known, looksLike: String(r.looksLike ?? "") };
  }
  const seen = verdictOf(person, key, await store.known(person));
  if (seen) {
    return seen;
  }
  const like = lookalikeOf(person, await store.knownNames());
  if (like !== "") {
    const o = await store.known(like);
    if (!o) {
      throw new Error(`e2ee: store: ${JSON.stringify(like)} is listed but not known`);
    }
    return { trust: "lookalike", known: { key: new Uint8Array(o.key), verified: o.verified, firstSeen: o.firstSeen }, looksLike: like };
  }
  await store.remember(person, firstSight(key));
  return { trust: "new", known: null, looksLike: "" };
}

/**
 * Marks person's key verified (or, with false, not) in store, only if key
 * is the key remembered for person: "marked", "unknown" (nobody is) or
 * "otherkey" (another key is; nothing was changed). A store with its own
 * markVerified does it in one step.
 * @param {IdentityStore} store
 * @param {string} person
 * @param {Uint8Array<ArrayBuffer>} key
 * @param {boolean} verified
 * @returns {Promise<Marked>}
 */
export async function markVerified(store, person, key, verified) {
  if (typeof store.markVerified === "function") {
    return store.markVerified(person, key.slice(), verified);
  }
  const k = await store.known(person);
  if (!k) {
    return "unknown";
  }
  if (!equalBytes(k.key, key)) {
    return "otherkey";
  }
  await store.remember(person, { key: k.key, verified, firstSeen: k.firstSeen });
  return "marked";
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

  /**
   * @returns {Promise<string[]>}
   */
  async knownNames() {
    return [...this.people.keys()];
  }

  /**
   * The function checkKey, in one step (nothing runs between its read and
   * its write).
   * @param {string} person
   * @param {Uint8Array<ArrayBuffer>} key
   * @returns {Promise<KeyCheck>}
   */
  async checkKey(person, key) {
    const k = this.people.get(person);
    const seen = verdictOf(person, key, k ? knownKey(k, person) : null);
    if (seen) {
      return seen;
    }
    const like = lookalikeOf(person, this.people.keys());
    if (like !== "") {
      return { trust: "lookalike", known: knownKey(this.people.get(like), like), looksLike: like };
    }
    this.people.set(person, knownKey(firstSight(key), person));
    return { trust: "new", known: null, looksLike: "" };
  }

  /**
   * The function markVerified, in one step.
   * @param {string} person
   * @param {Uint8Array<ArrayBuffer>} key
   * @param {boolean} verified
   * @returns {Promise<Marked>}
   */
  async markVerified(person, key, verified) {
    const k = this.people.get(person);
    if (!k) {
      return "unknown";
    }
    if (!equalBytes(k.key, key)) {
      return "otherkey";
    }
    this.people.set(person, knownKey({ ...k, verified: verified === true }, person));
    return "marked";
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
    // A failed request's error reaches the transaction before it aborts.
    tx.onerror = (ev) => reject(/** @type {IDBRequest} */ (ev.target)?.error ?? tx.error ?? new Error("e2ee: store: transaction failed"));
    tx.onabort = () => reject(tx.error ?? new Error("e2ee: store: transaction aborted"));
  });
}

/**
 * Opens (creating if needed) database name at this code's version.
 * @param {string} name
 * @returns {Promise<IDBDatabase>}
 */
function openDatabase(name) {
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
  return result(req);
}

/** Only IndexedDBStore.open constructs. */
const OPEN = Symbol("IndexedDBStore.open");

/**
 * An IdentityStore in IndexedDB, for this page's origin: the identity's
 * private key as a non-extractable CryptoKey with its public key, and the
 * known people. Every tab of the origin shares it: the first to need an
 * identity makes it, the others take that one.
 *
 * When another tab upgrades or deletes the database, this store closes
 * its connection (not to hold that tab up) and opens the database again
 * when next used; when the browser closes it (the site's data cleared, a
 * failure), the same. If it cannot be opened again (another tab upgraded
 * it to a newer version than this code's), every use rejects until the
 * page is reloaded: nothing is taken for known or new meanwhile.
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
    return new IndexedDBStore(OPEN, await openDatabase(name), name);
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
    /**
     * The IndexedDB database.
     * @readonly
     */
    this.name = name;
    /** @private @type {IDBDatabase|null} the open connection, null once the browser or another tab closed it */
    this.db = null;
    /** @private @type {Promise<IDBDatabase>|null} opening it again */
    this.reopening = null;
    /** @private */
    this.closed = false;
    /** @private @type {Promise<Identity>|null} */
    this.id = null;
    this.adopt(db);
  }

  /**
   * Uses db from now on, until another tab or the browser closes it.
   * @param {IDBDatabase} db
   * @private
   */
  adopt(db) {
    this.db = db;
    const lost = () => {
      if (this.db === db) {
        this.db = null;
      }
    };
    // Another tab deleting or upgrading the database must not wait on us:
    // closed now, opened again at the next use.
    db.onversionchange = () => {
      db.close();
      lost();
    };
    // Closed by the browser, not by close(): the same.
    db.onclose = lost;
  }

  /**
   * The open connection, opened again if it was closed under this store.
   * Rejects when it cannot be (the next use tries again).
   * @returns {Promise<IDBDatabase>}
   * @private
   */
  database() {
    if (this.closed) {
      return Promise.reject(new Error(`e2ee: store: IndexedDB "${this.name}" was closed`));
    }
    if (this.db) {
      return Promise.resolve(this.db);
    }
    if (!this.reopening) {
      const opening = openDatabase(this.name).then((db) => {
        if (this.closed) {
          db.close();
          throw new Error(`e2ee: store: IndexedDB "${this.name}" was closed`);
        }
        this.adopt(db);
        return db;
      }, (err) => {
        throw new Error(`e2ee: store: IndexedDB "${this.name}" was closed under this page and cannot be opened again ` +
          `(${err instanceof DOMException ? `${err.name}: ` : ""}${err instanceof Error ? err.message : String(err)}): ` +
          "another tab may have a newer version of this page; reload this one", { cause: err });
      });
      this.reopening = opening;
      opening.finally(() => {
        if (this.reopening === opening) {
          this.reopening = null;
        }
      }).catch(() => {});
    }
    return this.reopening;
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
    let rec = await result((await this.database()).transaction(IDENTITY).objectStore(IDENTITY).get(SELF));
    if (rec === undefined) {
      // Made outside the transaction (WebCrypto is not IndexedDB, and a
      // transaction ends when nothing is pending on it), then kept unless
      // another tab kept one meanwhile: the get and the put are one
      // read-write transaction, and those do not overlap.
      const fresh = await Identity.generate();
      const tx = (await this.database()).transaction(IDENTITY, "readwrite");
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
    const rec = await result((await this.database()).transaction(KNOWN).objectStore(KNOWN).get(person));
    return rec === undefined ? null : knownKey(rec, person);
  }

  /**
   * @param {string} person
   * @param {KnownKey} k
   * @returns {Promise<void>}
   */
  async remember(person, k) {
    const v = knownKey(k, person);
    const tx = (await this.database()).transaction(KNOWN, "readwrite");
    tx.objectStore(KNOWN).put(v, person);
    await committed(tx);
  }

  /**
   * @returns {Promise<string[]>}
   */
  async knownNames() {
    const keys = await result((await this.database()).transaction(KNOWN).objectStore(KNOWN).getAllKeys());
    return keys.filter((k) => typeof k === "string");
  }

  /**
   * Runs step on one read-write transaction of the known people and
   * resolves with what it settled once the transaction committed. step
   * queues requests on the store it is given, takes their results with
   * then(request, f), and calls done with the answer; if it, or an f,
   * throws, the transaction is aborted (nothing is written) and this
   * rejects with what was thrown.
   * @template T
   * @param {(st: IDBObjectStore, then: <R>(req: IDBRequest<R>, f: (r: R) => void) => void, done: (v: T) => void) => void} step
   * @returns {Promise<T>}
   * @private
   */
  async readWrite(step) {
    const tx = (await this.database()).transaction(KNOWN, "readwrite");
    /** @type {{v: T}|null} */
    let answer = null;
    /** @type {{err: unknown}|null} */
    let failure = null;
    const guard = (/** @type {() => void} */ f) => {
      try {
        f();
      } catch (err) {
        failure = { err };
        tx.abort();
      }
    };
    const commit = committed(tx);
    guard(() => step(
      tx.objectStore(KNOWN),
      (req, f) => {
        req.onsuccess = () => guard(() => f(req.result));
      },
      (v) => {
        answer = { v };
      },
    ));
    try {
      await commit;
    } catch (err) {
      throw failure ? /** @type {{err: unknown}} */ (failure).err : err;
    }
    if (!answer) {
      throw new Error("e2ee: store: a transaction settled nothing");
    }
    return /** @type {{v: T}} */ (answer).v;
  }

  /**
   * The function checkKey in one read-write transaction: the known entry
   * is read and the new one written only if there was none, so two tabs
   * meeting the same new person at once agree on who met them first (the
   * other sees "changed").
   * @param {string} person
   * @param {Uint8Array<ArrayBuffer>} key
   * @returns {Promise<KeyCheck>}
   */
  checkKey(person, key) {
    const want = key.slice();
    return this.readWrite((st, then, done) => {
      then(st.get(person), (rec) => {
        const seen = verdictOf(person, want, rec === undefined ? null : knownKey(rec, person));
        if (seen) {
          done(seen);
          return;
        }
        then(st.getAllKeys(), (names) => {
          const like = lookalikeOf(person, names);
          if (like === "") {
            st.put(knownKey(firstSight(want), person), person);
            done({ trust: "new", known: null, looksLike: "" });
            return;
          }
          then(st.get(like), (o) => {
            done({ trust: "lookalike", known: knownKey(o, like), looksLike: like });
          });
        });
      });
    });
  }

  /**
   * The function markVerified in one read-write transaction.
   * @param {string} person
   * @param {Uint8Array<ArrayBuffer>} key
   * @param {boolean} verified
   * @returns {Promise<Marked>}
   */
  markVerified(person, key, verified) {
    const want = key.slice();
    return this.readWrite((st, then, done) => {
      then(st.get(person), (rec) => {
        if (rec === undefined) {
          done("unknown");
          return;
        }
        const k = knownKey(rec, person);
        if (!equalBytes(k.key, want)) {
          done("otherkey");
          return;
        }
        st.put({ ...k, verified: verified === true }, person);
        done("marked");
      });
    });
  }

  /** Closes the database; the store cannot be used after. */
  close() {
    this.closed = true;
    this.db?.close();
    this.db = null;
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
