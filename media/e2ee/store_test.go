package e2ee

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileStoreKeepsIdentityAndKnownKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.json")
	st, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	id, err := st.Identity()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("the store was not written when the identity was made: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("the store has mode %v, want 0600", fi.Mode().Perm())
	}
	bob := newIdentity(t).PublicKey()
	if tr, _, _, err := CheckKey(st, "bob", bob); err != nil || tr != TrustNew {
		t.Fatalf("first sight of bob: %v, %v", tr, err)
	}
	if err := st.Remember("bob", KnownKey{Key: bob, Verified: true}); err != nil {
		t.Fatal(err)
	}

	again, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := again.Identity()
	if err != nil || !bytes.Equal(id2.PublicKey(), id.PublicKey()) {
		t.Fatalf("the reopened store has another identity (%v)", err)
	}
	if k, ok := again.Known("bob"); !ok || !bytes.Equal(k.Key, bob) || !k.Verified {
		t.Fatalf("the reopened store knows bob as %+v, %v", k, ok)
	}
	if tr, _, _, _ := CheckKey(again, "bob", bob); tr != TrustSame {
		t.Fatalf("bob's same key: %v", tr)
	}
	mallory := newIdentity(t).PublicKey()
	tr, old, _, err := CheckKey(again, "bob", mallory)
	if err != nil || tr != TrustChanged || !bytes.Equal(old.Key, bob) || !old.Verified {
		t.Fatalf("bob's changed key: %v, %+v, %v", tr, old, err)
	}
	if k, _ := again.Known("bob"); !bytes.Equal(k.Key, bob) {
		t.Fatal("a changed key replaced the known one without the application's say")
	}
	b, _ := os.ReadFile(path)
	if bytes.Contains(b, mallory) {
		t.Fatal("the changed key was written")
	}
}

func TestFileStoreRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.json")
	if err := os.WriteFile(open, []byte(`{"version":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileStore(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a store others can read: %v, want an error saying chmod 600", err)
	}
	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileStore(garbage); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("a store that does not parse: %v", err)
	}
	short := filepath.Join(dir, "short.json")
	if err := os.WriteFile(short, []byte(`{"version":1,"known":{"bob":{"key":"AAAA"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileStore(short); err == nil {
		t.Fatal("a store with a 3-byte known key was opened")
	}
}

func TestMemoryStoreIdentityIsStable(t *testing.T) {
	st := NewMemoryStore()
	a, err := st.Identity()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := st.Identity()
	if a != b {
		t.Fatal("a memory store made two identities")
	}
}

// TestLookalikeNameIsNotANewPerson: after meeting bob, a "bob" with a
// zero-width space, a capital, a fullwidth letter or a combining mark is
// not taken as someone new: CheckKey says whom it looks like and remembers
// nothing.
func TestLookalikeNameIsNotANewPerson(t *testing.T) {
	st := NewMemoryStore()
	bob := newIdentity(t).PublicKey()
	if tr, _, _, err := CheckKey(st, "bob", bob); err != nil || tr != TrustNew {
		t.Fatalf("first sight of bob: %v, %v", tr, err)
	}
	for _, name := range []string{"bob\u200b", "Bob", "ｂｏｂ", "bob\u0301", "b\u00a0ob", "bob\ufe0f"} {
		key := newIdentity(t).PublicKey()
		tr, k, like, err := CheckKey(st, name, key)
		if err != nil || tr != TrustLookalike || like != "bob" || !bytes.Equal(k.Key, bob) {
			t.Errorf("%q: %v, %+v, looks like %q, %v; want TrustLookalike of bob", name, tr, k, like, err)
		}
		if _, ok := st.Known(name); ok {
			t.Errorf("%q was remembered", name)
		}
	}
	if tr, _, _, _ := CheckKey(st, "rob", newIdentity(t).PublicKey()); tr != TrustNew {
		t.Errorf("rob, a different name: %v", tr)
	}
}

func TestSkeleton(t *testing.T) {
	for in, want := range map[string]string{
		"bob": "bob", "Bob": "bob", "bob\u200b": "bob", "ｂｏｂ": "bob", "bob\u0301": "bob",
		"İstanbul": "istanbul", "Straße": "straße", "ﬁle": "file", "b o b": "bob", "\u202ebob": "bob",
	} {
		if got := Skeleton(in); got != want {
			t.Errorf("Skeleton(%q) = %q, want %q", in, got, want)
		}
	}
}
