package main

import (
	"bytes"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// bookTitle is the one book Bookinfo shows.
const bookTitle = "The Comedy of Errors"

// pageTemplate is a small productpage; html/template escapes every value for where it lands. The sorry
// texts are Bookinfo's own, so a test can look for the same words on either.
var pageTemplate = template.Must(template.New("productpage").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body>
<p id="standin">meshkit stand-in for Bookinfo's productpage: {{.Self.Service}} {{.Self.Version}}, pod {{.Self.Pod}}</p>
{{- if .Self.User}}
<p id="user">Signed in as {{.Self.User}}</p>
{{- end}}
<h1>{{.Title}}</h1>
<section id="details" data-version="{{.Details.Version}}" data-pod="{{.Details.Pod}}">
{{- if .Details.Error}}
<p>Sorry, product details are currently unavailable for this book.</p>
<p class="error">{{.Details.Error}}</p>
{{- else}}
<p>Details from details {{.Details.Version}}, pod {{.Details.Pod}}</p>
{{- end}}
</section>
<section id="reviews" data-version="{{.Reviews.Version}}" data-pod="{{.Reviews.Pod}}" data-stars="{{.Stars}}">
{{- if .Reviews.Error}}
<p>Sorry, product reviews are currently unavailable for this book.</p>
<p class="error">{{.Reviews.Error}}</p>
{{- else}}
<p>Reviews from reviews {{.Reviews.Version}}, pod {{.Reviews.Pod}}</p>
{{- if .Unrated}}
<p>Ratings service is currently unavailable</p>
{{- end}}
{{- range .Ratings}}
<p class="rating">{{.Reviewer}}: <span style="color: {{.Color}}">{{.Stars}}</span></p>
{{- end}}
{{- end}}
</section>
</body>
</html>
`))

type pageView struct {
	Title   string
	Self    answer
	Details callResult
	Reviews callResult
	Stars   string // the reviews' star color, or "none"
	Ratings []ratingView
	Unrated bool // reviews has stars to show but its ratings call failed
}

type ratingView struct {
	Reviewer, Stars, Color string
}

func newPageView(a answer) pageView {
	v := pageView{
		Title: bookTitle, Self: a, Stars: "none",
		Details: findCall(a.Calls, "details"), Reviews: findCall(a.Calls, "reviews"),
	}
	color, ratings := v.Reviews.callee.Stars, v.Reviews.callee.Ratings
	if v.Reviews.Error != "" || color == "" {
		return v
	}
	v.Stars, v.Unrated = color, len(ratings) == 0
	for _, reviewer := range slices.Sorted(maps.Keys(ratings)) {
		stars := strings.Repeat("★", min(max(ratings[reviewer], 0), 5))
		v.Ratings = append(v.Ratings, ratingView{Reviewer: reviewer, Stars: stars, Color: color})
	}
	return v
}

// findCall is the call to a service; a service not called shows as unavailable.
func findCall(calls []callResult, service string) callResult {
	for _, c := range calls {
		if c.Service == service {
			return c
		}
	}
	return callResult{Service: service, Error: "not called: STANDIN_CALLS has no " + service}
}

func writePage(w http.ResponseWriter, a answer) {
	var page bytes.Buffer
	if err := pageTemplate.Execute(&page, newPageView(a)); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(a.Status)
	_, _ = page.WriteTo(w)
}
