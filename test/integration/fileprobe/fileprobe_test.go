/*
Copyright The kubelet-fileprobe Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package fileprobe tests the file probe API against a real etcd and our
// kube-apiserver: persistence and round trips over JSON and protobuf, field
// errors for invalid specs, and the FileContainerProbe gate.
package fileprobe

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientset "k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
	"k8s.io/kubectl/pkg/cmd/explain"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
	"k8s.io/kubernetes/pkg/features"
	"k8s.io/kubernetes/test/integration/framework"
	"k8s.io/utils/ptr"
)

const ns = "default"

// designPod is the pod of the original design document: a container that
// touches /probe-dir/probe, which is file "probe" of emptyDir "probe-volume".
func designPod(name string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PodSpec{
			Containers: []v1.Container{{
				Name:    "container1",
				Image:   "busybox",
				Command: []string{"/bin/sh", "-c"},
				Args:    []string{"mkdir -p /probe-dir; while true; do touch /probe-dir/probe; sleep 20; done"},
				ReadinessProbe: &v1.Probe{
					ProbeHandler:        v1.ProbeHandler{File: &v1.FileAction{Path: "/probe-volume/probe", Validity: 30}},
					InitialDelaySeconds: 5, PeriodSeconds: 10, TimeoutSeconds: 1, FailureThreshold: 3,
				},
				LivenessProbe: &v1.Probe{
					ProbeHandler:        v1.ProbeHandler{File: &v1.FileAction{Path: "/probe-volume/probe", Validity: 10}},
					InitialDelaySeconds: 5, PeriodSeconds: 10, TimeoutSeconds: 1, FailureThreshold: 3,
				},
				VolumeMounts: []v1.VolumeMount{{Name: "probe-volume", MountPath: "/probe-dir"}},
			}},
			Volumes: []v1.Volume{
				{Name: "probe-volume", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
				{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}}},
			},
		},
	}
}

func designDeployment(name string) *appsv1.Deployment {
	pod := designPod(name)
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod.Spec},
		},
	}
}

// startAPIServer starts our kube-apiserver with the gate set as given, on
// storage (a fresh etcd prefix when nil), and returns a JSON and a protobuf client.
func startAPIServer(t *testing.T, gate bool, storage *storagebackend.Config) (jsonClient, protoClient clientset.Interface, teardown func()) {
	t.Helper()
	featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.FileContainerProbe, gate)
	if storage == nil {
		storage = framework.SharedEtcd()
	}
	server := kubeapiservertesting.StartTestServerOrDie(t, nil, framework.DefaultTestServerFlags(), storage)
	jsonCfg := restclient.CopyConfig(server.ClientConfig)
	jsonCfg.ContentType = runtime.ContentTypeJSON
	jsonCfg.AcceptContentTypes = runtime.ContentTypeJSON
	protoCfg := restclient.CopyConfig(server.ClientConfig)
	protoCfg.ContentType = runtime.ContentTypeProtobuf
	protoCfg.AcceptContentTypes = runtime.ContentTypeProtobuf
	return clientset.NewForConfigOrDie(jsonCfg), clientset.NewForConfigOrDie(protoCfg), server.TearDownFn
}

// fieldErrors returns "field: message" for every cause of an Invalid error.
func fieldErrors(t *testing.T, err error) []string {
	t.Helper()
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want an Invalid error, got %v", err)
	}
	var out []string
	for _, c := range err.(apierrors.APIStatus).Status().Details.Causes {
		out = append(out, c.Field+": "+c.Message)
	}
	return out
}

func TestFileProbeRoundTrip(t *testing.T) {
	jsonClient, protoClient, teardown := startAPIServer(t, true, nil)
	defer teardown()
	ctx := context.Background()

	for _, tc := range []struct {
		name   string
		create clientset.Interface
	}{{"json", jsonClient}, {"protobuf", protoClient}} {
		t.Run(tc.name, func(t *testing.T) {
			want := designPod("design-" + tc.name)
			if _, err := tc.create.CoreV1().Pods(ns).Create(ctx, want, metav1.CreateOptions{}); err != nil {
				t.Fatalf("create over %s: %v", tc.name, err)
			}
			for _, read := range []struct {
				name   string
				client clientset.Interface
			}{{"json", jsonClient}, {"protobuf", protoClient}} {
				got, err := read.client.CoreV1().Pods(ns).Get(ctx, want.Name, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				c := got.Spec.Containers[0]
				if !apiequality.Semantic.DeepEqual(c.ReadinessProbe.File, want.Spec.Containers[0].ReadinessProbe.File) ||
					!apiequality.Semantic.DeepEqual(c.LivenessProbe.File, want.Spec.Containers[0].LivenessProbe.File) {
					t.Errorf("created over %s, read over %s: got readiness %+v liveness %+v", tc.name, read.name, c.ReadinessProbe.File, c.LivenessProbe.File)
				}
			}
		})
	}

	// The Deployment controller copies the template; the template must keep the field.
	d, err := protoClient.AppsV1().Deployments(ns).Create(ctx, designDeployment("design"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f := d.Spec.Template.Spec.Containers[0].ReadinessProbe.File; f == nil || f.Path != "/probe-volume/probe" || f.Validity != 30 {
		t.Errorf("deployment template readiness file probe = %+v", f)
	}
}

func TestFileProbeInvalid(t *testing.T) {
	client, _, teardown := startAPIServer(t, true, nil)
	defer teardown()
	ctx := context.Background()
	const rp = "spec.containers[0].readinessProbe"

	for _, tc := range []struct {
		name  string
		tweak func(*v1.Probe)
		want  string
	}{
		{"relative path", func(p *v1.Probe) { p.File.Path = "probe-volume/probe" }, rp + ".file.path: Invalid value: \"probe-volume/probe\": must be an absolute path"},
		{"dot-dot", func(p *v1.Probe) { p.File.Path = "/probe-volume/../etc/shadow" }, rp + ".file.path: Invalid value: \"/probe-volume/../etc/shadow\": must not contain '.' or '..' segments"},
		{"volume only", func(p *v1.Probe) { p.File.Path = "/probe-volume" }, rp + ".file.path: Invalid value: \"/probe-volume\": must name a file inside an emptyDir volume"},
		{"unknown volume", func(p *v1.Probe) { p.File.Path = "/nope/probe" }, `there is no volume "nope" (emptyDir volumes: "probe-volume")`},
		{"not an emptyDir", func(p *v1.Probe) { p.File.Path = "/config/key" }, `volume "config" is not an emptyDir volume`},
		{"validity missing", func(p *v1.Probe) { p.File.Validity = 0 }, rp + ".file.validity: Required value: seconds, must be between 1 and 86400, inclusive"},
		{"validity too long", func(p *v1.Probe) { p.File.Validity = 86401 }, rp + ".file.validity: Invalid value: 86401: seconds, must be between 1 and 86400, inclusive"},
		{"two handlers", func(p *v1.Probe) { p.Exec = &v1.ExecAction{Command: []string{"true"}} }, rp + ".file: Forbidden: may not specify more than 1 handler type"},
		{"segment over NAME_MAX", func(p *v1.Probe) { p.File.Path = "/probe-volume/" + strings.Repeat("f", 256) }, `segment 2 ("ffffffffffffffffffffffffffffffff"...) is 256 bytes long: each segment must be at most 255 bytes (NAME_MAX)`},
		{"path over PATH_MAX behind the kubelet's prefix", func(p *v1.Probe) {
			p.File.Path = "/probe-volume" + strings.Repeat("/"+strings.Repeat("d", 200), 20)[:4028-len("/probe-volume")]
		}, rp + ".file.path: Too long: may not be more than 4027 bytes (the node's PATH_MAX of 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := designPod("invalid")
			tc.tweak(pod.Spec.Containers[0].ReadinessProbe)
			_, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			errs := fieldErrors(t, err)
			if len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
				t.Errorf("got %q, want one error containing %q", errs, tc.want)
			}
		})
	}
}

func TestFileProbeWindows(t *testing.T) {
	client, _, teardown := startAPIServer(t, true, nil)
	defer teardown()
	pod := designPod("windows")
	pod.Spec.OS = &v1.PodOS{Name: v1.Windows}
	_, err := client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	want := []string{
		"spec.containers[0].livenessProbe.file: Forbidden: cannot be set for a windows pod",
		"spec.containers[0].readinessProbe.file: Forbidden: cannot be set for a windows pod",
	}
	if errs := fieldErrors(t, err); strings.Join(errs, "\n") != strings.Join(want, "\n") {
		t.Errorf("windows pod with file probes: got %q, want %q", errs, want)
	}
}

func TestFileProbeGateOff(t *testing.T) {
	storage := framework.SharedEtcd()
	ctx := context.Background()

	// Gate on: a Deployment with file probes is stored.
	client, _, teardown := startAPIServer(t, true, storage)
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, designDeployment("kept"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	teardown()

	// Gate off, same etcd: new objects may not use file probes...
	client, _, teardown = startAPIServer(t, false, storage)
	defer teardown()
	gateErr := func(path string) string {
		return path + ": Forbidden: may not be set when the FileContainerProbe feature gate is disabled"
	}
	_, err := client.CoreV1().Pods(ns).Create(ctx, designPod("rejected"), metav1.CreateOptions{})
	if errs := fieldErrors(t, err); len(errs) != 2 ||
		errs[0] != gateErr("spec.containers[0].livenessProbe.file") || errs[1] != gateErr("spec.containers[0].readinessProbe.file") {
		t.Errorf("pod create with the gate off: got %q", errs)
	}
	_, err = client.AppsV1().Deployments(ns).Create(ctx, designDeployment("rejected"), metav1.CreateOptions{})
	if errs := fieldErrors(t, err); len(errs) != 2 || errs[1] != gateErr("spec.template.spec.containers[0].readinessProbe.file") {
		t.Errorf("deployment create with the gate off: got %q", errs)
	}

	// ...while an existing object keeps them on update.
	d, err := client.AppsV1().Deployments(ns).Get(ctx, "kept", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Replicas = ptr.To[int32](3)
	d.Spec.Template.Spec.Containers[0].Image = "busybox:2"
	d, err = client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update of a deployment that already uses file probes, gate off: %v", err)
	}
	if f := d.Spec.Template.Spec.Containers[0].ReadinessProbe.File; f == nil || f.Path != "/probe-volume/probe" {
		t.Errorf("file probe lost on update with the gate off: %+v", f)
	}
}

// TestFileProbeOpenAPI checks the OpenAPI v3 document the apiserver publishes,
// which is what kubectl explain pod.spec.containers.readinessProbe.file shows.
func TestFileProbeOpenAPI(t *testing.T) {
	client, _, teardown := startAPIServer(t, true, nil)
	defer teardown()
	paths, err := client.Discovery().OpenAPIV3().Paths()
	if err != nil {
		t.Fatal(err)
	}
	gv, ok := paths["api/v1"]
	if !ok {
		t.Fatal("no OpenAPI v3 document for api/v1")
	}
	raw, err := gv.Schema(runtime.ContentTypeJSON)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Description string   `json:"description"`
				Required    []string `json:"required"`
				Properties  map[string]struct {
					Description string `json:"description"`
					Type        string `json:"type"`
					Format      string `json:"format"`
					AllOf       []struct {
						Ref string `json:"$ref"`
					} `json:"allOf"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	handler := doc.Components.Schemas["io.k8s.api.core.v1.Probe"].Properties["file"] // ProbeHandler is inlined
	if len(handler.AllOf) != 1 || handler.AllOf[0].Ref != "#/components/schemas/io.k8s.api.core.v1.FileAction" ||
		!strings.Contains(handler.Description, "emptyDir volumes") {
		t.Errorf("Probe.file = %+v", handler)
	}
	file, ok := doc.Components.Schemas["io.k8s.api.core.v1.FileAction"]
	if !ok {
		t.Fatal("no schema io.k8s.api.core.v1.FileAction")
	}
	if strings.Join(file.Required, ",") != "path,validity" {
		t.Errorf("FileAction required = %v, want path,validity", file.Required)
	}
	if p := file.Properties["path"]; p.Type != "string" || !strings.Contains(p.Description, `"/probe-volume/probe" is the file "probe" in the emptyDir volume "probe-volume"`) {
		t.Errorf("FileAction.path = %+v", p)
	}
	if v := file.Properties["validity"]; v.Type != "integer" || v.Format != "int32" || !strings.Contains(v.Description, "Must be between 1 and 86400") {
		t.Errorf("FileAction.validity = %+v", v)
	}
}

// TestFileProbeKubectlExplain runs kubectl explain against the apiserver.
func TestFileProbeKubectlExplain(t *testing.T) {
	featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.FileContainerProbe, true)
	server := kubeapiservertesting.StartTestServerOrDie(t, nil, framework.DefaultTestServerFlags(), framework.SharedEtcd())
	defer server.TearDownFn()

	cfg := server.ClientConfig
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	err := clientcmd.WriteToFile(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"test": {Server: cfg.Host, CertificateAuthorityData: cfg.CAData, TLSServerName: cfg.ServerName}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"test": {Token: cfg.BearerToken}},
		Contexts:       map[string]*clientcmdapi.Context{"test": {Cluster: "test", AuthInfo: "test"}},
		CurrentContext: "test",
	}, kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	configFlags := genericclioptions.NewConfigFlags(false)
	configFlags.KubeConfig = &kubeconfig
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	o, err := explain.NewExplainFlags(streams).ToOptions(cmdutil.NewFactory(configFlags), "kubectl", []string{"pod.spec.containers.readinessProbe.file"})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := o.Run(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"FIELD: file <FileAction>",
		"emptyDir volumes",
		"path\t<string> -required-",
		"validity\t<integer> -required-",
		"Must be between 1 and 86400.",
		"The file is judged against the container instance being probed",
		"at most 4027 bytes long",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("kubectl explain pod.spec.containers.readinessProbe.file lacks %q:\n%s", want, out.String())
		}
	}
}
