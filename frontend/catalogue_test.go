package frontend

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// TestCatalogueComplete checks that every string key the page uses is in the English
// catalogue, and that Simplified Chinese and Japanese have every English key (a plural's
// "one" form aside, which neither language has).
func TestCatalogueComplete(t *testing.T) {
	read := func(name string) string {
		b, err := fs.ReadFile(FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cat := read("i18n.js")
	langs := map[string]map[string]bool{}
	var cur map[string]bool
	for _, line := range strings.Split(cat, "\n") {
		if m := regexp.MustCompile(`^  '?([\w-]+)'?: \{$`).FindStringSubmatch(line); m != nil {
			cur = map[string]bool{}
			langs[m[1]] = cur
		} else if m := regexp.MustCompile(`^    '([\w.]+)': `).FindStringSubmatch(line); m != nil && cur != nil {
			cur[m[1]] = true
		}
	}
	en := langs["en"]
	if len(en) < 100 {
		t.Fatalf("found %d English keys in i18n.js, want the whole catalogue", len(en))
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`data-i18n(?:-label|-placeholder)?="([\w.]+)"`).FindAllStringSubmatch(read("index.html"), -1) {
		used[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\bt\('([\w.]+)'`).FindAllStringSubmatch(read("app.js")+read("report.js"), -1) {
		used[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`fillChips\('\w+', [^,]+, '([\w.]+)'`).FindAllStringSubmatch(read("app.js"), -1) {
		used[m[1]] = true
	}
	for k := range used {
		if !en[k] && !en[k+".other"] {
			t.Errorf("the page uses %q, which the English catalogue lacks", k)
		}
	}
	for _, l := range []string{"zh-CN", "ja"} {
		for k := range en {
			if !langs[l][k] && !strings.HasSuffix(k, ".one") {
				t.Errorf("%s lacks %q", l, k)
			}
		}
	}
}
