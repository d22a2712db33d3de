package main

import (
	"bytes"
	"debug/elf"
	"debug/gosym"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

const modulePath = "github.com/sotto-rtc/sotto"

// keyPackages hold end-to-end media keys, relative to the module root.
// signaling/client, the Go SDK, is forbidden too (go list check), but it
// holds no key of its own: it reaches them through these two.
var keyPackages = []string{"media/sframe", "media/e2ee"}

// rfc9605Labels are the HKDF labels of RFC 9605 section 4.4.2, written
// here from the RFC: the test checks them whatever media/sframe does, and
// fails if reading labels from the source stops finding them.
var rfc9605Labels = []string{"SFrame 1.0 Secret key ", "SFrame 1.0 Secret salt "}

// minTopLevelName is the length below which a top-level function name of
// the key packages is too common a word (Open, Seal, grow, label, newKey)
// to say anything about where it came from. Methods are always checked:
// their names carry the receiver type ("(*Sender).Encrypt").
const minTopLevelName = 7

// homonyms are functions of other packages that happen to share a name
// with one in the key packages, by package path and name with the receiver
// in value form. Only that path is excused: the same name under any other
// path still fails the test.
var homonyms = map[string]string{
	"github.com/pion/rtp.Header.MarshalSize": "the RTP header's size, not the SFrame header's",
}

// TestNoEndToEndKeys holds the invariant that the SFU process never holds
// an end-to-end media key (README, docs/E2EE.md): the server binary links
// neither the code that derives, seals or uses those keys (media/sframe,
// media/e2ee) nor the Go SDK that carries it (signaling/client). It checks
// three ways, so that the same code under another package path does not
// slip through:
//
//  1. `go list -deps` names none of those packages (what the linker gets).
//  2. The built sfu binary has no function of media/sframe or media/e2ee,
//     whatever its package path: the forbidden names are read from those
//     packages' source (every method as "T.M" and "(*T).M", every
//     top-level function of at least minTopLevelName letters; less any
//     name a standard-library function in the binary also has) and
//     compared with the part of each function name after its package
//     path. The names come from .gopclntab, which the runtime needs and
//     `-ldflags=-s` keeps, including those of functions inlined
//     everywhere, and from the ELF symbol table when there is one.
//  3. The binary's bytes hold none of the key-derivation labels: RFC
//     9605's and every string constant named *label* in those packages.
//     Files the binary embeds to serve (the browser SDK, which does its own
//     SFrame in the browser) are left out of this one check.
//
// A control build proves 2 and 3 work: a stripped program linking copies
// of both packages under another path must be caught by the same scan.
func TestNoEndToEndKeys(t *testing.T) {
	goCmd := goTool(t)
	deps := goListDeps(t, goCmd, ".")
	if _, ok := deps[modulePath+"/media/sfu"]; !ok {
		t.Fatalf("go list -deps does not list the SFU (%s/media/sfu); is the module path right?", modulePath)
	}
	for _, forbidden := range []string{
		modulePath + "/media/sframe",
		modulePath + "/media/e2ee",
		modulePath + "/signaling/client",
	} {
		if _, ok := deps[forbidden]; ok {
			t.Errorf("cmd/sfu links %s: the server must never hold end-to-end media keys", forbidden)
		}
	}

	src := readKeySource(t, moduleRoot(t, goCmd))
	if n := len(src.methods); n < 20 {
		t.Fatalf("found only %d methods in %v; is the source parsed?", n, keyPackages)
	}
	if n := len(src.funcs); n < 10 {
		t.Fatalf("found only %d top-level functions in %v; is the source parsed?", n, keyPackages)
	}
	for _, l := range rfc9605Labels {
		if !slices.Contains(src.labels, l) {
			t.Fatalf("the labels read from %v (%q) miss RFC 9605's %q; are they still constants named *label*?",
				keyPackages, src.labels, l)
		}
	}

	dir := t.TempDir()
	checkControl(t, goCmd, dir, src)

	bin := filepath.Join(dir, "sfu")
	goBuild(t, goCmd, nil, bin, ".")
	img := readBinary(t, bin)
	for _, want := range []string{"main.main", modulePath + "/signaling.(*Server).ServeHTTP"} {
		if !slices.Contains(img.funcs, want) {
			t.Fatalf("the sfu binary's function names (%d) lack %s; is .gopclntab read?", len(img.funcs), want)
		}
	}
	if img.elfSymbols < 1000 {
		t.Fatalf("the sfu binary has %d ELF symbols; expected an unstripped build", img.elfSymbols)
	}

	checked, dropped := src.checkedNames(img)
	t.Logf("sfu: %d function names from %v (methods in both forms) checked against %d functions; not checked (too common): %v",
		len(checked), keyPackages, len(img.funcs), dropped)
	for sym, name := range img.find(checked) {
		pkg, _, _ := splitSymbol(sym)
		if why, ok := homonyms[pkg+"."+strings.NewReplacer("(*", "", ")", "").Replace(name)]; ok {
			t.Logf("sfu: %s is not key code: %s", sym, why)
			continue
		}
		t.Errorf("the sfu binary has %s, which is %s of %s; if that is another package's function "+
			"of the same name, add it to homonyms", sym, name, checked[name])
	}

	data := maskEmbedded(t, img.data, deps, src.labels)
	for _, l := range src.labels {
		if i := bytes.Index(data, []byte(l)); i >= 0 {
			t.Errorf("the sfu binary holds the key-derivation label %q (at byte %d): it links key derivation code", l, i)
		}
	}
}

// checkControl builds, stripped, a program that links copies of the key
// packages under another path, and fails unless the scan finds every
// function the program references and every label.
func checkControl(t *testing.T, goCmd, dir string, src *keySource) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	const rel = "internal/nokeyscontrol"
	controlPath := modulePath + "/cmd/sfu/" + rel
	overlay := map[string]string{}
	put := func(name string, content []byte) {
		file := filepath.Join(dir, "overlay", strconv.Itoa(len(overlay))+".go")
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, content, 0o644); err != nil {
			t.Fatal(err)
		}
		overlay[filepath.Join(wd, rel, name)] = file
	}
	copyPath := func(i int) string { return controlPath + "/p" + strconv.Itoa(i) }
	rewrite := map[string]string{}
	for i, p := range src.pkgs {
		rewrite[modulePath+"/"+p.rel] = copyPath(i)
	}
	var main bytes.Buffer
	main.WriteString("package main\n\nimport (\n\t\"fmt\"\n")
	for i := range src.pkgs {
		fmt.Fprintf(&main, "\tp%d %q\n", i, copyPath(i))
	}
	main.WriteString(")\n\nvar keep = []any{\n")
	var want []string
	for i, p := range src.pkgs {
		for name, f := range p.files {
			for _, imp := range f.Imports {
				if to, ok := rewrite[mustUnquote(t, imp.Path.Value)]; ok {
					imp.Path.Value = strconv.Quote(to)
				}
			}
			var b bytes.Buffer
			if err := format.Node(&b, src.fset, f); err != nil {
				t.Fatal(err)
			}
			put(filepath.Join("p"+strconv.Itoa(i), filepath.Base(name)), b.Bytes())
		}
		for _, k := range p.keep {
			fmt.Fprintf(&main, "\t%s,\n", strings.ReplaceAll(k.expr, "PKG.", "p"+strconv.Itoa(i)+"."))
			want = append(want, k.name)
		}
	}
	main.WriteString("}\n\nfunc main() { fmt.Println(keep...) }\n")
	put("main.go", main.Bytes())
	ov, err := json.Marshal(map[string]any{"Replace": overlay})
	if err != nil {
		t.Fatal(err)
	}
	ovFile := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ovFile, ov, 0o644); err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(dir, "control")
	goBuild(t, goCmd, []string{"-overlay", ovFile, "-ldflags=-s -w"}, bin, "./"+rel)
	img := readBinary(t, bin)
	if img.elfSymbols != 0 {
		t.Fatalf("control: %d ELF symbols in a build with -ldflags=-s", img.elfSymbols)
	}
	checked, _ := src.checkedNames(img)
	found := img.find(checked)
	seen := map[string]bool{}
	for sym, name := range found {
		if !strings.HasPrefix(sym, controlPath+"/") {
			t.Fatalf("control: %s matched %s but is not one of the copies under %s", sym, name, controlPath)
		}
		seen[name] = true
	}
	var missed []string
	for _, name := range want {
		if _, ok := checked[name]; ok && !seen[name] {
			missed = append(missed, name)
		}
	}
	if len(missed) > 0 || len(seen) < 20 {
		t.Fatalf("control: the scan finds %d of the key packages' functions in a program that links copies of them; "+
			"it misses %v, which the program references", len(seen), missed)
	}
	for _, l := range src.labels {
		if !bytes.Contains(img.data, []byte(l)) {
			t.Fatalf("control: label %q is not in a program that links the key packages", l)
		}
	}
	t.Logf("control: a stripped copy of %v under %s: %d function names and all %d labels found",
		keyPackages, controlPath, len(seen), len(src.labels))
}

