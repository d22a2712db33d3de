package e2ee

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// IdentityStore keeps a client's identity key and the keys it met (trust
// on first use, docs/E2EE.md "Known people").
type IdentityStore interface {
	// Identity returns this client's identity, made the first time.
	Identity() (*Identity, error)
	// Known returns the key remembered for person (a token's sub).
	Known(person string) (KnownKey, bool)
	// Remember keeps key as person's, replacing what was there.
	Remember(person string, k KnownKey) error
	// KnownNames lists everyone remembered, in no particular order.
	KnownNames() []string
}

// KnownKey is what a store remembers about one person's identity key.
type KnownKey struct {
	Key       []byte    `json:"key"` // Ed25519, PublicKeySize bytes
	Verified  bool      `json:"verified,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
}

// Trust is what a store says about a key seen for a person.
type Trust int

const (
	// TrustNew: nobody was known by that name; the key is now remembered.
	TrustNew Trust = iota
	// TrustSame: the key is the one remembered.
	TrustSame
	// TrustChanged: another key is remembered; the store is unchanged and
	// the application decides.
	TrustChanged
	// TrustLookalike: someone is known by a name with the same Skeleton;
	// the store is unchanged and the application decides.
	TrustLookalike
)

// CheckKey looks key up for person in st, remembering it if TrustNew; it
// returns what is remembered, and the look-alike name for TrustLookalike.
func CheckKey(st IdentityStore, person string, key []byte) (Trust, KnownKey, string, error) {
	k, ok := st.Known(person)
	k.Key = bytes.Clone(k.Key)
	switch {
	case ok && bytes.Equal(k.Key, key):
		return TrustSame, k, "", nil
	case ok:
		return TrustChanged, k, "", nil
	}
	sk := Skeleton(person)
	for _, other := range st.KnownNames() {
		if other != person && Skeleton(other) == sk {
			o, _ := st.Known(other)
			return TrustLookalike, o, other, nil
		}
	}
	err := st.Remember(person, KnownKey{Key: bytes.Clone(key), FirstSeen: time.Now().UTC()})
	return TrustNew, KnownKey{}, "", err
}

type storeData struct {
	Version int                 `json:"version"`
	Seed    []byte              `json:"identity_seed,omitempty"` // Ed25519 seed (RFC 8032 private key)
	Known   map[string]KnownKey `json:"known,omitempty"`
}

const storeVersion = 1

// MemoryStore is an IdentityStore in memory only; its zero value is ready.
type MemoryStore struct {
	mu   sync.Mutex
	id   *Identity
	data storeData
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

func (m *MemoryStore) Identity() (*Identity, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.id == nil {
		id, err := NewIdentity()
		if err != nil {
			return nil, err
		}
		m.id = id
	}
	return m.id, nil
}

func (m *MemoryStore) Known(person string) (KnownKey, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.data.Known[person]
	k.Key = bytes.Clone(k.Key)
	return k, ok
}

func (m *MemoryStore) KnownNames() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.data.Known))
	for p := range m.data.Known {
		out = append(out, p)
	}
	return out
}

func (m *MemoryStore) Remember(person string, k KnownKey) error {
	if len(k.Key) != PublicKeySize {
		return fmt.Errorf("e2ee: store: key of %d bytes, want %d", len(k.Key), PublicKeySize)
	}
	k.Key = bytes.Clone(k.Key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data.Known == nil {
		m.data.Known = make(map[string]KnownKey)
	}
	m.data.Known[person] = k
	return nil
}

// FileStore is an IdentityStore in one JSON file of mode 0600 holding the
// private key; each change is written atomically (temporary file, rename).
type FileStore struct {
	path string
	mem  MemoryStore
}

// OpenFileStore opens the store at path, created at the first change if
// absent. It refuses a file others can access or that does not parse.
func OpenFileStore(path string) (*FileStore, error) {
	f := &FileStore{path: path}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f.mem.data = storeData{Version: storeVersion}
		return f, nil
	case err != nil:
		return nil, fmt.Errorf("e2ee: identity store %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("e2ee: identity store %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("e2ee: identity store %s has mode %v: it holds a private key; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	var d storeData
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("e2ee: identity store %s does not parse (%v): move it away to start with a new identity", path, err)
	}
	if d.Version != storeVersion {
		return nil, fmt.Errorf("e2ee: identity store %s is version %d, this client reads %d", path, d.Version, storeVersion)
	}
	if d.Seed != nil {
		id, err := identityFromSeed(d.Seed)
		if err != nil {
			return nil, fmt.Errorf("e2ee: identity store %s: %w", path, err)
		}
		f.mem.id = id
	}
	for person, k := range d.Known {
		if len(k.Key) != PublicKeySize {
			return nil, fmt.Errorf("e2ee: identity store %s: the key known for %q is %d bytes, want %d", path, person, len(k.Key), PublicKeySize)
		}
	}
	f.mem.data = d
	return f, nil
}

func (f *FileStore) Identity() (*Identity, error) {
	f.mem.mu.Lock()
	defer f.mem.mu.Unlock()
	if f.mem.id != nil {
		return f.mem.id, nil
	}
	id, err := NewIdentity()
	if err != nil {
		return nil, err
	}
	d := f.mem.data
	d.Seed = id.priv.Seed()
	if err := f.writeLocked(d); err != nil {
		return nil, err
	}
	f.mem.id, f.mem.data = id, d
	return id, nil
}

func (f *FileStore) Known(person string) (KnownKey, bool) { return f.mem.Known(person) }

func (f *FileStore) KnownNames() []string { return f.mem.KnownNames() }

func (f *FileStore) Remember(person string, k KnownKey) error {
	if len(k.Key) != PublicKeySize {
		return fmt.Errorf("e2ee: store: key of %d bytes, want %d", len(k.Key), PublicKeySize)
	}
	k.Key = bytes.Clone(k.Key)
	f.mem.mu.Lock()
	defer f.mem.mu.Unlock()
	d := f.mem.data
	known := make(map[string]KnownKey, len(d.Known)+1)
	for p, v := range d.Known {
		known[p] = v
	}
	known[person] = k
	d.Known = known
	if err := f.writeLocked(d); err != nil {
		return err
	}
	f.mem.data = d
	return nil
}

func (f *FileStore) writeLocked(d storeData) error {
	d.Version = storeVersion
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), "."+filepath.Base(f.path)+".*")
	if err != nil {
		return fmt.Errorf("e2ee: identity store: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("e2ee: identity store: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("e2ee: identity store: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("e2ee: identity store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("e2ee: identity store: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("e2ee: identity store: %w", err)
	}
	return nil
}
