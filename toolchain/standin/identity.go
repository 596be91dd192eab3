package main

import "strings"

// identity is who answers: the service role, its version and its pod.
type identity struct {
	service, version, pod string
}

// newIdentity takes the pod name from the hostname, which the kubelet sets to it.
func newIdentity(cfg config, pod string) identity {
	return identity{service: cfg.service, version: versionFromPod(pod, cfg.service, cfg.version), pod: pod}
}

// versionFromPod reads the version off a Deployment's pod name, <deployment>-<replicaset hash>-<suffix>,
// since meshkit names Deployments <service>-<version>; any other name keeps the fallback. One image then
// serves every version, and the answer names the version that really ran.
func versionFromPod(pod, service, fallback string) string {
	parts := strings.Split(pod, "-")
	if service == "" || len(parts) < 3 {
		return fallback
	}
	deployment := strings.Join(parts[:len(parts)-2], "-")
	version, ok := strings.CutPrefix(deployment, service+"-")
	if !ok || version == "" {
		return fallback
	}
	return version
}
