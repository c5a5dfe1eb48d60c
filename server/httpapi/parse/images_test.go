package parse

import "testing"

func TestFacts(t *testing.T) {
	tests := []struct {
		name string
		html string
		want HTMLFacts
	}{
		{"text only", "<p>Hello there</p>", HTMLFacts{TextChars: 10}},
		{"images", `<p>Hi</p><img src="a.png" alt="A"><img src="b.png"><IMG SRC="c.png" ALT="">`, HTMLFacts{TextChars: 2, Images: 3, ImagesWithout: 1}},
		{"script hidden", "<script>var x = 1;</script><b>ok</b>", HTMLFacts{TextChars: 2}},
		{"broken", "<img", HTMLFacts{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Facts(tt.html); got != tt.want {
				t.Errorf("Facts(%q) = %+v, want %+v", tt.html, got, tt.want)
			}
		})
	}
}

func FuzzFacts(f *testing.F) {
	f.Add(`<img src=x alt><p>t</p>`)
	f.Fuzz(func(t *testing.T, s string) { Facts(s) })
}
