package main

import "testing"

func TestVersionFromPod(t *testing.T) {
	cases := []struct{ pod, service, want string }{
		{"reviews-v2-7f9c8d6b5-x2kqz", "reviews", "v2"},
		{"reviews-v1-canary-7f9c8d6b5-x2kqz", "reviews", "v1-canary"},
		{"productpage-v1-5d9b6c7f8-abcde", "productpage", "v1"},
		{"my-svc-v3-5d9b6c7f8-abcde", "my-svc", "v3"},
		{"reviews-7f9c8d6b5-x2kqz", "reviews", "fallback"},    // a Deployment named after the service alone
		{"details-v1-7f9c8d6b5-x2kqz", "reviews", "fallback"}, // another service's pod
		{"reviews-v2", "reviews", "fallback"},                 // not a Deployment's pod
		{"laptop", "reviews", "fallback"},
		{"reviews-v2-7f9c8d6b5-x2kqz", "", "fallback"},
	}
	for _, c := range cases {
		if got := versionFromPod(c.pod, c.service, "fallback"); got != c.want {
			t.Errorf("versionFromPod(%q, %q) = %q, want %q", c.pod, c.service, got, c.want)
		}
	}
}
