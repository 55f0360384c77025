// Package deploy holds what ships dotkv and runs it elsewhere: the
// Kubernetes manifests (kubernetes/), the podman scripts (podman/) and
// dotkv-kube, the helper that starts a node in a StatefulSet pod and makes
// it leave on a scale-down (dotkv-kube/).
//
// The package itself has no code, only tests that keep those files true
// to the binary: every flag a manifest passes exists, every probe path is
// served, every port matches a flag, the Dockerfiles expose the same
// ports, ../NOTICE lists every module of the build with its licence, and
// ../LICENSES-THIRD-PARTY holds the licence texts of the modules compiled
// into the binaries.
package deploy
