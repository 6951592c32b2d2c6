package interp

import (
	"reflect"
	"testing"
)

// TestGenericStdlib: the standard library's generic packages work in a
// namespace (the functions yaegi's sources define), imported in a cell,
// after a reset, and from Preload, though their source is compiled only
// when first imported.
func TestGenericStdlib(t *testing.T) {
	n, _, _ := newNS(t)
	run(t, n, `import "slices"`)
	if got := value(t, n, "slices.Index([]int{3, 1, 2}, 2)"); got != 2 {
		t.Errorf("slices.Index gave %#v", got)
	}
	if got := value(t, n, "slices.Contains([]string{\"a\"}, \"a\")"); got != true {
		t.Errorf("slices.Contains gave %#v", got)
	}
	if err := n.Reset(); err != nil {
		t.Fatal(err)
	}
	if got := value(t, n, "import \"cmp\"\ncmp.Compare(2, 1)"); got != 1 {
		t.Errorf("cmp.Compare after a reset gave %#v", got)
	}

	p, err := New(Options{Preload: []string{"slices"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := value(t, p, "slices.Index([]int{4, 9, 2}, 9)"); got != 1 {
		t.Errorf("preloaded slices.Index gave %#v", got)
	}
}

// TestLateTableOverridesDeferredPackage: a table added to a running
// namespace wins over the standard library's symbols for the same package
// although yaegi receives the standard library's only at the import, and
// the package's other symbols stay.
func TestLateTableOverridesDeferredPackage(t *testing.T) {
	n, _, _ := newNS(t)
	err := n.Use(map[string]map[string]reflect.Value{
		"strconv/strconv": {"Itoa": reflect.ValueOf(func(int) string { return "mine" })},
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, n, `import "strconv"`)
	if got := value(t, n, "strconv.Itoa(5)"); got != "mine" {
		t.Errorf("strconv.Itoa = %#v, want the added table's", got)
	}
	if got := value(t, n, `v, _ := strconv.Atoi("12"); v`); got != 12 {
		t.Errorf("strconv.Atoi = %#v, want 12 from the standard library", got)
	}
	// After a reset the tables are replayed in the same order.
	if err := n.Reset(); err != nil {
		t.Fatal(err)
	}
	run(t, n, `import "strconv"`)
	if got := value(t, n, "strconv.Itoa(5)"); got != "mine" {
		t.Errorf("after a reset strconv.Itoa = %#v, want the added table's", got)
	}
}