// keySource is what the key packages' non-test source defines.
type keySource struct {
	fset    *token.FileSet
	pkgs    []*keyPackage
	methods map[string]string // "T.M" and "(*T).M" -> package
	funcs   map[string]string // top-level function name -> package
	labels  []string
}

type keyPackage struct {
	rel   string
	files map[string]*ast.File
	keep  []keepExpr
}

// keepExpr is a Go expression (PKG.F, (*PKG.T).M) that makes the control
// program link the function whose symbol suffix is name.
type keepExpr struct{ expr, name string }

func readKeySource(t *testing.T, root string) *keySource {
	t.Helper()
	src := &keySource{fset: token.NewFileSet(), methods: map[string]string{}, funcs: map[string]string{}}
	for _, rel := range keyPackages {
		p := &keyPackage{rel: rel, files: map[string]*ast.File{}}
		src.pkgs = append(src.pkgs, p)
		names, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(rel), "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(src.fset, name, nil, parser.ParseComments|parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			p.files[name] = f
			src.readFile(p, f)
		}
		if len(p.files) == 0 {
			t.Fatalf("no Go files in %s", filepath.Join(root, rel))
		}
	}
	for _, l := range rfc9605Labels {
		if !slices.Contains(src.labels, l) {
			src.labels = append(src.labels, l)
		}
	}
	return src
}

