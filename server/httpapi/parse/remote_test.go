package parse

import "testing"

func TestRemoteContent(t *testing.T) {
	for _, tc := range []struct {
		html string
		want int
	}{
		{`<p>hello</p>`, 0},
		{`<img src="https://t.example/p.gif" width=1 height=1>`, 1},
		{`<img src="cid:logo@x"><img src="data:image/png;base64,AAAA">`, 0},
		{`<IMG SRC=" HTTP://t.example/p.gif">`, 1},
		{`<img src="//t.example/p.gif"/>`, 1},
		{`<table background="http://t.example/bg.png"><td style="background:url('https://t.example/a.png')">`, 2},
		{`<style>@import "https://t.example/a.css"; p { background: url(http://t.example/b.png) }</style>`, 2},
		{`<link rel=stylesheet href="https://t.example/s.css">`, 1},
		{`<a href="https://example.com/confirm">confirm</a>`, 0},
		{`<video poster="https://t.example/v.jpg"></video><img srcset="https://t.example/2x.png 2x">`, 2},
		{`<p style="color: red">no url</p><style>p{}</style><p>url(http://not.css)</p>`, 0},
	} {
		if got := RemoteContent(tc.html); got != tc.want {
			t.Errorf("RemoteContent(%q) = %d, want %d", tc.html, got, tc.want)
		}
	}
}
