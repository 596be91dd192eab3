package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPageEscapesEveryValue(t *testing.T) {
	f := newFleet(t)
	f.add("reviews", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, map[string]any{"version": "<script>alert(1)</script>", "pod": `"><img src=x>`,
			"stars": `red;background:url(x)`, "ratings": map[string]int{"<b>R</b>": 3}})
	}))
	productpage := f.start("pp-<i>-x-y", map[string]string{"STANDIN_SERVICE": "productpage",
		"STANDIN_CALLS": f.call("reviews", "")})
	_, page := get(t, productpage.URL+"/productpage", nil)
	for _, raw := range []string{"<script>", "<img", "<b>", "<i>", "color: red;"} {
		if strings.Contains(page, raw) {
			t.Errorf("page carries %q unescaped:\n%s", raw, page)
		}
	}
	for _, escaped := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&#34;&gt;&lt;img src=x&gt;",
		"&lt;b&gt;R&lt;/b&gt;: ", "pod pp-&lt;i&gt;-x-y", "★★★"} {
		if !strings.Contains(page, escaped) {
			t.Errorf("page lacks %q:\n%s", escaped, page)
		}
	}
}

func TestWantsPage(t *testing.T) {
	cases := []struct {
		target, accept string
		want           bool
	}{
		{"/productpage", "", true},
		{"/productpage", "*/*", true},
		{"/productpage", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true},
		{"/productpage", "application/json", false},
		{"/productpage", "application/json, text/html;q=0.5", false},
		{"/productpage", "text/*;q=0.3, application/*", false},
		{"/productpage?format=json", "text/html", false},
		{"/", "text/html", false},
		{"/api/v1/products/0/reviews", "", false},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodGet, c.target, nil)
		if c.accept != "" {
			r.Header.Set("Accept", c.accept)
		}
		if got := wantsPage(r); got != c.want {
			t.Errorf("wantsPage(%s, Accept %q) = %v, want %v", c.target, c.accept, got, c.want)
		}
	}
}