func (src *keySource) readFile(p *keyPackage, f *ast.File) {
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			name := d.Name.Name
			if d.Recv == nil {
				if name == "init" || name == "_" {
					continue
				}
				src.funcs[name] = p.rel
				if d.Name.IsExported() && d.Type.TypeParams == nil {
					p.keep = append(p.keep, keepExpr{"PKG." + name, name})
				}
				continue
			}
			typ, ptr := d.Recv.List[0].Type, false
			if star, ok := typ.(*ast.StarExpr); ok {
				typ, ptr = star.X, true
			}
			generic := false
			switch x := typ.(type) {
			case *ast.IndexExpr:
				typ, generic = x.X, true
			case *ast.IndexListExpr:
				typ, generic = x.X, true
			}
			recv := typ.(*ast.Ident).Name
			src.methods[recv+"."+name] = p.rel
			src.methods["(*"+recv+")."+name] = p.rel
			if d.Name.IsExported() && ast.IsExported(recv) && !generic {
				if ptr {
					p.keep = append(p.keep, keepExpr{"(*PKG." + recv + ")." + name, "(*" + recv + ")." + name})
				} else {
					p.keep = append(p.keep, keepExpr{"PKG." + recv + "." + name, recv + "." + name})
				}
			}
		case *ast.GenDecl:
			if d.Tok != token.CONST {
				continue
			}
			for _, spec := range d.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if i >= len(vs.Values) || !strings.Contains(strings.ToLower(id.Name), "label") {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					if s, err := strconv.Unquote(lit.Value); err == nil && s != "" && !slices.Contains(src.labels, s) {
						src.labels = append(src.labels, s)
					}
				}
			}
		}
	}
}

