package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The parts of the Kubernetes objects in kubernetes/*.yaml that the tests
// check. Fields they do not model are ignored.

// object is any Kubernetes object: its kind and name, the rest decoded by
// kind from Raw.
type object struct {
	File       string
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Raw yaml.Node `yaml:"-"`
}

type statefulSet struct {
	Spec struct {
		ServiceName         string `yaml:"serviceName"`
		Replicas            int    `yaml:"replicas"`
		PodManagementPolicy string `yaml:"podManagementPolicy"`
		Selector            struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				ServiceAccountName            string      `yaml:"serviceAccountName"`
				TerminationGracePeriodSeconds int         `yaml:"terminationGracePeriodSeconds"`
				Containers                    []container `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
	} `yaml:"spec"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports          []containerPort `yaml:"ports"`
	StartupProbe   *handler        `yaml:"startupProbe"`
	ReadinessProbe *handler        `yaml:"readinessProbe"`
	LivenessProbe  *handler        `yaml:"livenessProbe"`
	Lifecycle      struct {
		PreStop *handler `yaml:"preStop"`
	} `yaml:"lifecycle"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type containerPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
	Protocol      string `yaml:"protocol"`
}

// handler is a probe or a lifecycle hook: one of its actions.
type handler struct {
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
	HTTPGet *struct {
		Path   string `yaml:"path"`
		Port   string `yaml:"port"` // a number or a port name
		Scheme string `yaml:"scheme"`
	} `yaml:"httpGet"`
	TCPSocket *struct {
		Port string `yaml:"port"`
	} `yaml:"tcpSocket"`
}

type service struct {
	Spec struct {
		ClusterIP                string            `yaml:"clusterIP"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]string `yaml:"selector"`
		Ports                    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
			Protocol   string `yaml:"protocol"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type podDisruptionBudget struct {
	Spec struct {
		MaxUnavailable *int `yaml:"maxUnavailable"`
		Selector       struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	} `yaml:"spec"`
}

type role struct {
	Rules []struct {
		APIGroups     []string `yaml:"apiGroups"`
		Resources     []string `yaml:"resources"`
		ResourceNames []string `yaml:"resourceNames"`
		Verbs         []string `yaml:"verbs"`
	} `yaml:"rules"`
}

// manifests are the objects of kubernetes/*.yaml but kustomization.yaml.
type manifests []object

// loadManifests parses every YAML document of kubernetes/*.yaml.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in kubernetes/: %v", err)
	}
	var objs manifests
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc yaml.Node
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			o := object{File: f, Raw: doc}
			if err := doc.Decode(&o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "" || o.APIVersion == "" || o.Metadata.Name == "" {
				t.Fatalf("%s: a document without kind, apiVersion or metadata.name", f)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

// get decodes the object of kind and name into v; it fails the test if
// there is none.
func (m manifests) get(t *testing.T, kind, name string, v any) {
	t.Helper()
	for _, o := range m {
		if o.Kind == kind && o.Metadata.Name == name {
			if err := o.Raw.Decode(v); err != nil {
				t.Fatalf("%s %s (%s): %v", kind, name, o.File, err)
			}
			return
		}
	}
	t.Fatalf("no %s %s in kubernetes/", kind, name)
}

// dotkvStatefulSet returns the StatefulSet and its dotkv container.
func (m manifests) dotkvStatefulSet(t *testing.T) (*statefulSet, *container) {
	t.Helper()
	var sts statefulSet
	m.get(t, "StatefulSet", "dotkv", &sts)
	cs := sts.Spec.Template.Spec.Containers
	i := slices.IndexFunc(cs, func(c container) bool { return c.Name == "dotkv" })
	if i < 0 {
		t.Fatal("StatefulSet dotkv has no container named dotkv")
	}
	return &sts, &cs[i]
}

// argFlags splits manifest arguments "--name=value" or "--name" into
// names and values; it fails the test on any other form (a value in its
// own argument could be mistaken for a flag).
func argFlags(t *testing.T, args []string) (names []string, values map[string]string) {
	t.Helper()
	values = map[string]string{}
	for _, a := range args {
		if !strings.HasPrefix(a, "--") || len(a) < 3 {
			t.Errorf("argument %q: want --name=value or --name", a)
			continue
		}
		name, value, _ := strings.Cut(a[2:], "=")
		if _, dup := values[name]; dup {
			t.Errorf("flag --%s given twice", name)
		}
		names = append(names, name)
		values[name] = value
	}
	return names, values
}

// portOf returns the port of a HOST:PORT flag value ("" if none).
func portOf(hostPort string) string {
	i := strings.LastIndexByte(hostPort, ':')
	if i < 0 {
		return ""
	}
	return hostPort[i+1:]
}
