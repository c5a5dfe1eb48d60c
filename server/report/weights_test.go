package report

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestWeightsDocumented checks that docs/report.md's table lists every check with the
// category and points of weights, and nothing else.
func TestWeightsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/report.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\| ([a-z]+) \\| ([0-9.]+) \\|")
	seen := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		id, category := m[1], m[2]
		points, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		w, ok := weights[id]
		switch {
		case !ok:
			t.Errorf("docs/report.md lists %s, which is no check", id)
		case w.category != category || w.points != points:
			t.Errorf("docs/report.md: %s is %s %v, the code says %s %v", id, category, points, w.category, w.points)
		}
		seen[id] = true
	}
	for id := range weights {
		if !seen[id] {
			t.Errorf("docs/report.md does not list %s", id)
		}
	}
}