// checkedNames returns the function names to look for in img, each with
// its package, and the ones left out: top-level functions shorter than
// minTopLevelName, and any name that a standard-library function in img
// also has. The standard library is the control for "common name": unlike
// the binary's other packages it cannot hold a copy of the key packages.
func (src *keySource) checkedNames(img *binaryImage) (checked map[string]string, dropped []string) {
	std := map[string]bool{}
	for _, sym := range img.names {
		pkg, rest, ok := splitSymbol(sym)
		if !ok || !isStd(pkg) {
			continue
		}
		for _, c := range symbolNames(rest) {
			std[c] = true
		}
	}
	checked = map[string]string{}
	add := func(name, pkg string, ok bool) {
		if ok && !std[name] {
			checked[name] = pkg
		} else {
			dropped = append(dropped, name)
		}
	}
	for name, pkg := range src.methods {
		add(name, pkg, true)
	}
	for name, pkg := range src.funcs {
		add(name, pkg, len(name) >= minTopLevelName)
	}
	slices.Sort(dropped)
	return checked, dropped
}

// isStd reports whether a package path is the standard library's, whose
// first element has no dot ("crypto/hkdf", "vendor/golang.org/x/net/idna").
func isStd(pkg string) bool {
	first, _, _ := strings.Cut(pkg, "/")
	return pkg != "main" && !strings.Contains(first, ".")
}

// splitSymbol splits a Go function symbol into its package path and the
// rest: "github.com/x/y.(*T).M.func1" is "github.com/x/y" and
// "(*T).M.func1". Type arguments go first, as they hold paths and dots.
func splitSymbol(sym string) (pkg, rest string, ok bool) {
	var b strings.Builder
	depth := 0
	for _, r := range sym {
		switch {
		case r == '[':
			depth++
		case r == ']' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	sym = b.String()
	slash := strings.LastIndexByte(sym, '/') + 1
	dot := strings.IndexByte(sym[slash:], '.')
	if dot < 0 {
		return "", "", false
	}
	return sym[:slash+dot], sym[slash+dot+1:], true
}

// symbolNames lists the function names a symbol's rest may stand for: the
// rest itself and the function a closure, method value or range-over-func
// body belongs to ("(*T).M.func1" is in "(*T).M", "F-range1" in "F").
func symbolNames(rest string) []string {
	names := []string{rest}
	for i := 0; i < len(rest); i++ {
		if rest[i] == '.' || rest[i] == '-' {
			names = append(names, rest[:i])
		}
	}
	return names
}

// binaryImage is an ELF Go binary read for the scan.
type binaryImage struct {
	data []byte
	// funcs are the functions of .gopclntab's function table and the ELF
	// symbol table (when not stripped), sorted.
	funcs []string
	// names are funcs and every other string of .gopclntab: the names of
	// functions inlined everywhere, which have no symbol or entry of their
	// own but stay in the inlining tables for tracebacks, and file names.
	names      []string
	elfSymbols int
}

func readBinary(t *testing.T, path string) *binaryImage {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	pclntab, text := f.Section(".gopclntab"), f.Section(".text")
	if pclntab == nil || text == nil {
		t.Fatalf("%s has no .gopclntab or .text section", path)
	}
	pcln, err := pclntab.Data()
	if err != nil {
		t.Fatal(err)
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(pcln, text.Addr))
	if err != nil {
		t.Fatalf("%s: .gopclntab: %v", path, err)
	}
	img := &binaryImage{data: data}
	for _, fn := range tab.Funcs {
		img.funcs = append(img.funcs, fn.Name)
	}
	syms, err := f.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		t.Fatalf("%s: %v", path, err)
	}
	img.elfSymbols = len(syms)
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			img.funcs = append(img.funcs, s.Name)
		}
	}
	slices.Sort(img.funcs)
	img.funcs = slices.Compact(img.funcs)
	img.names = slices.Clone(img.funcs)
	for s := range bytes.SplitSeq(pcln, []byte{0}) {
		if len(s) > 2 && utf8.Valid(s) && !slices.ContainsFunc(s, func(c byte) bool { return c < ' ' || c == 0x7f }) {
			img.names = append(img.names, string(s))
		}
	}
	slices.Sort(img.names)
	img.names = slices.Compact(img.names)
	return img
}

// find returns the binary's function names (and those of closures) that
// have one of names after their package path, whatever that path is:
// symbol -> name.
func (img *binaryImage) find(names map[string]string) map[string]string {
	found := map[string]string{}
	for _, sym := range img.names {
		_, rest, ok := splitSymbol(sym)
		if !ok {
			continue
		}
		for _, c := range symbolNames(rest) {
			if _, bad := names[c]; bad {
				found[sym] = c
				break
			}
		}
	}
	return found
}

// maskEmbedded returns a copy of data with every file that a dependency
// embeds (//go:embed) and that holds one of labels blanked out: the
// browser SDK that cmd/sfu serves derives SFrame keys in the browser, and
// serving its text is not holding a key.
func maskEmbedded(t *testing.T, data []byte, deps map[string]listedPackage, labels []string) []byte {
	t.Helper()
	data = bytes.Clone(data)
	for _, p := range deps {
		for _, name := range p.EmbedFiles {
			content, err := os.ReadFile(filepath.Join(p.Dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(labels, func(l string) bool { return bytes.Contains(content, []byte(l)) }) {
				continue
			}
			n := 0
			for i := bytes.Index(data, content); i >= 0; i = bytes.Index(data, content) {
				clear(data[i : i+len(content)])
				n++
			}
			t.Logf("sfu: labels inside the embedded %s/%s (%d copies) are not checked", p.ImportPath, name, n)
		}
	}
	return data
}

type listedPackage struct {
	ImportPath string
	Dir        string
	EmbedFiles []string
}

// goListDeps returns `go list -deps` of pkg, by import path.
func goListDeps(t *testing.T, goCmd, pkg string) map[string]listedPackage {
	t.Helper()
	out, err := exec.Command(goCmd, "list", "-deps", "-json=ImportPath,Dir,EmbedFiles", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr(err))
	}
	deps := map[string]listedPackage{}
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list -deps: %v", err)
		}
		deps[p.ImportPath] = p
	}
	return deps
}

func moduleRoot(t *testing.T, goCmd string) string {
	t.Helper()
	out, err := exec.Command(goCmd, "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v\n%s", err, stderr(err))
	}
	return strings.TrimSpace(string(out))
}

// goBuild builds pkg into out with the go command running the test. Other
// systems build for Linux, since the scan reads ELF.
func goBuild(t *testing.T, goCmd string, flags []string, out, pkg string) {
	t.Helper()
	cmd := exec.Command(goCmd, append(append([]string{"build"}, flags...), "-o", out, pkg)...)
	cmd.Env = os.Environ()
	if runtime.GOOS != "linux" {
		cmd.Env = append(cmd.Env, "GOOS=linux", "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// goTool is the go command of the toolchain running the test.
func goTool(t *testing.T) string {
	t.Helper()
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		if goCmd, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to build the sfu binary with")
		}
	}
	return goCmd
}

func stderr(err error) []byte {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.Stderr
	}
	return nil
}

func mustUnquote(t *testing.T, s string) string {
	t.Helper()
	u, err := strconv.Unquote(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
